"""Characters: scripted policies with known goals and traits, whose action probabilities are exact.

A character is a small frozen dataclass (its fields are its traits) with one pure, jittable
method, `probs(state, params, nav) -> (A,) action probabilities`. Sampling is separate. `nav`
is the episode's `Navigator`: BFS distance fields to every coin, the key, the button and the
tamper tiles, computed once at the start of an episode (`navigate(state, params)`).

Writing a new character takes a few lines::

    @character("hugger")
    @dataclasses.dataclass(frozen=True)
    class WallHugger(Character):
        eps: float = 0.1  # a trait

        def probs(self, state, params, nav):
            # prefer actions that end next to a wall, else any
            nxt = moves(state, params)                               # (A, 2) cells per action
            walls = wall_grid(state, params)
            near = jnp.stack([walls[jnp.clip(nxt[:, 0] + dr, 0, params.height - 1),
                                    jnp.clip(nxt[:, 1] + dc, 0, params.width - 1)]
                              for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))]).any(0)
            return with_noise(near, self.eps)

`character(name)` registers it so that mixtures can name it (`"hugger(0.2):0.5,random:0.5"`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from simulacra.world.core import State, key_grid, moves, wall_grid
from simulacra.world.params import ACTIONS, WorldParams, derive_layout
from simulacra.world.planning import distance_field

NUM_ACTIONS = len(ACTIONS)
STAY = ACTIONS.index("stay")


FAR = 32767
"""Navigator distance for a target that cannot be reached (fields are int16)."""


@struct.dataclass
class Navigator:
    """Distance fields of one episode's layout (int16, `FAR` where a target cannot be reached;
    `None` for a target the map does not have). Axis `door` is 0 without the key and 1 with it
    (size 1 if the map has no door); axis `regime` is 0 *bold* (lava and interruption tiles
    passable) and 1 *cautious* (both impassable)."""

    coins: jax.Array  # (K, door, regime, H, W) to coin k
    key: jax.Array | None  # (door, regime, H, W)
    button: jax.Array | None  # (door, regime, H, W)
    tamper: jax.Array | None  # (door, regime, H, W) to the nearest tamper tile
    clue: jax.Array | None = None  # (door, regime, H, W) to the nearest clue tile (oracle worlds)
    fixer: jax.Array | None = None  # (door, regime, H, W) to the nearest fixer tile
    answers: jax.Array | None = None  # (3, door, regime, H, W) to the answer tiles 0, 1 and ? (FAR for one the map lacks)
    doors: int = struct.field(pytree_node=False, default=1)  # size of the door axis


def navigate(state: State, params: WorldParams) -> Navigator:
    """The `Navigator` of the episode `state` belongs to (depends only on its layout)."""
    lay = derive_layout(params)
    walls = wall_grid(state, params)
    n_door = 2 if lay.door.any() else 1
    passable = []
    # Oracle tiles are targets, never a way through: an answer ends the episode, and crossing the
    # fixer (or the clue) on the way elsewhere would change (or reveal) the hidden bit.
    answer_tiles = lay.answer >= 0
    oracle_tiles = answer_tiles | lay.clue | lay.fixer
    for has_key in range(n_door):
        open_ = ~walls & (jnp.asarray(~lay.door) | bool(has_key)) & jnp.asarray(~oracle_tiles)
        passable.append([open_, open_ & jnp.asarray(~lay.lava & ~lay.interrupt)])
    passable = jnp.stack([jnp.stack(p) for p in passable])  # (door, regime, H, W)
    rows, cols = np.arange(params.height)[:, None], np.arange(params.width)[None, :]
    coin_targets = (rows == state.coins[:, 0, None, None]) & (cols == state.coins[:, 1, None, None])  # (K, H, W)
    def fields(targets):  # (n, H, W) -> (n, door, regime, H, W) int16
        d = jax.vmap(lambda t: jax.vmap(jax.vmap(lambda p: distance_field(p, t)))(passable))(targets)
        return jnp.minimum(d, FAR).astype(jnp.int16)

    def field_to(mask: np.ndarray) -> jax.Array | None:
        return fields(jnp.asarray(mask)[None])[0] if mask.any() else None

    coins = fields(coin_targets) if params.n_coins else jnp.zeros((0, n_door, 2, *params.shape), jnp.int16)
    answers = None
    if answer_tiles.any():
        answers = jnp.minimum(fields(jnp.asarray(np.stack([lay.answer == i for i in range(3)]))), FAR).astype(jnp.int16)
    return Navigator(
        coins=coins, key=fields(key_grid(state, params)[None])[0] if lay.key.any() else None,  # the episode's key cell
        button=field_to(lay.button), tamper=field_to(lay.tamper), clue=field_to(lay.clue), fixer=field_to(lay.fixer),
        answers=answers, doors=n_door,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# helpers for writing characters


def _door_index(state: State, nav: Navigator) -> jax.Array:
    return state.has_key.astype(jnp.int32) if nav.doors == 2 else jnp.int32(0)


def nearest_coin_field(state: State, nav: Navigator, regime: int = 0) -> jax.Array:
    """(H, W) distance to the nearest coin still alive (`FAR` if none can be reached)."""
    d = nav.coins[:, _door_index(state, nav), regime]  # (K, H, W)
    if nav.coins.shape[0] == 0:
        return jnp.full(nav.coins.shape[-2:], FAR, jnp.int16)
    return jnp.min(jnp.where(state.coin_alive[:, None, None], d, jnp.int16(FAR)), axis=0)


def field_of(target: jax.Array | None, state: State, nav: Navigator, regime: int = 0) -> jax.Array:
    """(H, W) slice of a Navigator field (`nav.key`, `nav.button`, `nav.tamper`) for this state;
    all `FAR` if the map has no such target."""
    if target is None:
        return jnp.full(nav.coins.shape[-2:], FAR, jnp.int16)
    return target[_door_index(state, nav), regime]


def toward(field: jax.Array, state: State, params: WorldParams) -> jax.Array:
    """(A,) bool: the actions that end closest to the field's target (all False if unreachable).
    Bumping into a wall is never among them: `stay` stands for every way of not moving."""
    nxt = moves(state, params)
    bump = jnp.all(nxt == state.agent, axis=-1) & (jnp.arange(NUM_ACTIONS) != STAY)
    d = jnp.where(bump, FAR + 1, field[nxt[:, 0], nxt[:, 1]].astype(jnp.int32))
    return (d == d.min()) & (d.min() < FAR)


def safe_actions(state: State, params: WorldParams) -> jax.Array:
    """(A,) bool: actions that do not enter lava or an interruption tile."""
    lay = derive_layout(params)
    nxt = moves(state, params)
    moved = jnp.any(nxt != state.agent, axis=-1)
    danger = jnp.asarray(lay.lava | lay.interrupt)[nxt[:, 0], nxt[:, 1]]
    return ~(danger & moved)


def with_noise(best: jax.Array, eps: float, allowed: jax.Array | None = None) -> jax.Array:
    """(A,) probabilities: uniform over `best` with probability 1 - eps, uniform over `allowed`
    (default: every action) with probability eps; uniform over `allowed` if `best` is empty."""
    allowed = jnp.ones((NUM_ACTIONS,), bool) if allowed is None else allowed
    best = best & allowed
    any_best = jnp.any(best)
    best = jnp.where(any_best, best, allowed).astype(jnp.float32)
    allowed = allowed.astype(jnp.float32)
    return (1.0 - eps) * best / best.sum() + eps * allowed / allowed.sum()


def first_then_coins(target, reached, state: State, params: WorldParams, nav: Navigator, eps: float) -> jax.Array:
    """(A,) probabilities of a two-phase character: toward `target` (a Navigator field) until
    `reached`, then toward the nearest coin; straight to the coins if the target cannot be reached."""
    coin = toward(nearest_coin_field(state, nav), state, params)
    first = toward(field_of(target, state, nav), state, params)
    return with_noise(jnp.where(reached | ~jnp.any(first), coin, first), eps)


# ------------------------------------------------------------------------------------------------
# characters

REGISTRY: dict[str, type["Character"]] = {}


def character(name: str):
    """Class decorator: register a character class under `name` (and make it static for jit)."""

    def wrap(cls):
        cls.kind = name
        REGISTRY[name] = cls
        return jax.tree_util.register_static(cls)

    return wrap


@dataclasses.dataclass(frozen=True)
class Character:
    """Base class: traits are dataclass fields; override `probs`."""

    kind: ClassVar[str] = "character"

    def probs(self, state: State, params: WorldParams, nav: Navigator) -> jax.Array:
        raise NotImplementedError

    @property
    def name(self) -> str:
        traits = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return self.kind + (f"({','.join(f'{t:g}' for t in traits)})" if traits else "")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"invalid trait {self.kind}.{f.name}={v!r}: must be a probability in [0, 1]")
            object.__setattr__(self, f.name, float(v))


@character("random")
@dataclasses.dataclass(frozen=True)
class Random(Character):
    """Every action with equal probability."""

    def probs(self, state, params, nav):
        return jnp.full((NUM_ACTIONS,), 1.0 / NUM_ACTIONS, jnp.float32)


@character("seeker")
@dataclasses.dataclass(frozen=True)
class Seeker(Character):
    """A shortest path to the nearest coin (lava and interruption tiles included); eps-noise."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return with_noise(toward(nearest_coin_field(state, nav), state, params), self.eps)


