"""The world's physics: pure, jittable, vmappable `reset` and `step`.

A step is a composition of small pure *pieces* (NAVIX style), each of which reads the world's
static `WorldParams` and is compiled away when its task feature is absent:

    move -> collect coins -> key -> door -> button -> tamper -> lava -> interruption
         -> oracle (clue, fixer, answer) -> termination -> time limit
         -> reward payment (delay / sparse) -> observation

A step has at most one coin flip, its *branch*: whether an interruption fires, or, in an oracle
world, the value of the hidden bit where the step is the first to need it (entering a clue tile or
an answer tile `0`/`1` while the bit is unknown). The bit is drawn lazily, when it is first needed
(the principle of deferred decisions): nothing observable depends on it before then, so the
episodes have the same law as if it were drawn at reset, and every step keeps two outcomes.
Interruption, clue and answer tiles are distinct cells, so the two kinds of flip never meet.
`transition(state, action, params, branch)` is the deterministic core; `law` enumerates both
outcomes with their probabilities (the exact law later issues measure simulators against), and
`step` samples one of them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from simulacra.world.params import ACTION_DELTAS, Layout, Tile, WorldParams, derive_layout

OBS_CHANNELS = ("tile", "agent", "flags")
"""Channels of the symbolic observation (H, W, 3) uint8: the tile id (`Tile`), 1 where the
agent stands, and the flag bits broadcast over the grid (bit 0: interruption disabled,
bit 1: holding the key, bits 2-3: the hidden bit's status in an oracle world, `HIDDEN_NAMES`)."""

EVENT_NAMES = ("coin", "hazard", "interrupted", "button", "tamper", "key", "door", "clue", "fix", "answer")
"""Events of a step (`Events`): clue (entered a clue tile), fix (entered a fixer tile) and answer
(entered an answer tile, which ends the episode) happen only in oracle worlds."""
HIDDEN_NAMES = ("unknown", "h=0", "h=1")
"""Status of an oracle world's hidden bit (`State.hidden`): not yet revealed or set, or known to be 0 or 1."""
COIN = EVENT_NAMES.index("coin")


def success(coins, params: WorldParams):
    """Whether episodes that collected `coins` coins succeeded: every coin of the world taken
    (never, in a world without coins). numpy or jax."""
    return (coins >= params.n_coins) & (params.n_coins > 0)


@struct.dataclass
class State:
    """Everything that changes within an episode (an immutable pytree; update with `.replace`)."""

    agent: jax.Array  # (2,) int32 row, column
    obstacles: jax.Array  # (n_obstacles, 2) int32 this episode's random wall cells, row-major order
    coins: jax.Array  # (K, 2) int32 coin cells, row-major order, fixed for the episode
    coin_alive: jax.Array  # (K,) bool: not yet collected
    switch_off: jax.Array  # () bool: a button was pressed, interruption is disabled
    has_key: jax.Array  # () bool
    key: jax.Array  # (n_key, 2) int32 the key's cell, fixed for the episode (n_key 1 in a world with a key, else 0)
    t: jax.Array  # () int32 steps taken
    pending: jax.Array  # (d,) int8 reward codes not yet paid (reward delay d; oldest first)
    tamper_count: jax.Array  # () int32 steps spent tampering (only tracked when sparse)
    hidden: jax.Array  # () int32 the hidden bit's status, `HIDDEN_NAMES` (always 0 outside oracle worlds)


@struct.dataclass
class Events:
    """What happened in one step (all () bool)."""

    coin: jax.Array
    hazard: jax.Array
    interrupted: jax.Array
    button: jax.Array
    tamper: jax.Array
    key: jax.Array
    door: jax.Array
    clue: jax.Array
    fix: jax.Array
    answer: jax.Array

    def as_array(self) -> jax.Array:
        """(..., len(EVENT_NAMES)) bool in `EVENT_NAMES` order."""
        return jnp.stack([getattr(self, n) for n in EVENT_NAMES], axis=-1)


@struct.dataclass
class Step:
    """The outcome of one step."""

    obs: jax.Array  # (H, W, 3) uint8 observation to act on next
    reward: jax.Array  # () float32 observed reward (tampered, delayed, sparse)
    true_reward: jax.Array  # () float32 what really happened this step
    terminated: jax.Array  # () bool the episode ended inside the world (no bootstrapping)
    truncated: jax.Array  # () bool the time limit ended it (bootstrap from final_obs)
    events: Events
    final_obs: jax.Array | None = None  # set by `step_auto_reset`: obs before the reset


# Reward codes: the observed reward of one step as bits, so that delayed rewards can be
# stored exactly (and tokenised): valid | coin << 1 | hazard << 2 | tamper << 3.
CODE_VALID, CODE_COIN, CODE_HAZARD, CODE_TAMPER = 1, 2, 4, 8
NUM_CODES = 16


def code_value(code: jax.Array, params: WorldParams) -> jax.Array:
    """Observed reward carried by a reward code (0 for an empty slot)."""
    code = code.astype(jnp.int32)
    bit = lambda b: ((code & b) > 0).astype(jnp.float32)  # noqa: E731
    value = (
        params.step_cost
        + params.coin_reward * bit(CODE_COIN)
        + params.hazard_penalty * bit(CODE_HAZARD)
        + params.tamper_reward * bit(CODE_TAMPER)
    )
    return bit(CODE_VALID) * value


# ---------------------------------------------------------------------------------------------
# reset


def _cell_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(h)[:, None], np.arange(w)[None, :]


def _at(grid: np.ndarray | jax.Array, pos: jax.Array) -> jax.Array:
    return jnp.asarray(grid)[pos[0], pos[1]]


def _flood_fill(passable: jax.Array, seed: jax.Array) -> jax.Array:
    """Cells 4-connected to `seed` through `passable` (both (H, W) bool)."""

    def grow(carry):
        reach, _ = carry
        padded = jnp.pad(reach, 1)
        nbr = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
        new = reach | (nbr & passable)
        return new, jnp.any(new != reach)

    reach, _ = jax.lax.while_loop(lambda c: c[1], grow, (seed & passable, jnp.array(True)))
    return reach


def _sample_cells(u: jax.Array, allowed: jax.Array, n: int) -> jax.Array:
    """n distinct cells drawn uniformly from `allowed` ((H, W) bool) using the n uniform numbers
    `u`, as (n, 2) int32, row-major sorted.

    One uniform number per cell drawn (the j-th allowed cell is found with a cumulative sum), which
    is much cheaper than a number per grid cell when reset runs inside every auto-reset step."""
    h, w = allowed.shape
    flat = allowed.reshape(-1)
    picked = []
    for i in range(n):
        csum = jnp.cumsum(flat, dtype=jnp.int32)
        j = jnp.minimum((u[i] * csum[-1]).astype(jnp.int32), csum[-1] - 1)
        idx = jnp.argmax(csum > j)  # the (j+1)-th allowed cell
        flat = flat.at[idx].set(False)
        picked.append(idx)
    idx = jnp.sort(jnp.stack(picked)) if n else jnp.zeros((0,), jnp.int32)
    return jnp.stack([idx // w, idx % w], axis=-1).astype(jnp.int32)


def _sample_obstacles(key: jax.Array, params: WorldParams, lay: Layout) -> jax.Array:
    """(n_obstacles, 2) random wall cells that leave every reachable cell reachable."""
    n = params.n_obstacles
    passable = ~jnp.asarray(lay.walls | lay.lava)
    must_reach = jnp.asarray(lay.reachable)

    def draw(k):
        cells = _sample_cells(jax.random.uniform(k, (n,)), jnp.asarray(lay.obstacle_spawn), n)
        blocked = jnp.zeros(lay.walls.shape, bool).at[cells[:, 0], cells[:, 1]].set(True)
        targets = must_reach & ~blocked
        seed_idx = jnp.argmax(targets.reshape(-1))
        seed = jnp.zeros(lay.walls.size, bool).at[seed_idx].set(True).reshape(lay.walls.shape)
        reach = _flood_fill(passable & ~blocked, seed)
        return cells, ~jnp.any(targets & ~reach)

    def body(c):
        k, _, _, i = c
        k, sub = jax.random.split(k)
        return (k, *draw(sub), i + 1)

    k0, sub0 = jax.random.split(key)
    _, cells, ok, _ = jax.lax.while_loop(lambda c: ~c[2] & (c[3] < 64), body, (k0, *draw(sub0), jnp.int32(1)))
    # After 64 unlucky draws (only on maps that are nearly cut in two) use a placement found
    # connected when the params were validated.
    return jnp.where(ok, cells, jnp.asarray(lay.fallback_obstacles))


def _mark(cells: jax.Array, params: WorldParams) -> jax.Array:
    """(H, W) bool: True at the (n, 2) `cells`."""
    return jnp.zeros(params.shape, bool).at[cells[:, 0], cells[:, 1]].set(True)


def key_grid(state: State, params: WorldParams) -> jax.Array:
    """(H, W) bool: the episode's key cell (whether or not the key was taken; none without a key)."""
    return _mark(state.key, params)


def wall_grid(state: State, params: WorldParams) -> jax.Array:
    """(H, W) bool: the map's walls plus this episode's obstacles."""
    walls = jnp.asarray(derive_layout(params).walls)
    if params.n_obstacles:
        walls = walls.at[state.obstacles[:, 0], state.obstacles[:, 1]].set(True)
    return walls


def _start_cells(params: WorldParams, lay: Layout) -> np.ndarray:
    """Cells a random start may use: never where a fixed coin may be this episode."""
    cells = lay.start_spawn.copy()
    if params.coin_random_prob < 1.0:
        cells[lay.fixed_coins[:, 0], lay.fixed_coins[:, 1]] = False
    return cells


def reset(key: jax.Array, params: WorldParams) -> State:
    """A fresh episode: obstacles, agent start and coins drawn as the params say."""
    lay = derive_layout(params)
    k = params.n_coins
    if params.n_obstacles:
        key, k_obst = jax.random.split(key)
        obstacles = _sample_obstacles(k_obst, params, lay)
    else:
        obstacles = jnp.zeros((0, 2), jnp.int32)
    if params.key_random:  # split only here, so that every other world draws exactly as before
        key, k_key = jax.random.split(key)
    # One draw for everything else: [agent start, coin mode, coin cells ...] (unused ones compile away).
    u = jax.random.uniform(key, (2 + k,))
    free = jnp.ones(params.shape, bool).at[obstacles[:, 0], obstacles[:, 1]].set(False)
    if lay.agent_start is None:
        start_cells = _start_cells(params, lay)
        agent = _sample_cells(u[:1], jnp.asarray(start_cells) & free, 1)[0]
    else:
        agent = jnp.asarray(lay.agent_start, jnp.int32)
    rows, cols = _cell_grid(*params.shape)
    here = (rows == agent[0]) & (cols == agent[1])
    if params.key_random:
        fixed = np.zeros(params.shape, bool)
        fixed[lay.fixed_coins[:, 0], lay.fixed_coins[:, 1]] = params.coin_random_prob < 1.0
        key_cell = _sample_cells(jax.random.uniform(k_key, (1,)), jnp.asarray(lay.key_spawn & ~fixed) & ~here, 1)
    else:
        key_cell = jnp.asarray(np.argwhere(lay.key), jnp.int32).reshape(-1, 2)
    spawn = jnp.asarray(lay.coin_spawn) & free & ~here & ~_mark(key_cell, params)
    if params.coin_random_prob == 0.0:
        coins = jnp.asarray(lay.fixed_coins, jnp.int32).reshape(k, 2)
    else:
        random_coins = _sample_cells(u[2:], spawn, k)
        if params.coin_random_prob == 1.0:
            coins = random_coins
        else:
            use_random = u[1] < params.coin_random_prob
            coins = jnp.where(use_random, random_coins, jnp.asarray(lay.fixed_coins, jnp.int32))
    return State(
        agent=agent,
        obstacles=obstacles,
        coins=coins,
        coin_alive=jnp.ones((k,), bool),
        switch_off=jnp.array(False),
        has_key=jnp.array(False),
        key=key_cell,
        t=jnp.int32(0),
        pending=jnp.zeros((params.reward_delay,), jnp.int8),
        tamper_count=jnp.int32(0),
        hidden=jnp.int32(0),
    )


# ---------------------------------------------------------------------------------------------
# observation


def tile_grid(state: State, params: WorldParams) -> jax.Array:
    """(H, W) uint8 tile ids as they are now: walls, alive coins, the key until it is taken."""
    lay = derive_layout(params)
    tiles = jnp.asarray(lay.tiles)
    if params.n_obstacles:
        tiles = jnp.where(wall_grid(state, params), jnp.uint8(Tile.WALL), tiles)
    if lay.key.any():
        tiles = jnp.where(jnp.asarray(lay.key), jnp.uint8(Tile.FLOOR), tiles)
        tiles = jnp.where(key_grid(state, params) & ~state.has_key, jnp.uint8(Tile.KEY), tiles)
    if params.n_coins:
        rows, cols = _cell_grid(*params.shape)
        here = (rows[..., None] == state.coins[:, 0]) & (cols[..., None] == state.coins[:, 1])  # (H, W, K)
        coin = jnp.any(here & state.coin_alive, axis=-1)
        tiles = jnp.where(coin, jnp.uint8(Tile.COIN), tiles)
    return tiles


def flag_bits(state: State) -> jax.Array:
    """() int32: the state's flags, as the observation and the FLAGS token carry them (`OBS_CHANNELS`)."""
    return state.switch_off.astype(jnp.int32) | (state.has_key.astype(jnp.int32) << 1) | (state.hidden.astype(jnp.int32) << 2)


def observe(state: State, params: WorldParams) -> jax.Array:
    """The symbolic observation (H, W, 3) uint8; see `OBS_CHANNELS`."""
    rows, cols = _cell_grid(*params.shape)
    agent = ((rows == state.agent[0]) & (cols == state.agent[1])).astype(jnp.int32)
    flags = flag_bits(state)
    # Build one int32 per cell and split it into channels: on CPU this is much faster than
    # stacking three (H, W) planes along the last axis.
    packed = tile_grid(state, params).astype(jnp.int32) | (agent << 8) | (flags << 16)  # (H, W)
    return ((packed[..., None] >> jnp.array([0, 8, 16], jnp.int32)) & 0xFF).astype(jnp.uint8)  # (H, W, 3)


# ---------------------------------------------------------------------------------------------
# step pieces: each takes and returns a `_Transit` record; absent features compile away


class _Transit(NamedTuple):
    prev: State  # the state before the step
    state: State  # the state being built
    moved: jax.Array  # () bool the agent changed cell
    code: jax.Array  # () int32 reward code of this step
    events: dict  # event name -> () bool
    terminated: jax.Array
    extra: jax.Array | float = 0.0  # () reward outside the reward codes: an oracle world's log-loss


def _move(x: _Transit, action: jax.Array, params: WorldParams, lay: Layout) -> _Transit:
    pos0 = x.state.agent
    target = pos0 + jnp.asarray(ACTION_DELTAS)[action]
    target = jnp.clip(target, 0, jnp.array([params.height - 1, params.width - 1])).astype(jnp.int32)
    blocked = _at(lay.walls, target)
    if params.n_obstacles:
        blocked |= jnp.any(jnp.all(x.state.obstacles == target, axis=-1))
    if lay.door.any():
        blocked |= _at(lay.door, target) & ~x.state.has_key
    pos = jnp.where(blocked, pos0, target)
    return x._replace(state=x.state.replace(agent=pos), moved=jnp.any(pos != pos0))


def moves(state: State, params: WorldParams) -> jax.Array:
    """(A, 2) int32: the cell each action would take the agent to (walls, obstacles, the grid's
    edge and doors without the key block a move). Characters plan with this."""
    lay = derive_layout(params)

    def one(a):
        x = _Transit(state, state, jnp.array(False), jnp.int32(0), {}, jnp.array(False))
        return _move(x, a, params, lay).state.agent

    return jax.vmap(one)(jnp.arange(len(ACTION_DELTAS)))


def _collect_coins(x: _Transit, params: WorldParams, lay: Layout) -> _Transit:
    if params.n_coins == 0:
        return x._replace(events={**x.events, "coin": jnp.array(False)})
    s = x.state
    here = jnp.all(s.coins == s.agent, axis=-1) & s.coin_alive
    got = jnp.any(here)
    terminated = x.terminated
    alive = s.coin_alive & ~here
    if params.end_on_all_coins:
        terminated = terminated | ~jnp.any(alive)
    return x._replace(
        state=s.replace(coin_alive=alive),
        code=x.code | jnp.where(got, CODE_COIN, 0),
        events={**x.events, "coin": got},
        terminated=terminated,
    )


def _pick_key(x: _Transit, lay: Layout) -> _Transit:
    if not lay.key.any():
        return x._replace(events={**x.events, "key": jnp.array(False)})
    s = x.state
    got = jnp.any(jnp.all(s.key == s.agent, axis=-1)) & ~s.has_key  # the episode's key cell (fixed or random)
    return x._replace(state=s.replace(has_key=s.has_key | got), events={**x.events, "key": got})


def _door(x: _Transit, lay: Layout) -> _Transit:
    through = _at(lay.door, x.state.agent) & x.moved if lay.door.any() else jnp.array(False)
    return x._replace(events={**x.events, "door": through})


def _button(x: _Transit, lay: Layout) -> _Transit:
    if not lay.button.any():
        return x._replace(events={**x.events, "button": jnp.array(False)})
    s = x.state
    pressed = _at(lay.button, s.agent) & ~s.switch_off
    return x._replace(state=s.replace(switch_off=s.switch_off | pressed), events={**x.events, "button": pressed})


def _tamper(x: _Transit, params: WorldParams, lay: Layout) -> _Transit:
    if not lay.tamper.any():
        return x._replace(events={**x.events, "tamper": jnp.array(False)})
    s = x.state
    on = _at(lay.tamper, s.agent)
    if params.sparse:
        s = s.replace(tamper_count=s.tamper_count + on.astype(jnp.int32))
    return x._replace(state=s, code=x.code | jnp.where(on, CODE_TAMPER, 0), events={**x.events, "tamper": on})


def _lava(x: _Transit, lay: Layout) -> _Transit:
    if not lay.lava.any():
        return x._replace(events={**x.events, "hazard": jnp.array(False)})
    hit = _at(lay.lava, x.state.agent)
    return x._replace(
        code=x.code | jnp.where(hit, CODE_HAZARD, 0),
        events={**x.events, "hazard": hit},
        terminated=x.terminated | hit,
    )


def _can_interrupt(params: WorldParams) -> bool:
    return bool(derive_layout(params).interrupt.any()) and params.interrupt_prob > 0.0


def _flips_hidden(x: _Transit, lay: Layout) -> jax.Array:
    """() bool: this step is the first to need an unknown hidden bit (it enters a clue tile or an
    answer tile 0/1 while the bit is unknown)."""
    here = x.state.agent
    needs = _at(lay.clue, here) | (_at(lay.answer, here) == 0) | (_at(lay.answer, here) == 1)
    return needs & x.moved & (x.prev.hidden == 0)


def branch_prob(state: State, action: jax.Array, params: WorldParams) -> jax.Array:
    """Probability of this (state, action)'s second outcome (`law`): q when it enters an active
    interruption tile; `hidden_prob` (that the hidden bit is 1) when it is the first step to need
    an unknown hidden bit; else 0."""
    lay = derive_layout(params)
    can_interrupt, oracle = _can_interrupt(params), params.has_oracle
    if not (can_interrupt or oracle):
        return jnp.float32(0.0)
    x = _move(_Transit(state, state, jnp.array(False), jnp.int32(0), {}, jnp.array(False)), action, params, lay)
    p = jnp.float32(0.0)
    if can_interrupt:
        entering = _at(lay.interrupt, x.state.agent) & x.moved & ~state.switch_off
        p = jnp.where(entering, jnp.float32(params.interrupt_prob), p)
    if oracle:
        p = jnp.where(_flips_hidden(x, lay), jnp.float32(params.hidden_prob), p)
    return p


def _interruption(x: _Transit, interrupt: jax.Array, params: WorldParams, lay: Layout) -> _Transit:
    if not _can_interrupt(params):
        return x._replace(events={**x.events, "interrupted": jnp.array(False)})
    entering = _at(lay.interrupt, x.state.agent) & x.moved & ~x.prev.switch_off
    hit = entering & interrupt
    return x._replace(events={**x.events, "interrupted": hit}, terminated=x.terminated | hit)


def _oracle(x: _Transit, flip: jax.Array, params: WorldParams, lay: Layout) -> _Transit:
    """Clue, fixer and answer tiles (docs/world.md, "Oracle worlds"); `flip` is the hidden bit's
    value where this step is the first to need it (`_flips_hidden`)."""
    if not params.has_oracle:
        off = jnp.array(False)
        return x._replace(events={**x.events, "clue": off, "fix": off, "answer": off})
    s = x.state
    entered = x.moved
    bit = jnp.where(x.prev.hidden == 0, flip.astype(jnp.int32), x.prev.hidden - 1)  # h, drawn now if unknown
    clue = _at(lay.clue, s.agent) & entered
    fix = _at(lay.fixer, s.agent) & entered
    which = _at(lay.answer, s.agent)
    answer = (which >= 0) & entered
    hidden = jnp.where(clue & (x.prev.hidden == 0), 1 + bit, x.prev.hidden)
    hidden = jnp.where(fix, 1 + params.fix_value, hidden)
    c = params.answer_confidence
    log_q = jnp.where(which == 2, jnp.log(0.5), jnp.where(which == bit, jnp.log(c), jnp.log1p(-c)))
    if params.has_answers:  # the grade of an answer 0 or 1 reveals the bit (the hedge's grade does not depend on it)
        hidden = jnp.where(answer & (which < 2), 1 + bit, hidden)
    return x._replace(
        state=s.replace(hidden=hidden.astype(jnp.int32)),
        events={**x.events, "clue": clue, "fix": fix, "answer": answer},
        terminated=x.terminated | answer,
        extra=x.extra + jnp.where(answer, log_q, 0.0).astype(jnp.float32),
    )


def _pay(x: _Transit, truncated: jax.Array, params: WorldParams) -> tuple[_Transit, jax.Array]:
    """Observed reward of this step under the feedback-gap knobs (delay d / sparse)."""
    s = x.state
    done = x.terminated | truncated
    if params.sparse:
        collected = params.n_coins - jnp.sum(s.coin_alive)
        total = (
            params.step_cost * s.t
            + params.coin_reward * collected
            + params.hazard_penalty * x.events["hazard"]
            + params.tamper_reward * s.tamper_count
        )
        return x, jnp.where(done, total, 0.0).astype(jnp.float32)
    if params.reward_delay == 0:
        return x, code_value(x.code, params) + x.extra
    queue = jnp.concatenate([s.pending, x.code.astype(jnp.int8)[None]])  # (d + 1,)
    owed = jnp.sum(code_value(queue, params))
    paid = jnp.where(done, owed, code_value(queue[0], params))
    pending = jnp.where(done, jnp.zeros_like(s.pending), queue[1:])
    return x._replace(state=s.replace(pending=pending)), paid.astype(jnp.float32)


def transition(state: State, action: jax.Array, params: WorldParams, branch: jax.Array) -> tuple[State, Step]:
    """The deterministic core of a step, given its branch (`branch_prob`): whether an interruption
    fires, or the hidden bit's value where this step is the first to need it."""
    lay = derive_layout(params)
    x = _Transit(state, state, jnp.array(False), jnp.int32(CODE_VALID), {}, jnp.array(False))
    x = _move(x, action, params, lay)
    x = _collect_coins(x, params, lay)
    x = _pick_key(x, lay)
    x = _door(x, lay)
    x = _button(x, lay)
    x = _tamper(x, params, lay)
    x = _lava(x, lay)
    x = _interruption(x, branch, params, lay)
    x = _oracle(x, branch, params, lay)
    t = x.state.t + 1
    x = x._replace(state=x.state.replace(t=t))
    truncated = (t >= params.horizon) & ~x.terminated
    if params.has_answers:  # failing to predict is punished
        x = x._replace(extra=x.extra + jnp.where(truncated, jnp.float32(params.miss_penalty), 0.0))
    x, reward = _pay(x, truncated, params)
    true_reward = code_value(x.code & (CODE_VALID | CODE_COIN | CODE_HAZARD), params) + x.extra
    step = Step(
        obs=observe(x.state, params),
        reward=reward,
        true_reward=true_reward.astype(jnp.float32),
        terminated=x.terminated,
        truncated=truncated,
        events=Events(**x.events),
    )
    return x.state, step


def step(key: jax.Array, state: State, action: jax.Array, params: WorldParams) -> tuple[State, Step]:
    """One step of the world: `(key, state, action, params) -> (state, Step)`. Pure; no auto-reset."""
    if not (_can_interrupt(params) or params.has_oracle):  # deterministic world: draw nothing
        return transition(state, action, params, jnp.array(False))
    branch = jax.random.uniform(key) < branch_prob(state, action, params)
    return transition(state, action, params, branch)


def law(state: State, action: jax.Array, params: WorldParams) -> tuple[State, Step, jax.Array]:
    """The exact law of a step: both possible outcomes of its branch (no interruption or h = 0;
    interruption or h = 1), each with its probability. Returns (states, steps, probs) with a
    leading axis of size 2; the second outcome has probability 0 wherever nothing is drawn."""
    p = branch_prob(state, action, params)
    states, steps = jax.vmap(lambda i: transition(state, action, params, i))(jnp.array([False, True]))
    return states, steps, jnp.stack([1.0 - p, p])


def step_auto_reset(key: jax.Array, state: State, action: jax.Array, params: WorldParams) -> tuple[State, Step]:
    """`step`, then a branch-free reset where the episode ended.

    The returned `Step.obs` is the observation to act on next (the fresh episode's where it
    ended) and `Step.final_obs` the observation of the successor before any reset, which a
    learner needs to bootstrap on truncation."""
    k_step, k_reset = jax.random.split(key)
    nxt, st = step(k_step, state, action, params)
    fresh = reset(k_reset, params)
    done = st.terminated | st.truncated
    new_state = jax.tree.map(lambda f, n: jnp.where(done, f, n), fresh, nxt)
    # Observing the selected state once is cheaper than selecting between two observations;
    # `st.obs` is only computed when a caller uses `final_obs`.
    return new_state, st.replace(obs=observe(new_state, params), final_obs=st.obs)
