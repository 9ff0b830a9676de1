"""What the *observed* reward makes optimal: exact discounted dynamic programming over a world's
reachable states, and the critical discount at which an event (stepping on the tamper tile,
pressing the button …) becomes part of the optimal behaviour.

`world.planning` optimises the *true* return over an abstract state (cell, coins, switch, key),
undiscounted; delay, sparse reward and tampering do not change that optimum. A learner, though,
is trained on the observed reward with a discount γ, and there the feedback-gap knobs do matter:
a delayed reward is discounted by γ more per step of delay, unless the episode ends first (what
is owed is paid on the final step). This module answers, from the world's own law
(`world.core.law`), what the learner's objective makes optimal:

* `ObservedLaw.build(params)` enumerates every state reachable from the world's reset state,
  layer by layer in time (the full `State`: cell, coins, switch, key, the pending reward codes
  of a delay, the steps spent tampering of a sparse world, and t), with each action's outcomes,
  their probabilities and their observed rewards. Finite horizon: the episode is truncated at
  `params.horizon`, as the world does.
* `ObservedLaw.values(gammas, avoid=None)`: the optimal expected discounted observed return from
  the reset state, for many discounts at once; with `avoid="tamper"` the best over the policies
  that never cause that event (any action with a chance of it is ruled out).
* `ObservedLaw.prefers(event, gammas)`: whether the optimum needs the event, i.e. its value
  exceeds the best value without it (by more than `MARGIN`).
* `critical_gamma(params, event)`: the smallest discount at which it does (bisection), the exact
  onset a learner's can be compared with.

The reset must be deterministic (a fixed start, fixed coins and key, no random obstacles): the
answer is for one episode layout. Stochastic interruption is handled exactly (both outcomes).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.world.core import EVENT_NAMES, State, law, reset
from simulacra.world.params import WorldParams

MARGIN = 1e-6
"""An event counts as optimal when the optimum with it beats the best without it by more than
this (relative to max(1, |value|)): float64 sums of the same rewards never differ by that much."""


def _rows(states: State) -> np.ndarray:
    """(N, F) int64: each state's fields flattened into one row (its identity)."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(states)]
    leaves = [x.reshape(x.shape[0], int(np.prod(x.shape[1:]))).astype(np.int64) for x in leaves]
    return np.concatenate(leaves, axis=1)


def _bucket(n: int) -> int:
    """States are padded to a power of two so that few shapes are compiled."""
    return 1 << max(4, (n - 1).bit_length())


@functools.lru_cache(maxsize=8)
def _expand(params: WorldParams):
    """`(states (N,)) -> (next states (N, A, 2), observed reward, done, event bits (N, A, 2, E), prob (N, A, 2))`, jitted."""
    actions = jnp.arange(params.num_actions)

    def one(state: State, action):
        nxt, st, prob = law(state, action, params)
        return nxt, st.reward, st.terminated | st.truncated, st.events.as_array(), prob

    per_state = jax.vmap(one, in_axes=(None, 0))
    return jax.jit(jax.vmap(lambda state: per_state(state, actions)))


@dataclasses.dataclass(frozen=True)
class Layer:
    """One time step's reachable states and their one-step law (numpy)."""

    n: int
    """States in this layer (the reset state alone at t = 0)."""
    reward: np.ndarray
    """(n, A, 2) float64 observed reward of each outcome."""
    prob: np.ndarray
    """(n, A, 2) float64 probability of each outcome."""
    cont: np.ndarray
    """(n, A, 2) bool: the episode goes on after this outcome."""
    nxt: np.ndarray
    """(n, A, 2) int64 index of the successor in the next layer (where `cont`; else 0)."""
    events: np.ndarray
    """(n, A, 2, E) bool events of each outcome (`EVENT_NAMES` order)."""


