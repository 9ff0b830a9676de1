"""Exact planning helpers (jittable): BFS distance fields and the optimal return of a layout.

`optimal_return` is computed by finite-horizon dynamic programming over the *abstract* state
(agent cell, coins still alive, interruption disabled, holding the key) with the world's own
`transition` function, so it is exact for every task piece, including stochastic interruption,
lava, keys and doors. It maximises the expected *true* return: delay and sparse mode only move
observed reward in time (the total is the same), and tampering changes only the observed reward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simulacra.world.core import State, interrupt_prob, law, transition
from simulacra.world.params import WorldParams, derive_layout

UNREACHABLE = 1 << 20
"""Distance reported for cells from which no target can be reached."""


def distance_field(passable: jax.Array, targets: jax.Array) -> jax.Array:
    """(H, W) int32 shortest 4-connected path length from each cell to the nearest target,
    moving only through `passable` cells; `UNREACHABLE` where no target can be reached.
    Targets count as reachable even if not passable themselves (e.g. a coin under nothing)."""
    passable = jnp.asarray(passable, bool)
    targets = jnp.asarray(targets, bool)
    inf = jnp.int32(UNREACHABLE)
    d0 = jnp.where(targets, 0, inf)

    def relax(carry):
        d, _ = carry
        p = jnp.pad(d, 1, constant_values=UNREACHABLE)
        nbr = jnp.minimum(jnp.minimum(p[:-2, 1:-1], p[2:, 1:-1]), jnp.minimum(p[1:-1, :-2], p[1:-1, 2:]))
        new = jnp.where(passable & ~targets, jnp.minimum(d, nbr + 1), d)
        new = jnp.minimum(new, inf)
        return new, jnp.any(new != d)

    d, _ = jax.lax.while_loop(lambda c: c[1], relax, (d0, jnp.array(True)))
    return d


def _abstract_shape(params: WorldParams) -> tuple[int, int, int, int]:
    lay = derive_layout(params)
    return (
        params.height * params.width,
        2**params.n_coins,
        2 if lay.button.any() else 1,
        2 if lay.key.any() else 1,
    )


def abstract_index(state: State, params: WorldParams) -> jax.Array:
    """() int32: the index of `state` in the tables of `optimal_values` (cell, coins alive, switch, key)."""
    n_cells, n_masks, n_sw, n_key = _abstract_shape(params)
    cell = state.agent[0] * params.width + state.agent[1]
    mask = jnp.sum(state.coin_alive.astype(jnp.int32) << jnp.arange(params.n_coins, dtype=jnp.int32))
    sw = state.switch_off.astype(jnp.int32) if n_sw == 2 else 0
    key = state.has_key.astype(jnp.int32) if n_key == 2 else 0
    return ((cell * n_masks + mask) * n_sw + sw) * n_key + key


def optimal_values(state: State, params: WorldParams, steps: jax.Array | int) -> jax.Array:
    """Optimal expected true return with `steps` steps left, for every abstract state of the
    episode whose layout (walls, coins) `state` carries. Returns a flat array indexed like
    `abstract_index`."""
    shape = _abstract_shape(params)
    n_cells, n_masks, n_sw, n_key = shape
    n = n_cells * n_masks * n_sw * n_key
    idx = jnp.arange(n)
    key_bit, rest = idx % n_key, idx // n_key
    sw_bit, rest = rest % n_sw, rest // n_sw
    mask, cell = rest % n_masks, rest // n_masks

    def outcomes(cell, mask, sw_bit, key_bit, action):
        s = state.replace(
            agent=jnp.stack([cell // params.width, cell % params.width]).astype(jnp.int32),
            coin_alive=((mask >> jnp.arange(params.n_coins)) & 1).astype(bool),
            switch_off=sw_bit.astype(bool),
            has_key=key_bit.astype(bool),
            t=jnp.int32(0),
            pending=jnp.zeros_like(state.pending),
            tamper_count=jnp.int32(0),
        )
        p = interrupt_prob(s, action, params)
        nxt, st = jax.vmap(lambda i: transition(s, action, params, i))(jnp.array([False, True]))
        nidx = jax.vmap(lambda ns: abstract_index(ns, params))(nxt)
        return nidx, st.true_reward, st.terminated, jnp.stack([1.0 - p, p])

    actions = jnp.arange(params.num_actions)
    per_action = jax.vmap(outcomes, in_axes=(None, None, None, None, 0))
    per_state = jax.vmap(per_action, in_axes=(0, 0, 0, 0, None))
    nidx, reward, term, prob = per_state(cell, mask, sw_bit, key_bit, actions)  # (n, A, 2)
    cont = prob * (1.0 - term.astype(jnp.float32))
    immediate = jnp.sum(prob * reward, axis=-1)  # (n, A)

    def backup(v):
        return jnp.max(immediate + jnp.sum(cont * v[nidx], axis=-1), axis=-1)

    # Backups for the steps left, stopping early at an exact fixed point: once V_k == V_{k-1},
    # every later backup returns the same values (it is a function of V alone).
    def body(carry):
        i, v, _ = carry
        new = backup(v)
        return i + 1, new, jnp.any(new != v)

    v0 = jnp.zeros((n,), jnp.float32)
    _, v, _ = jax.lax.while_loop(lambda c: (c[0] < steps) & c[2], body, (jnp.int32(0), v0, jnp.array(True)))
    return v


def optimal_return(state: State, params: WorldParams) -> jax.Array:
    """() float32: the best expected true return achievable from `state` in the steps left
    before the horizon. From a reset state this is the optimal return of the episode's layout."""
    v = optimal_values(state, params, params.horizon - state.t)
    return v[abstract_index(state, params)]


def optimal_q(state: State, params: WorldParams) -> jax.Array:
    """(A,) float32: for each action, the best expected true return from `state` when taking
    it now and acting optimally afterwards (ties are real: several actions can be optimal)."""
    left = params.horizon - state.t
    v = optimal_values(state, params, jnp.maximum(left - 1, 0))

    def q(action):
        nxt, st, prob = law(state, action, params)
        idx = jax.vmap(lambda s: abstract_index(s, params))(nxt)
        return jnp.sum(prob * (st.true_reward + (1.0 - st.terminated) * v[idx]))

    return jax.vmap(q)(jnp.arange(params.num_actions))