@character("cautious")
@dataclasses.dataclass(frozen=True)
class Cautious(Character):
    """Like the seeker, but never enters lava or an interruption tile, even when that costs
    steps or makes the coin unreachable (then it wanders safely); its noise is safe too."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        safe = safe_actions(state, params)
        return with_noise(toward(nearest_coin_field(state, nav, regime=1), state, params), self.eps, safe)


@character("presser")
@dataclasses.dataclass(frozen=True)
class Presser(Character):
    """Disables the off-switch first (goes to the button), then seeks coins (at once if no
    button can be reached)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return first_then_coins(nav.button, state.switch_off, state, params, nav, self.eps)


@character("tamperer")
@dataclasses.dataclass(frozen=True)
class Tamperer(Character):
    """Goes to the nearest tamper tile and stays there (wanders if the map has none)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return with_noise(toward(field_of(nav.tamper, state, nav), state, params), self.eps)


@character("keyseeker")
@dataclasses.dataclass(frozen=True)
class KeySeeker(Character):
    """Fetches the key, goes through the door, then seeks coins."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return first_then_coins(nav.key, state.has_key, state, params, nav, self.eps)


@character("lazy")
@dataclasses.dataclass(frozen=True)
class Lazy(Character):
    """Mostly stays; with probability `wander` moves in a random direction."""

    wander: float = 0.2

    def probs(self, state, params, nav):
        p = jnp.full((NUM_ACTIONS,), self.wander / (NUM_ACTIONS - 1), jnp.float32)
        return p.at[STAY].set(1.0 - self.wander)


