"""A compact token encoding of the full world state, with one vocabulary shared by every world.

A state is split in two parts (docs/world.md, "Tokens"):

* the **scene**: what is fixed for an episode (the map's size and its tiles, including this
  episode's obstacles and coin cells) -- `[NUM h, NUM w, TILE x h*w]`, row-major;
* the **state tokens**: what changes -- `[CELL agent, COINS alive-mask, FLAGS, NUM t]`, then one
  `RCODE` per reward still owed (reward delay d), then `NUM tamper_count` in sparse worlds.

`decode(scene, tokens, params)` inverts `scene_tokens` + `state_tokens` exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.world.core import NUM_CODES, State, flag_bits, wall_grid
from simulacra.world.params import ACTIONS, MAX_COINS, MAX_HORIZON, MAX_SIZE, Tile, WorldParams, derive_layout


class Vocab:
    """Token id ranges. Each range is `(start, size)`; ids are `start + value`."""

    PAD, BOS, SEP = 0, 1, 2
    SPECIAL_NAMES = ("PAD", "BOS", "SEP")
    TILE = (3, Tile.COUNT)  # tile ids, see `Tile`
    NUM = (TILE[0] + TILE[1], MAX_HORIZON + 1)  # integers 0..511 (sizes, time, counts)
    CELL = (NUM[0] + NUM[1], MAX_SIZE * MAX_SIZE)  # cell (r, c) -> r * 15 + c
    COINS = (CELL[0] + CELL[1], 2**MAX_COINS)  # bit i set: coin i not yet collected
    FLAGS = (COINS[0] + COINS[1], 16)  # bit 0: interruption disabled, bit 1: holding the key, bits 2-3: the hidden bit (core.HIDDEN_NAMES)
    RCODE = (FLAGS[0] + FLAGS[1], NUM_CODES)  # a reward still owed (core.code_value)
    ACTION = (RCODE[0] + RCODE[1], len(ACTIONS))  # actions (used by trajectory formats)
    SIZE = ACTION[0] + ACTION[1]

    RANGES = ("TILE", "NUM", "CELL", "COINS", "FLAGS", "RCODE", "ACTION")

    @classmethod
    def describe(cls, token: int) -> str:
        """A readable name for one token id, e.g. `CELL(3,4)` or `TILE(coin)`."""
        token = int(token)
        if token < 3:
            return cls.SPECIAL_NAMES[token] if token >= 0 else f"INVALID({token})"
        for name in cls.RANGES:
            start, size = getattr(cls, name)
            if start <= token < start + size:
                v = token - start
                if name == "TILE":
                    return f"TILE({Tile.NAMES[v]})"
                if name == "CELL":
                    return f"CELL({v // MAX_SIZE},{v % MAX_SIZE})"
                if name == "ACTION":
                    return f"ACTION({ACTIONS[v]})"
                return f"{name}({v})"
        return f"INVALID({token})"


def scene_length(params: WorldParams) -> int:
    return 2 + params.height * params.width


def state_length(params: WorldParams) -> int:
    return 4 + params.reward_delay + (1 if params.sparse else 0)


def scene_tokens(state: State, params: WorldParams) -> jax.Array:
    """(2 + H*W,) int32: the episode's fixed layout (walls with obstacles, tiles, coin cells, key)."""
    lay = derive_layout(params)
    tiles = jnp.where(wall_grid(state, params), Tile.WALL, jnp.asarray(lay.tiles, jnp.int32))
    if lay.key.any():  # the key where this episode has it (the map's K unless key_random)
        tiles = jnp.where(jnp.asarray(lay.key), Tile.FLOOR, tiles).at[state.key[:, 0], state.key[:, 1]].set(Tile.KEY)
    if params.n_coins:
        tiles = tiles.at[state.coins[:, 0], state.coins[:, 1]].set(Tile.COIN)
    size = jnp.array([params.height, params.width], jnp.int32) + Vocab.NUM[0]
    return jnp.concatenate([size, tiles.reshape(-1) + Vocab.TILE[0]]).astype(jnp.int32)


