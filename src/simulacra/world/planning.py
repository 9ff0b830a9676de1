"""Exact planning helpers (jittable): BFS distance fields, the optimal return of a layout, and
an optimal action that takes the shortest way to it.

`optimal_return` is computed by finite-horizon dynamic programming over the *abstract* state
(agent cell, coins still alive, interruption disabled, holding the key, and in oracle worlds the
hidden bit's status: unknown, known 0, known 1) with the world's own
`transition` function, so it is exact for every task piece, including stochastic interruption,
lava, keys and doors, and the oracle world's lazily drawn hidden bit, whose answer pays a log-loss
and whose horizon pays `miss_penalty` (the value with no step left). It maximises the expected *true* return: delay and sparse mode only move
observed reward in time (the total is the same), and tampering changes only the observed reward.

Optimal actions often tie: with no step cost, every way that reaches the coin before the horizon
is optimal, and an argmax over the optimal Q walks into the first wall until the last moment.
`optimal_action` breaks the ties lexicographically: among the actions optimal for the return,
the one whose true return, discounted by `SOONER`, is highest when acting the same way
afterwards; that is, the reward comes as early as the optimum allows. The return itself is never
traded for speed, and `optimal_return` / `optimal_q` do not change.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from simulacra.world.core import State, branch_prob, law, transition
from simulacra.world.params import ACTIONS, WorldParams, derive_layout

UNREACHABLE = 1 << 20
"""Distance reported for cells from which no target can be reached."""

SOONER = 0.99
"""Discount of the tie-break between return-optimal actions: below 1 so that a reward collected
one step earlier scores higher, far enough from 1 that one step is visible in float32 at any
horizon (0.99**511 * 0.01 is about 6e-5, far above float32 rounding)."""

TIE_TOLERANCE = 1e-5
"""Optimal Q-values this close (relative to max(1, |value|)) count as tied: float32 sums of the
same rewards in a different order differ in the last bits, and such a difference must not decide
between two ways of equal return. Real differences in these worlds are step costs and
probability-weighted rewards, far larger."""

STAY = ACTIONS.index("stay")


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


def _abstract_shape(params: WorldParams) -> tuple[int, int, int, int, int]:
    lay = derive_layout(params)
    return (
        params.height * params.width,
        2**params.n_coins,
        2 if lay.button.any() else 1,
        2 if lay.key.any() else 1,
        3 if params.has_oracle else 1,
    )


def abstract_index(state: State, params: WorldParams) -> jax.Array:
    """() int32: the index of `state` in the tables of `optimal_values` (cell, coins alive, switch, key, hidden bit)."""
    n_cells, n_masks, n_sw, n_key, n_hid = _abstract_shape(params)
    cell = state.agent[0] * params.width + state.agent[1]
    mask = jnp.sum(state.coin_alive.astype(jnp.int32) << jnp.arange(params.n_coins, dtype=jnp.int32))
    sw = state.switch_off.astype(jnp.int32) if n_sw == 2 else 0
    key = state.has_key.astype(jnp.int32) if n_key == 2 else 0
    hid = state.hidden.astype(jnp.int32) if n_hid == 3 else 0
    return (((cell * n_masks + mask) * n_sw + sw) * n_key + key) * n_hid + hid


class _AbstractModel(NamedTuple):
    """Every abstract state's one-step law, for the backups (n abstract states, A actions, 2
    outcomes: no interruption, interruption)."""

    nidx: jax.Array  # (n, A, 2) int32 abstract index of each outcome's successor
    immediate: jax.Array  # (n, A) float32 expected true reward of the step
    cont: jax.Array  # (n, A, 2) float32 probability of each outcome that does not terminate


def _abstract_model(state: State, params: WorldParams) -> _AbstractModel:
    n_cells, n_masks, n_sw, n_key, n_hid = _abstract_shape(params)
    n = n_cells * n_masks * n_sw * n_key * n_hid
    idx = jnp.arange(n)
    hid, rest = idx % n_hid, idx // n_hid
    key_bit, rest = rest % n_key, rest // n_key
    sw_bit, rest = rest % n_sw, rest // n_sw
    mask, cell = rest % n_masks, rest // n_masks

    # The model's steps never reach the horizon (the horizon's miss penalty is the value with no
    # step left, `_terminal`): t far below it.
    t_model = -params.horizon if params.has_answers else 0

    def outcomes(cell, mask, sw_bit, key_bit, hid, action):
        s = state.replace(
            agent=jnp.stack([cell // params.width, cell % params.width]).astype(jnp.int32),
            coin_alive=((mask >> jnp.arange(params.n_coins)) & 1).astype(bool),
            switch_off=sw_bit.astype(bool),
            has_key=key_bit.astype(bool),
            t=jnp.int32(t_model),
            pending=jnp.zeros_like(state.pending),
            tamper_count=jnp.int32(0),
            hidden=hid.astype(jnp.int32),
        )
        p = branch_prob(s, action, params)
        nxt, st = jax.vmap(lambda i: transition(s, action, params, i))(jnp.array([False, True]))
        nidx = jax.vmap(lambda ns: abstract_index(ns, params))(nxt)
        return nidx, st.true_reward, st.terminated, jnp.stack([1.0 - p, p])

    actions = jnp.arange(params.num_actions)
    per_action = jax.vmap(outcomes, in_axes=(None, None, None, None, None, 0))
    per_state = jax.vmap(per_action, in_axes=(0, 0, 0, 0, 0, None))
    nidx, reward, term, prob = per_state(cell, mask, sw_bit, key_bit, hid, actions)  # (n, A, 2)
    return _AbstractModel(nidx=nidx, immediate=jnp.sum(prob * reward, axis=-1), cont=prob * (1.0 - term.astype(jnp.float32)))


def _terminal(m: _AbstractModel, params: WorldParams) -> jax.Array:
    """The value with no step left: 0, or an oracle world's `miss_penalty` (the episode reaches the
    horizon unanswered)."""
    return jnp.full(m.immediate.shape[:1], params.miss_penalty if params.has_answers else 0.0, jnp.float32)


def _backups(backup, init, steps: jax.Array | int):
    """`backup` applied `steps` times to `init` (a tuple of tables), stopping early at an exact
    fixed point: once the tables equal the previous ones, every later backup returns them again
    (a backup is a function of the tables alone)."""

    def body(carry):
        i, tables, _ = carry
        new = backup(*tables)
        return i + 1, new, jnp.any(jnp.stack([jnp.any(a != b) for a, b in zip(new, tables)]))

    _, tables, _ = jax.lax.while_loop(lambda c: (c[0] < steps) & c[2], body, (jnp.int32(0), init, jnp.array(True)))
    return tables


def optimal_values(state: State, params: WorldParams, steps: jax.Array | int) -> jax.Array:
    """Optimal expected true return with `steps` steps left, for every abstract state of the
    episode whose layout (walls, coins) `state` carries. Returns a flat array indexed like
    `abstract_index`."""
    m = _abstract_model(state, params)

    def backup(v):
        return (jnp.max(m.immediate + jnp.sum(m.cont * v[m.nidx], axis=-1), axis=-1),)

    (v,) = _backups(backup, (_terminal(m, params),), steps)
    return v


def optimal_return(state: State, params: WorldParams) -> jax.Array:
    """() float32: the best expected true return achievable from `state` in the steps left
    before the horizon. From a reset state this is the optimal return of the episode's layout."""
    v = optimal_values(state, params, params.horizon - state.t)
    return v[abstract_index(state, params)]