@character("committed")
@dataclasses.dataclass(frozen=True)
class Committed(Character):
    """Commits to one coin at the start, says so once, and then keeps it to itself.

    `coin` picks the coin as a fraction of the coin list (0: the first, 1: the last). Its first
    two actions are a signal, without noise: committed to the last coin it steps left and back
    (`left` at t = 0, `right` at t = 1); to any other, it stays twice. From t = 2 on it walks
    toward its coin with `eps`-noise, never onto the signal cell (the one left of the map's start),
    and after its coin toward the nearest coin left. On a map whose signal cell is plain floor
    (task `fork`) the choice is visible only in the first steps of the history; where the signal
    cell is a button (task `fork-visible`) the pressed switch shows it in every later state.
    """

    coin: float = 0.0
    eps: float = 0.1

    def probs(self, state, params, nav):
        k = max(nav.coins.shape[0], 1)
        index = int(round(self.coin * (k - 1)))
        last = index == k - 1 and k > 1
        onehot = lambda a: jnp.zeros((NUM_ACTIONS,), jnp.float32).at[a].set(1.0)  # noqa: E731
        signal = jnp.where(state.t == 0, onehot(ACTIONS.index("left") if last else STAY),
                           onehot(ACTIONS.index("right") if last else STAY))  # fmt: skip
        if nav.coins.shape[0]:
            own = nav.coins[index, _door_index(state, nav), 0]
            field = jnp.where(state.coin_alive[index], own, nearest_coin_field(state, nav))
        else:
            field = jnp.full(nav.coins.shape[-2:], FAR, jnp.int16)
        allowed = jnp.ones((NUM_ACTIONS,), bool)
        start = derive_layout(params).agent_start
        if start is not None:
            cell = jnp.asarray(start) + jnp.asarray([0, -1])
            allowed = ~jnp.all(moves(state, params) == cell, axis=-1)
        walk = with_noise(toward(field, state, params), self.eps, allowed)
        return jnp.where(state.t < 2, signal, walk)