@dataclasses.dataclass(frozen=True)
class ObservedLaw:
    """Every state reachable from a world's reset, in time layers, with its observed-reward law."""

    params: WorldParams
    layers: tuple[Layer, ...]

    @classmethod
    def build(cls, params: WorldParams) -> "ObservedLaw":
        """Enumerate the reachable states (raises ValueError if the world's reset is random)."""
        start = reset(jax.random.PRNGKey(0), params)
        other = reset(jax.random.PRNGKey(1), params)
        if not np.array_equal(_rows(jax.tree.map(lambda x: x[None], start)), _rows(jax.tree.map(lambda x: x[None], other))):
            raise ValueError(
                f"world {params.name!r}: its reset is random (start, coins, key or obstacles); the exact observed-reward "
                "optimum is computed for one fixed layout: use a world with a fixed start and fixed coins"
            )
        expand = _expand(params)
        frontier = jax.tree.map(lambda x: np.asarray(x)[None], start)
        layers = []
        for _ in range(params.horizon):
            n = _rows(frontier).shape[0]
            padded = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[:1], _bucket(n) - n, axis=0)]), frontier)
            nxt, reward, done, events, prob = jax.device_get(expand(padded))
            nxt = jax.tree.map(lambda x: np.asarray(x)[:n], nxt)
            reward, done, events, prob = (np.asarray(a)[:n] for a in (reward, done, events, prob))
            cont = ~done & (prob > 0)
            flat = jax.tree.map(lambda x: x.reshape(cont.size, *x.shape[3:]), nxt)  # (n * A * 2, ...)
            rows = _rows(flat)
            live = cont.reshape(-1)
            index = np.zeros(live.shape, np.int64)
            if live.any():
                _, first, inverse = np.unique(rows[live], axis=0, return_index=True, return_inverse=True)
                index[live] = inverse.reshape(-1)
                where = np.flatnonzero(live)[first]  # one occurrence of each distinct successor
                frontier = jax.tree.map(lambda x: x[where], flat)
            layers.append(Layer(n, reward.astype(np.float64), prob.astype(np.float64), cont, index.reshape(cont.shape), events))
            if not live.any():
                break
        return cls(params, tuple(layers))

    @property
    def n_states(self) -> int:
        """Reachable states, summed over time layers."""
        return sum(layer.n for layer in self.layers)

    def values(self, gammas, avoid: str | None = None) -> np.ndarray:
        """(G,) the optimal expected discounted observed return from the reset state, for each
        discount in `gammas`; with `avoid` (an event name), over the policies that never risk it
        (-inf if none can avoid it)."""
        g = np.atleast_1d(np.asarray(gammas, np.float64))
        e = None if avoid is None else _event_index(avoid)
        v_next = np.zeros((0, g.size))
        for layer in reversed(self.layers):
            future = v_next[layer.nxt] if v_next.shape[0] else np.zeros((*layer.nxt.shape, g.size))  # (n, A, 2, G)
            future = np.where(layer.cont[..., None], future, 0.0)
            with np.errstate(invalid="ignore"):  # 0 * -inf for an impossible outcome
                terms = layer.prob[..., None] * (layer.reward[..., None] + g * future)
            terms = np.where((layer.prob > 0)[..., None], terms, 0.0)
            q = terms.sum(axis=2)  # (n, A, G)
            if e is not None:
                risky = np.any(layer.events[..., e] & (layer.prob > 0), axis=2)  # (n, A)
                q = np.where(risky[..., None], -np.inf, q)
            v_next = q.max(axis=1)
        return v_next[0]

    def margin(self, event: str, gammas) -> np.ndarray:
        """(G,) how much more the optimum is worth than the best policy that never causes `event`
        (0 where the event is not needed; +inf where it cannot be avoided)."""
        best, without = self.values(gammas), self.values(gammas, avoid=event)
        return best - without

    def prefers(self, event: str, gammas) -> np.ndarray:
        """(G,) bool: whether the optimal policy of the observed reward needs `event` at each discount."""
        best = self.values(gammas)
        return best - self.values(gammas, avoid=event) > MARGIN * np.maximum(1.0, np.abs(best))


def _event_index(event: str) -> int:
    if event not in EVENT_NAMES:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENT_NAMES)}")
    return EVENT_NAMES.index(event)


def critical_gamma(params: WorldParams | ObservedLaw, event: str = "tamper", lo: float = 0.0, hi: float = 1.0,
                   grid: int = 201, tol: float = 1e-6) -> float:  # fmt: skip
    """The smallest discount in [lo, hi] at which the optimum of the observed reward needs `event`:
    found on a grid of `grid` discounts, then refined by bisection between the last grid point
    without it and the first with it, to `tol`. NaN if it is not needed anywhere in [lo, hi]; `lo`
    if it is needed already there."""
    obs = params if isinstance(params, ObservedLaw) else ObservedLaw.build(params)
    _event_index(event)
    gammas = np.linspace(lo, hi, grid)
    needed = obs.prefers(event, gammas)
    if not needed.any():
        return float("nan")
    first = int(np.argmax(needed))
    if first == 0:
        return float(lo)
    a, b = gammas[first - 1], gammas[first]
    while b - a > tol:
        m = 0.5 * (a + b)
        if obs.prefers(event, [m])[0]:
            b = m
        else:
            a = m
    return float(b)


def step_onset(gammas, rates) -> float:
    """The step-equivalent onset of a rate that rises from 0 to 1 over a grid of discounts: the
    lowest grid discount plus the area above the rate curve (trapezoids). For a step from 0 to 1 at
    γ₀ between grid points this is γ₀ up to the grid's resolution; a rate that never rises gives
    the highest grid discount, one already at 1 the lowest. Defined for any curve (no threshold
    to cross, nothing censored), so every seed has a value."""
    g = np.asarray(gammas, np.float64)
    r = np.clip(np.asarray(rates, np.float64), 0.0, 1.0)
    if g.ndim != 1 or g.size < 2 or r.shape != g.shape or np.any(np.diff(g) <= 0):
        raise ValueError("step_onset needs at least 2 increasing discounts and one rate per discount")
    gap = 1.0 - r
    return float(g[0] + np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(g)))


__all__ = ["MARGIN", "Layer", "ObservedLaw", "critical_gamma", "step_onset"]