def _tied(q: jax.Array, best: jax.Array) -> jax.Array:
    """Which values `q` tie with the maximum `best` (within `TIE_TOLERANCE`)."""
    return q >= best - TIE_TOLERANCE * jnp.maximum(1.0, jnp.abs(best))


def sooner_values(state: State, params: WorldParams, steps: jax.Array | int) -> tuple[jax.Array, jax.Array]:
    """`(v, w)` with `steps` steps left, flat arrays indexed like `abstract_index`: `v` is
    `optimal_values` (the same numbers), `w` the true return discounted by `SOONER` of the policy
    that takes, among the actions optimal for `v`, the one with the highest `w` afterwards."""
    m = _abstract_model(state, params)

    def backup(v, w):
        q = m.immediate + jnp.sum(m.cont * v[m.nidx], axis=-1)  # (n, A)
        best = jnp.max(q, axis=-1)
        sooner = m.immediate + SOONER * jnp.sum(m.cont * w[m.nidx], axis=-1)
        return best, jnp.max(jnp.where(_tied(q, best[:, None]), sooner, -jnp.inf), axis=-1)

    end = _terminal(m, params)
    return _backups(backup, (end, end), steps)


def _lookahead(state: State, params: WorldParams, table: jax.Array, discount: float) -> jax.Array:
    """(A,) for each action: the expected true reward of the step from `state`, plus `discount`
    times `table` at the successor when the episode goes on."""

    def q(action):
        nxt, st, prob = law(state, action, params)
        idx = jax.vmap(lambda s: abstract_index(s, params))(nxt)
        going_on = 1.0 - (st.terminated | st.truncated).astype(jnp.float32)  # truncation's reward is in true_reward
        return jnp.sum(prob * (st.true_reward + discount * going_on * table[idx]))

    return jax.vmap(q)(jnp.arange(params.num_actions))


def optimal_q(state: State, params: WorldParams) -> jax.Array:
    """(A,) float32: for each action, the best expected true return from `state` when taking
    it now and acting optimally afterwards (ties are real: several actions can be optimal;
    `optimal_action` breaks them)."""
    v = optimal_values(state, params, jnp.maximum(params.horizon - state.t - 1, 0))
    return _lookahead(state, params, v, 1.0)


def optimal_action(state: State, params: WorldParams) -> jax.Array:
    """() int32: an action optimal for the expected true return that takes the shortest way to it.
    Among the actions whose `optimal_q` ties with the best, the one whose reward comes soonest
    (highest `SOONER`-discounted return, see `sooner_values`); where that ties too, as when
    nothing is left to collect, `stay`, else the lowest action id. So the agent moves only
    toward reward and never paces until the horizon forces it to go."""
    v, w = sooner_values(state, params, jnp.maximum(params.horizon - state.t - 1, 0))
    q = _lookahead(state, params, v, 1.0)
    sooner = jnp.where(_tied(q, jnp.max(q)), _lookahead(state, params, w, SOONER), -jnp.inf)
    best = sooner == jnp.max(sooner)
    return jnp.where(best[STAY], STAY, jnp.argmax(best)).astype(jnp.int32)