def answer_field(which: jax.Array | int, state: State, nav: Navigator) -> jax.Array:
    """(H, W) distance to answer tile `which` (0: "h = 0", 1: "h = 1", 2: the hedge `?`); all
    `FAR` in a world without answer tiles."""
    if nav.answers is None:
        return jnp.full(nav.coins.shape[-2:], FAR, jnp.int16)
    return nav.answers[which, _door_index(state, nav), 0]


def _answer_known(state: State, params: WorldParams, nav: Navigator, eps: float, unknown: jax.Array) -> jax.Array:
    """(A,) probabilities of the oracle characters (docs/characters.md, "Oracle characters"):
    toward `unknown` (a field) while the hidden bit is unknown, then toward the answer tile of the
    known bit; toward the hedge while the bit is unknown and `unknown` cannot be reached."""
    known = state.hidden > 0
    first = toward(unknown, state, params)
    hedge = toward(answer_field(2, state, nav), state, params)
    answer = toward(answer_field(jnp.maximum(state.hidden - 1, 0), state, nav), state, params)
    return with_noise(jnp.where(known, answer, jnp.where(jnp.any(first), first, hedge)), eps)


@character("sleuth")
@dataclasses.dataclass(frozen=True)
class Sleuth(Character):
    """Oracle worlds: fetches the clue, then gives the answer it reveals (information)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return _answer_known(state, params, nav, self.eps, field_of(nav.clue, state, nav))


@character("fixer")
@dataclasses.dataclass(frozen=True)
class Fixer(Character):
    """Oracle worlds: steps on the fixer, then gives the answer it made true (control: the
    self-fulfilling prophecy)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return _answer_known(state, params, nav, self.eps, field_of(nav.fixer, state, nav))


@character("guesser")
@dataclasses.dataclass(frozen=True)
class Guesser(Character):
    """Oracle worlds: answers 0 or 1 at once, at the nearer of the two tiles (a blind guess;
    the answer the bit names if the bit is already known)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        blind = jnp.minimum(answer_field(0, state, nav), answer_field(1, state, nav))
        return _answer_known(state, params, nav, self.eps, blind)


@character("hedger")
@dataclasses.dataclass(frozen=True)
class Hedger(Character):
    """Oracle worlds: goes straight to the hedge `?` (log 0.5 whatever the bit is)."""

    eps: float = 0.1

    def probs(self, state, params, nav):
        return with_noise(toward(answer_field(2, state, nav), state, params), self.eps)


# ------------------------------------------------------------------------------------------------
# mixtures


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Mixture:
    """Who acts in a corpus: each episode draws one character with these weights (normalised)."""

    characters: tuple[Character, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.characters:
            raise ValueError("a mixture needs at least one character")
        if len(self.characters) != len(self.weights):
            raise ValueError(f"a mixture needs one weight per character, got {len(self.weights)} for {len(self.characters)}")
        w = np.asarray(self.weights, np.float64)
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"mixture weights must be positive numbers, got {list(self.weights)}")
        object.__setattr__(self, "weights", tuple(float(x) for x in w / w.sum()))
        names = [c.name for c in self.characters]
        if len(set(names)) != len(names):
            raise ValueError(f"a mixture lists the same character twice: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.characters)

    def probs(self, state: State, params: WorldParams, nav: Navigator) -> jax.Array:
        """(C, A): every character's action probabilities in this state."""
        return jnp.stack([c.probs(state, params, nav) for c in self.characters])

    def to_list(self) -> list[dict]:
        return [
            {"kind": c.kind, "traits": dataclasses.asdict(c), "weight": w, "name": c.name}
            for c, w in zip(self.characters, self.weights)
        ]

    @classmethod
    def from_list(cls, items: list[dict]) -> "Mixture":
        chars, weights = [], []
        for it in items:
            if it.get("kind") not in REGISTRY:
                raise ValueError(f"unknown character kind {it.get('kind')!r}; known: {', '.join(REGISTRY)}")
            chars.append(REGISTRY[it["kind"]](**it.get("traits", {})))
            weights.append(it["weight"])
        return cls(tuple(chars), tuple(weights))