def state_tokens(state: State, params: WorldParams) -> jax.Array:
    """(4 [+ d] [+ 1],) int32: the dynamic part of the state."""
    cell = state.agent[0] * MAX_SIZE + state.agent[1]
    mask = jnp.sum(state.coin_alive.astype(jnp.int32) << jnp.arange(params.n_coins, dtype=jnp.int32))
    flags = flag_bits(state)
    parts = [
        jnp.stack([cell + Vocab.CELL[0], mask + Vocab.COINS[0], flags + Vocab.FLAGS[0], state.t + Vocab.NUM[0]]),
        state.pending.astype(jnp.int32) + Vocab.RCODE[0],
    ]
    if params.sparse:
        parts.append((state.tamper_count + Vocab.NUM[0])[None])
    return jnp.concatenate(parts).astype(jnp.int32)


def encode(state: State, params: WorldParams) -> tuple[jax.Array, jax.Array]:
    """`(scene_tokens, state_tokens)` of a state."""
    return scene_tokens(state, params), state_tokens(state, params)


def decode(scene: jax.Array, tokens: jax.Array, params: WorldParams) -> State:
    """The `State` whose encoding is `(scene, tokens)` (jittable; assumes valid tokens, see `is_valid`)."""
    w, k = params.width, params.n_coins
    tiles = scene[2:] - Vocab.TILE[0]  # (H*W,)
    static_walls = jnp.asarray(derive_layout(params).walls.reshape(-1))
    obstacles = _cells_where((tiles == Tile.WALL) & ~static_walls, params.n_obstacles, w)
    coins = _cells_where(tiles == Tile.COIN, k, w)
    key = _cells_where(tiles == Tile.KEY, int(derive_layout(params).key.any()), w)
    cell = tokens[0] - Vocab.CELL[0]
    mask = tokens[1] - Vocab.COINS[0]
    flags = tokens[2] - Vocab.FLAGS[0]
    d = params.reward_delay
    return State(
        agent=jnp.stack([cell // MAX_SIZE, cell % MAX_SIZE]).astype(jnp.int32),
        obstacles=obstacles,
        coins=coins,
        coin_alive=((mask >> jnp.arange(k)) & 1).astype(bool),
        switch_off=(flags & 1).astype(bool),
        has_key=(flags & 2).astype(bool),
        key=key,
        t=(tokens[3] - Vocab.NUM[0]).astype(jnp.int32),
        pending=(tokens[4 : 4 + d] - Vocab.RCODE[0]).astype(jnp.int8),
        tamper_count=(tokens[4 + d] - Vocab.NUM[0]).astype(jnp.int32) if params.sparse else jnp.int32(0),
        hidden=(flags >> 2).astype(jnp.int32),
    )


def _cells_where(mask: jax.Array, n: int, w: int) -> jax.Array:
    """The first n cells (row-major) where the flat `mask` holds, as (n, 2) int32."""
    flat = jnp.where(mask, jnp.arange(mask.shape[0]), mask.shape[0])
    idx = jnp.sort(flat)[:n]
    return jnp.stack([idx // w, idx % w], axis=-1).astype(jnp.int32)


def _in(tok: jax.Array, rng: tuple[int, int], hi: int | None = None) -> jax.Array:
    start, size = rng
    return (tok >= start) & (tok < start + (size if hi is None else hi))


def is_valid(scene: jax.Array, tokens: jax.Array, params: WorldParams) -> jax.Array:
    """() bool: the tokens decode to a state this world can be in. Checked: every slot in range;
    the scene's size and the map's fixed tiles; obstacles and coins only where they may be placed
    (fixed coins where the map has them when coins are never random) and in the right numbers;
    the agent not in a wall, not on a live coin, not on the key or a door without holding the key;
    flags only for pieces the map has; time within the horizon and tamper count within time; the
    start of an episode (t = 0) exactly as reset leaves it. A dreamed state that fails this is
    illegal before any law is consulted; one that passes may still be unreachable by the law."""
    h, w, k, d = params.height, params.width, params.n_coins, params.reward_delay
    if tuple(scene.shape) != (scene_length(params),) or tuple(tokens.shape) != (state_length(params),):
        return jnp.array(False)
    lay = derive_layout(params)
    ok = (scene[0] == Vocab.NUM[0] + h) & (scene[1] == Vocab.NUM[0] + w)
    tiles = scene[2:] - Vocab.TILE[0]
    ok &= jnp.all(_in(scene[2:], Vocab.TILE))
    static_np = np.where(lay.key, Tile.FLOOR, lay.tiles) if params.key_random else lay.tiles
    static = jnp.asarray(static_np.reshape(-1), jnp.int32)
    floor = static == Tile.FLOOR
    on_floor = (tiles == Tile.FLOOR) | (tiles == Tile.WALL) | (tiles == Tile.COIN)
    if params.key_random:  # exactly one key, where reset may put it
        on_floor |= tiles == Tile.KEY
        key_here = tiles == Tile.KEY
        ok &= (jnp.sum(key_here) == 1) & jnp.all(~key_here | lay.key_spawn.reshape(-1))
    ok &= jnp.all(jnp.where(floor, on_floor, tiles == static))
    obstacle = floor & (tiles == Tile.WALL)
    coin = tiles == Tile.COIN
    ok &= (jnp.sum(obstacle) == params.n_obstacles) & jnp.all(~obstacle | lay.obstacle_spawn.reshape(-1))
    ok &= jnp.sum(coin) == k
    fixed = np.zeros(h * w, bool)
    fixed[lay.fixed_coins[:, 0] * w + lay.fixed_coins[:, 1]] = True
    allowed_coin = fixed if params.coin_random_prob == 0.0 else fixed | lay.coin_spawn.reshape(-1)
    ok &= jnp.all(~coin | allowed_coin)

    cell = tokens[0] - Vocab.CELL[0]
    r, c = cell // MAX_SIZE, cell % MAX_SIZE
    ok &= _in(tokens[0], Vocab.CELL) & (r < h) & (c < w)
    flat = jnp.clip(r, 0, h - 1) * w + jnp.clip(c, 0, w - 1)
    ok &= _in(tokens[1], Vocab.COINS, 2**k) & _in(tokens[2], Vocab.FLAGS) & _in(tokens[3], Vocab.NUM, params.horizon + 1)
    flags = tokens[2] - Vocab.FLAGS[0]
    switch_off, has_key = (flags & 1) > 0, (flags & 2) > 0
    if not lay.button.any():
        ok &= ~switch_off
    if not lay.key.any():
        ok &= ~has_key
    hidden = flags >> 2
    ok &= hidden <= (2 if params.has_oracle else 0)
    ok &= tiles[flat] != Tile.WALL
    ok &= ((tiles[flat] != Tile.KEY) & (tiles[flat] != Tile.DOOR)) | has_key
    if k:
        coin_cells = _cells_where(coin, k, w)
        alive = ((tokens[1] - Vocab.COINS[0]) >> jnp.arange(k)) & 1
        ok &= ~jnp.any((coin_cells[:, 0] * w + coin_cells[:, 1] == flat) & (alive > 0))
    codes = tokens[4 : 4 + d] - Vocab.RCODE[0]
    ok &= jnp.all(_in(tokens[4 : 4 + d], Vocab.RCODE) & ((codes == 0) | ((codes & 1) > 0)))
    t = tokens[3] - Vocab.NUM[0]
    tamper = tokens[4 + d] - Vocab.NUM[0] if params.sparse else jnp.int32(0)
    if params.sparse:
        ok &= _in(tokens[4 + d], Vocab.NUM, params.horizon + 1) & (tamper <= t)
    fresh = (tokens[1] - Vocab.COINS[0] == 2**k - 1) & (flags == 0) & jnp.all(codes == 0) & (tamper == 0)
    if lay.agent_start is not None:
        fresh &= cell == lay.agent_start[0] * MAX_SIZE + lay.agent_start[1]
    ok &= (t > 0) | fresh
    return ok


def describe(tokens: np.ndarray | jax.Array) -> list[str]:
    """Readable names of a token sequence (for debugging and docs)."""
    return [Vocab.describe(t) for t in np.asarray(tokens).reshape(-1)]
