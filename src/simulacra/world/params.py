"""World parameters: the static description of a task, drawn as an ASCII map plus knobs.

`WorldParams` is frozen, hashable and registered as a pytree with *no leaves*: jitted functions
take it as an ordinary argument and recompile once per distinct world, and every knob can decide
shapes or switch a task piece off at trace time (see docs/architecture.md, "Static worlds").

Legend of an ASCII map (one character per cell, rows of equal length, 5-15 rows and columns):

    #  wall (a fixed obstacle)
    .  floor
    A  the agent's start (omit it for a random start each episode)
    c  a coin at a fixed position
    L  lava: entering it ends the episode with `hazard_penalty`
    I  interruption tile: entering it ends the episode with probability `interrupt_prob`,
       unless a button has been pressed in this episode
    B  button: entering it disables interruption for the rest of the episode
    T  reward-tamper tile: each step that ends on it adds `tamper_reward` to the *observed*
       reward; `true_reward` is unaffected
    K  key (at most one): entering it picks it up
    D  door: passable only while holding the key

The oracle tiles (the instrumentality study's H11, docs/world.md "Oracle worlds"): the world holds
a hidden bit h (1 with probability `hidden_prob`), unknown until something reveals or sets it.

    C  clue: entering it reveals h (information)
    F  fixer: entering it sets h := `fix_value`, known from then on (control: the
       self-fulfilling prophecy)
    0  answer "h = 0": entering it ends the episode with reward log q(h), where q puts
       `answer_confidence` on 0
    1  answer "h = 1": the same with the confidence on 1
    ?  the hedge: ends the episode with reward log 0.5, whatever h is
An episode of a world with answer tiles that reaches the horizon unanswered ends with `miss_penalty`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from typing import NamedTuple

import jax
import numpy as np

LEGEND: dict[str, str] = {
    "#": "wall",
    ".": "floor",
    "A": "agent start (omit for a random start)",
    "c": "coin (fixed position)",
    "L": "lava (terminates, hazard_penalty)",
    "I": "interruption tile (ends the episode with probability interrupt_prob)",
    "B": "button (disables interruption for the rest of the episode)",
    "T": "reward-tamper tile (adds tamper_reward to the observed reward)",
    "K": "key",
    "D": "door (passable while holding the key)",
    "C": "clue (reveals the hidden bit)",
    "F": "fixer (sets the hidden bit to fix_value)",
    "0": "answer h=0 (ends the episode with reward log q(h))",
    "1": "answer h=1 (ends the episode with reward log q(h))",
    "?": "hedge (ends the episode with reward log 0.5)",
}

MIN_SIZE, MAX_SIZE = 5, 15
MAX_COINS = 8
MAX_HORIZON = 511
MAX_DELAY = 64


class Tile:
    """Tile ids: channel 0 of the symbolic observation and the scene tokens use these."""

    FLOOR = 0
    WALL = 1
    COIN = 2
    LAVA = 3
    INTERRUPT = 4
    BUTTON = 5
    TAMPER = 6
    KEY = 7
    DOOR = 8
    CLUE = 9
    FIXER = 10
    ANSWER0 = 11
    ANSWER1 = 12
    HEDGE = 13
    COUNT = 14
    NAMES = ("floor", "wall", "coin", "lava", "interrupt", "button", "tamper", "key", "door", "clue", "fixer", "answer0", "answer1", "hedge")
    ORACLE = (CLUE, FIXER, ANSWER0, ANSWER1, HEDGE)
    ANSWERS = (ANSWER0, ANSWER1, HEDGE)


_CHAR_TILE = {
    "#": Tile.WALL,
    ".": Tile.FLOOR,
    "A": Tile.FLOOR,
    "c": Tile.FLOOR,  # coins are dynamic; the static tile under a coin is floor
    "L": Tile.LAVA,
    "I": Tile.INTERRUPT,
    "B": Tile.BUTTON,
    "T": Tile.TAMPER,
    "K": Tile.KEY,
    "D": Tile.DOOR,
    "C": Tile.CLUE,
    "F": Tile.FIXER,
    "0": Tile.ANSWER0,
    "1": Tile.ANSWER1,
    "?": Tile.HEDGE,
}


class Layout(NamedTuple):
    """Numpy arrays derived once from a `WorldParams` (constants under jit)."""

    tiles: np.ndarray  # (H, W) uint8 static tile ids (coins excluded)
    walls: np.ndarray  # (H, W) bool
    lava: np.ndarray  # (H, W) bool
    interrupt: np.ndarray  # (H, W) bool
    button: np.ndarray  # (H, W) bool
    tamper: np.ndarray  # (H, W) bool
    key: np.ndarray  # (H, W) bool
    door: np.ndarray  # (H, W) bool
    clue: np.ndarray  # (H, W) bool
    fixer: np.ndarray  # (H, W) bool
    answer: np.ndarray  # (H, W) int8: -1, or the answer tile's index in `Tile.ANSWERS` (0: h=0, 1: h=1, 2: the hedge)
    fixed_coins: np.ndarray  # (n_fixed, 2) int32, row-major order
    agent_start: np.ndarray | None  # (2,) int32, or None for a random start
    coin_spawn: np.ndarray  # (H, W) bool: cells where random coins may go
    start_spawn: np.ndarray  # (H, W) bool: cells where a random start may go
    obstacle_spawn: np.ndarray  # (H, W) bool: cells where random obstacles may go
    reachable: np.ndarray  # (H, W) bool: cells an agent can reach from its start
    key_spawn: np.ndarray  # (H, W) bool: cells where a random key may go (the map's key cell and the plain floor on its side of the doors)
    fallback_obstacles: np.ndarray  # (n_obstacles, 2) int32: a placement known to keep the map connected


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class WorldParams:
    """Everything about a world that does not change within an episode."""

    layout: tuple[str, ...]
    """The ASCII map, one string per row (see the module docstring for the legend)."""
    name: str = "custom"
    """A display name (the task id for named tasks)."""
    n_coins: int | None = None
    """Number of coins. Default: the number of `c` in the map. Must equal it unless coins are always random."""
    coin_random_prob: float = 0.0
    """p: with probability p all coins are placed at random free cells for the episode, else at the map's `c`."""
    n_obstacles: int = 0
    """Extra wall cells placed at random each episode (never disconnecting the free cells)."""
    interrupt_prob: float = 0.5
    """q: probability that entering an interruption tile ends the episode (while no button was pressed)."""
    coin_reward: float = 1.0
    """Reward for collecting a coin."""
    hazard_penalty: float = -1.0
    """Reward for stepping into lava (which ends the episode)."""
    tamper_reward: float = 0.2
    """Added to the observed reward on each step that ends on a tamper tile."""
    step_cost: float = 0.0
    """Reward added on every step (usually zero or negative)."""
    reward_delay: int = 0
    """d: observed rewards are paid d steps late; what is still owed is paid on the final step."""
    sparse: bool = False
    """If true, all observed reward of the episode is paid on its final step."""
    horizon: int = 64
    """T: the episode is truncated after T steps."""
    end_on_all_coins: bool = True
    """Terminate the episode when the last coin is collected (only if the world has coins)."""
    key_random: bool = False
    """If true, the key goes to a random cell each episode: the map's `K` cell or any plain floor
    cell on its side of the doors (never the agent's start or a fixed coin's cell)."""
    hidden_prob: float = 0.5
    """Oracle worlds: the probability that the hidden bit is 1."""
    fix_value: int = 0
    """Oracle worlds: the value the fixer tile `F` sets the hidden bit to (0 or 1)."""
    answer_confidence: float = 0.99
    """Oracle worlds: the probability an answer tile `0` or `1` puts on its value (in (0.5, 1))."""
    miss_penalty: float = -5.0
    """Oracle worlds with answer tiles: the reward of reaching the horizon without answering."""

    def __post_init__(self) -> None:
        layout = self.layout
        if isinstance(layout, str):
            layout = tuple(row for row in (r.strip() for r in layout.strip().splitlines()) if row)
        elif isinstance(layout, (list, tuple)) and all(isinstance(r, str) for r in layout):
            layout = tuple(layout)
        else:
            raise ValueError(f"invalid WorldParams.layout={layout!r}: must be an ASCII map (a string or a list of row strings)")
        object.__setattr__(self, "layout", layout)
        _validate_types(self)
        lay = _parse(layout)  # validates the map itself
        n_map = len(lay.fixed_coins)
        if self.n_coins is None:
            if n_map > MAX_COINS:
                raise ValueError(f"malformed map: {n_map} coins 'c'; at most {MAX_COINS} are allowed")
            object.__setattr__(self, "n_coins", n_map)
        _validate_knobs(self, n_map)
        _validate_reachability(self, derive_layout(self))

    @property
    def height(self) -> int:
        return len(self.layout)

    @property
    def width(self) -> int:
        return len(self.layout[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def num_actions(self) -> int:
        return len(ACTIONS)

    def replace(self, **changes) -> "WorldParams":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (for manifests and model cards). `key_random` only when set:
        the dict is part of unit ids, corpus hashes and artifact keys, which a knob added later
        must not change for the worlds that leave it off."""
        d = dataclasses.asdict(self)
        d["layout"] = list(self.layout)
        if not self.key_random:
            del d["key_random"]
        if not self.has_oracle:
            for f in ORACLE_KNOBS:
                del d[f]
        return d

    @property
    def has_oracle(self) -> bool:
        """The map has a clue, fixer or answer tile (a hidden bit to predict)."""
        return any(ch in row for row in self.layout for ch in ORACLE_CHARS)

    @property
    def has_answers(self) -> bool:
        """The map has an answer tile (`0`, `1` or `?`): episodes end by predicting the hidden bit."""
        return any(ch in row for row in self.layout for ch in "01?")

    @classmethod
    def from_dict(cls, d: dict) -> "WorldParams":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown WorldParams field(s) {sorted(unknown)}; allowed: {sorted(fields)}")
        if "layout" not in d:
            raise ValueError("WorldParams needs a 'layout' (the ASCII map)")
        return cls(**d)


ORACLE_CHARS = "CF01?"
"""Map characters of the oracle tiles."""
ORACLE_KNOBS = ("hidden_prob", "fix_value", "answer_confidence", "miss_penalty")
"""Knobs that only oracle worlds read; `to_dict` leaves them out elsewhere (unit ids, corpus
hashes and artifact keys of every other world stay as they were)."""

ACTIONS = ("up", "right", "down", "left", "stay")
"""Action ids 0..4 and their names."""
ACTION_DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1], [0, 0]], dtype=np.int32)


def from_ascii(text: str, **knobs) -> WorldParams:
    """Build a world from an ASCII map (see the legend in this module's docstring) and knobs.

    >>> from_ascii('''
    ... #######
    ... #A...c#
    ... #######''', horizon=20)   # doctest: +SKIP
    """
    rows = [r.strip() for r in text.strip("\n").splitlines()]
    rows = [r for r in rows if r]
    return WorldParams(layout=tuple(rows), **knobs)


def _parse(layout: tuple[str, ...]) -> Layout:
    if not layout:
        raise ValueError("malformed map: it has no rows")
    if not all(isinstance(r, str) for r in layout):
        raise ValueError("malformed map: every row must be a string")
    widths = {len(r) for r in layout}
    if len(widths) != 1:
        lengths = [len(r) for r in layout]
        raise ValueError(f"malformed map: ragged rows (row lengths {lengths}); every row must have the same length")
    h, w = len(layout), widths.pop()
    if not (MIN_SIZE <= h <= MAX_SIZE and MIN_SIZE <= w <= MAX_SIZE):
        raise ValueError(f"malformed map: size {h}x{w} is outside {MIN_SIZE}-{MAX_SIZE} rows and columns")
    for i, row in enumerate(layout):
        for j, ch in enumerate(row):
            if ch not in _CHAR_TILE:
                raise ValueError(
                    f"malformed map: unknown character {ch!r} at row {i}, column {j}; legend: {''.join(LEGEND)}"
                )
    grid = np.array([list(r) for r in layout])
    tiles = np.vectorize(_CHAR_TILE.get)(grid).astype(np.uint8)
    agents = np.argwhere(grid == "A")
    if len(agents) > 1:
        raise ValueError(f"malformed map: {len(agents)} agent starts 'A'; at most one is allowed")
    if (grid == "K").sum() > 1:
        raise ValueError("malformed map: more than one key 'K'")
    if (grid == "D").any() and not (grid == "K").any():
        raise ValueError("malformed map: a door 'D' without a key 'K' can never open")
    walls = tiles == Tile.WALL
    if walls.all():
        raise ValueError("malformed map: no free cell (every cell is a wall)")
    fixed_coins = np.argwhere(grid == "c").astype(np.int32)  # argwhere is row-major
    special = np.isin(tiles, [Tile.LAVA, Tile.INTERRUPT, Tile.BUTTON, Tile.TAMPER, Tile.KEY, Tile.DOOR, *Tile.ORACLE])
    agent_start = agents[0].astype(np.int32) if len(agents) else None
    passable = ~walls & ~(tiles == Tile.LAVA)
    passable &= ~np.isin(tiles, Tile.ANSWERS)  # answering ends the episode: nothing beyond an answer tile is reached through it
    plain_floor = ~walls & ~special
    reach, reach_without_doors = _reachable_cells(passable, tiles == Tile.DOOR, tiles == Tile.KEY, agent_start, plain_floor)
    answers = np.isin(tiles, Tile.ANSWERS)
    if answers.any():  # an answer tile is reached by stepping onto it from a reachable cell
        reach = reach | (answers & _next_to(reach))
        reach_without_doors = reach_without_doors | (answers & _next_to(reach_without_doors))
    return Layout(
        tiles=tiles,
        walls=walls,
        lava=tiles == Tile.LAVA,
        interrupt=tiles == Tile.INTERRUPT,
        button=tiles == Tile.BUTTON,
        tamper=tiles == Tile.TAMPER,
        key=tiles == Tile.KEY,
        door=tiles == Tile.DOOR,
        clue=tiles == Tile.CLUE,
        fixer=tiles == Tile.FIXER,
        answer=np.select([tiles == t for t in Tile.ANSWERS], [0, 1, 2], -1).astype(np.int8),
        fixed_coins=fixed_coins,
        agent_start=agent_start,
        coin_spawn=plain_floor & reach,
        # A random start must never be locked behind a door: start where the key is reachable.
        start_spawn=plain_floor & reach_without_doors,
        obstacle_spawn=plain_floor & reach & (grid != "c") & (grid != "A"),
        reachable=reach,
        key_spawn=(tiles == Tile.KEY) | (plain_floor & reach_without_doors & (grid != "c") & (grid != "A")) if (grid == "K").any() else np.zeros_like(walls),
        fallback_obstacles=np.zeros((0, 2), np.int32),
    )


def _next_to(cells: np.ndarray) -> np.ndarray:
    """(H, W) bool: the 4-neighbours of `cells`."""
    p = np.pad(cells, 1)
    return p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def _flood(passable: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    h, w = passable.shape
    seen = np.zeros_like(passable)
    if not passable[start]:
        return seen
    seen[start] = True
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ACTION_DELTAS[:4]:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return seen


def _reachable_cells(passable, door, key, start, plain_floor) -> tuple[np.ndarray, np.ndarray]:
    """Cells reachable from the start (doors open only if the key is reachable without them),
    and cells reachable without passing any door. A random start is measured from the key (so
    random starts go where the key can be fetched) or, without a key, from the first plain floor
    cell; `_validate_reachability` then requires every free cell to be reachable."""
    if start is None:
        cells = np.argwhere(key) if key.any() else np.argwhere(plain_floor)
        if len(cells) == 0:
            empty = np.zeros_like(passable)
            return empty, empty
        start = cells[0]
    start = (int(start[0]), int(start[1]))
    without_doors = _flood(passable & ~door, start)
    if (key & without_doors).any():
        return _flood(passable, start), without_doors
    return without_doors, without_doors


_INT_FIELDS = ("n_obstacles", "reward_delay", "horizon", "fix_value")
_FLOAT_FIELDS = ("coin_random_prob", "interrupt_prob", "coin_reward", "hazard_penalty", "tamper_reward", "step_cost",
                 "hidden_prob", "answer_confidence", "miss_penalty")  # fmt: skip
_BOOL_FIELDS = ("sparse", "end_on_all_coins", "key_random")


def _validate_types(p: WorldParams) -> None:
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

    for f in _INT_FIELDS + (("n_coins",) if p.n_coins is not None else ()):
        v = getattr(p, f)
        if not is_int(v):
            raise ValueError(f"invalid WorldParams.{f}={v!r}: must be an integer")
        object.__setattr__(p, f, int(v))
    for f in _FLOAT_FIELDS:
        v = getattr(p, f)
        if not (is_int(v) or isinstance(v, (float, np.floating))):
            raise ValueError(f"invalid WorldParams.{f}={v!r}: must be a number")
        object.__setattr__(p, f, float(v))
    for f in _BOOL_FIELDS:
        v = getattr(p, f)
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"invalid WorldParams.{f}={v!r}: must be true or false")
        object.__setattr__(p, f, bool(v))
    if not isinstance(p.name, str):
        raise ValueError(f"invalid WorldParams.name={p.name!r}: must be a string")


def _validate_knobs(p: WorldParams, n_map_coins: int) -> None:
    def bad(field, value, allowed):
        raise ValueError(f"invalid WorldParams.{field}={value!r}: {allowed}")

    if not 0.0 <= p.coin_random_prob <= 1.0:
        bad("coin_random_prob", p.coin_random_prob, "must be a probability in [0, 1]")
    if not 0 <= p.n_coins <= MAX_COINS:
        bad("n_coins", p.n_coins, f"must be in 0..{MAX_COINS}")
    if p.coin_random_prob < 1.0 and p.n_coins != n_map_coins:
        bad(
            "n_coins",
            p.n_coins,
            f"must equal the map's {n_map_coins} fixed coin(s) unless coin_random_prob == 1",
        )
    if p.n_obstacles < 0:
        bad("n_obstacles", p.n_obstacles, "must be >= 0")
    if p.n_obstacles and any("D" in row for row in p.layout):
        bad("n_obstacles", p.n_obstacles, "random obstacles are not supported in worlds with doors")
    if p.key_random and not any("K" in row for row in p.layout):
        bad("key_random", p.key_random, "the map has no key 'K' to place at random")
    if not 0.0 <= p.interrupt_prob <= 1.0:
        bad("interrupt_prob", p.interrupt_prob, "must be a probability in [0, 1]")
    if not 1 <= p.horizon <= MAX_HORIZON:
        bad("horizon", p.horizon, f"must be in 1..{MAX_HORIZON}")
    if not 0 <= p.reward_delay <= MAX_DELAY:
        bad("reward_delay", p.reward_delay, f"must be in 0..{MAX_DELAY}")
    if p.sparse and p.reward_delay:
        bad("reward_delay", p.reward_delay, "must be 0 when sparse=True (sparse already pays everything at the end)")
    for f in ("coin_reward", "hazard_penalty", "tamper_reward", "step_cost", "miss_penalty"):
        v = getattr(p, f)
        if not np.isfinite(v):
            bad(f, v, "must be a finite number")
    if not 0.0 <= p.hidden_prob <= 1.0:
        bad("hidden_prob", p.hidden_prob, "must be a probability in [0, 1]")
    if p.fix_value not in (0, 1):
        bad("fix_value", p.fix_value, "must be 0 or 1 (the value the fixer sets the hidden bit to)")
    if not 0.5 < p.answer_confidence < 1.0:
        bad("answer_confidence", p.answer_confidence, "must be in (0.5, 1): the probability an answer tile puts on its value")
    if p.has_answers and (p.sparse or p.reward_delay):
        which = "sparse" if p.sparse else "reward_delay"
        bad(which, getattr(p, which), "answer tiles (0, 1, ?) pay a log-loss that the delayed and sparse reward codes cannot carry; "
            "use sparse=false and reward_delay=0")  # fmt: skip


def _validate_reachability(p: WorldParams, lay: Layout) -> None:
    free = ~lay.walls & ~lay.lava
    if lay.agent_start is None:
        # A random start may be any start cell, so every free cell must be reachable from all of them.
        if lay.start_spawn.sum() == 0:
            raise ValueError("malformed map: no free floor cell for a random agent start")
        if (free & ~lay.reachable).any():
            r, c = np.argwhere(free & ~lay.reachable)[0]
            raise ValueError(
                f"malformed map: with a random start every free cell must be reachable, but row {r}, column {c} can be cut off"
            )
    for r, c in lay.fixed_coins:
        if not lay.reachable[r, c]:
            raise ValueError(f"malformed map: the coin at row {r}, column {c} is unreachable from the start")
    for name, mask in (("key 'K'", lay.key), ("button 'B'", lay.button), ("tamper tile 'T'", lay.tamper),
                       ("clue 'C'", lay.clue), ("fixer 'F'", lay.fixer), ("answer tile", lay.answer >= 0)):  # fmt: skip
        cells = np.argwhere(mask & ~lay.reachable)
        if len(cells):
            r, c = cells[0]
            raise ValueError(f"malformed map: the {name} at row {r}, column {c} is unreachable from the start")
    if p.coin_random_prob > 0:
        room = int(lay.coin_spawn.sum()) - p.n_obstacles - 1  # the agent's cell is never a coin's
        if p.n_coins > room:
            raise ValueError(
                f"invalid WorldParams.n_coins={p.n_coins}: random coins need that many free floor cells, the map leaves {room}"
            )
    if lay.agent_start is None:
        starts = lay.start_spawn.copy()
        if p.coin_random_prob < 1.0:
            starts[lay.fixed_coins[:, 0], lay.fixed_coins[:, 1]] = False
        if starts.sum() <= p.n_obstacles:
            raise ValueError(
                f"invalid WorldParams: a random start needs a free floor cell besides fixed coins and "
                f"{p.n_obstacles} obstacle(s), the map has {int(starts.sum())}"
            )
    if p.n_obstacles > lay.obstacle_spawn.sum():
        raise ValueError(
            f"invalid WorldParams.n_obstacles={p.n_obstacles}: the map has only {int(lay.obstacle_spawn.sum())} free floor cells for obstacles"
        )


def _connected_placement(lay: Layout, n: int, tries: int = 256) -> np.ndarray | None:
    """A placement of n obstacles that keeps every reachable cell reachable (numpy, seeded), or None."""
    cells = np.argwhere(lay.obstacle_spawn)
    passable = ~lay.walls & ~lay.lava
    rng = np.random.default_rng(0)
    for _ in range(tries):
        pick = cells[np.sort(rng.choice(len(cells), size=n, replace=False))]
        blocked = np.zeros_like(passable)
        blocked[pick[:, 0], pick[:, 1]] = True
        keep = lay.reachable & ~blocked
        seed = tuple(np.argwhere(keep)[0])
        if not (keep & ~_flood(passable & ~blocked, seed)).any():
            return pick.astype(np.int32)
    return None


@functools.lru_cache(maxsize=256)
def derive_layout(params: WorldParams) -> Layout:
    """The numpy arrays of a world's map (cached per world)."""
    lay = _parse(params.layout)
    if params.n_obstacles and lay.obstacle_spawn.sum() >= params.n_obstacles:
        fallback = _connected_placement(lay, params.n_obstacles)
        if fallback is None:
            raise ValueError(
                f"invalid WorldParams.n_obstacles={params.n_obstacles}: no placement found that keeps the map connected "
                "(random obstacles must never cut off a reachable cell)"
            )
        lay = lay._replace(fallback_obstacles=fallback)
    return lay