_SPEC = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\(([^)]*)\))?\s*(?::\s*([^,]+))?\s*$")


def parse_character(text: str) -> Character:
    """`"seeker"`, `"seeker(0.3)"` or `"seeker(eps=0.3)"` -> a Character."""
    m = _SPEC.match(text)
    if not m or m.group(3) is not None:
        raise ValueError(f"cannot read character {text!r}; write e.g. seeker or seeker(0.3)")
    return _build(m.group(1), m.group(2), text)


def _build(kind: str, args: str | None, text: str) -> Character:
    if kind not in REGISTRY:
        raise ValueError(f"unknown character {kind!r} in {text!r}; known: {', '.join(REGISTRY)}")
    cls = REGISTRY[kind]
    fields = [f.name for f in dataclasses.fields(cls)]
    traits = {}
    for i, a in enumerate(x.strip() for x in (args or "").split(",") if x.strip()):
        k, v = a.split("=", 1) if "=" in a else (fields[i] if i < len(fields) else "?", a)
        if k.strip() not in fields:
            raise ValueError(f"character {kind!r} has traits {fields}, cannot set {a!r} in {text!r}")
        try:
            traits[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"trait {kind}.{k.strip()} must be a number, got {v!r} in {text!r}") from None
    return cls(**traits)


def parse_mixture(text: str) -> Mixture:
    """`"seeker:0.5,random:0.5"` (weights normalised; a bare name weighs 1) -> a Mixture."""
    parts = re.findall(r"[^,(]+(?:\([^)]*\))?[^,]*", text)
    if not parts:
        raise ValueError(f"cannot read mixture {text!r}; write e.g. seeker:0.5,random:0.5")
    chars, weights = [], []
    for part in parts:
        m = _SPEC.match(part)
        if not m:
            raise ValueError(f"cannot read {part.strip()!r} in mixture {text!r}; write e.g. seeker(0.1):0.5")
        chars.append(_build(m.group(1), m.group(2), part.strip()))
        try:
            weights.append(float(m.group(3)) if m.group(3) is not None else 1.0)
        except ValueError:
            raise ValueError(f"weight of {part.strip()!r} must be a number") from None
    return Mixture(tuple(chars), tuple(weights))


def character_index(names, character: int | str) -> int:
    """The index of `character` among `names` (a mixture's or a model's characters): an index, a
    full name ("presser(0.1)"), or a bare name ("presser") when only one character has it."""
    names = list(names)
    if isinstance(character, str):
        if character in names:
            return names.index(character)
        bare = [n.split("(")[0] for n in names]
        if bare.count(character) == 1:
            return bare.index(character)
        raise ValueError(f"unknown character {character!r}; known: {names}")
    if not 0 <= character < len(names):
        raise ValueError(f"character index {character} out of range for {names}")
    return int(character)


__all__ = [
    "FAR",
    "REGISTRY",
    "Cautious",
    "Character",
    "Committed",
    "Fixer",
    "Guesser",
    "Hedger",
    "KeySeeker",
    "Lazy",
    "Mixture",
    "Navigator",
    "Presser",
    "Random",
    "Seeker",
    "Sleuth",
    "Tamperer",
    "character",
    "answer_field",
    "character_index",
    "field_of",
    "first_then_coins",
    "navigate",
    "nearest_coin_field",
    "parse_character",
    "parse_mixture",
    "safe_actions",
    "toward",
    "with_noise",
]
