"""Behaviour: what a process does in a world, per episode, measured the same way for every process.

    results = evaluate(policy, params, key, n_episodes=1000, policy_params=net_params)
    results = from_corpus(corpus)          # the same keys, from a corpus's stored episodes
    summarise(results)                     # {key: mean}
    mean_ci(per_seed_values)               # mean and a Student-t 95% interval over seeds

`evaluate` runs exactly `n_episodes` fresh episodes, each to its end (termination or the
horizon), in one jitted scan over the horizon of a vmapped batch. Counting the episodes that
end inside a fixed budget of auto-reset steps (as training curves do) over-weights short
episodes; this does not. Episode i draws everything from `fold_in(key, i)`, so results do not
depend on the batch size.

A policy is `policy(policy_params, obs, key) -> action` for one (H, W, 3) observation; it may
also return a tuple whose first element is the action (as `training.reinforce.make_policy`
does, `(action, probs)`). Scripted policies ignore `policy_params`.

Per-episode arrays (N,):

    return, true_return     observed and true return
    optimal_return          exact optimal expected true return of the episode's layout from its start
    fraction_of_optimal     true_return / optimal_return (nan where the optimum is not positive)
    success                 the episode collected every coin of the world (`reinforce.success`)
    length                  steps taken
    terminated              ended inside the world (else truncated at the horizon)
    coin, hazard, interrupted, button, tamper, key, door
                            event counts (`EVENT_NAMES`); button, key and coin events happen at
                            most once per item, so their means are rates per episode
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.corpus.generate import optimal_returns
from simulacra.training.reinforce import COIN, success
from simulacra.world.core import EVENT_NAMES, observe, reset, step
from simulacra.world.params import WorldParams
from simulacra.world.tokens import scene_tokens, state_tokens

Policy = Callable[..., jax.Array | tuple]


@functools.lru_cache(maxsize=32)
def _episodes_fn(policy: Policy, params: WorldParams):
    """Jitted `run(policy_params, keys) -> per-episode dict` over a batch of episode keys."""

    def one(policy_params, key):
        k_reset, k_run = jax.random.split(key)
        s0 = reset(k_reset, params)

        def body(carry, t):
            s, done, acc = carry
            k_act, k_step = jax.random.split(jax.random.fold_in(k_run, t))
            out = policy(policy_params, observe(s, params), k_act)
            action = (out[0] if isinstance(out, tuple) else out).astype(jnp.int32)
            nxt, st = step(k_step, s, action, params)
            live = ~done
            acc = {
                "return": acc["return"] + jnp.where(live, st.reward, 0.0),
                "true_return": acc["true_return"] + jnp.where(live, st.true_reward, 0.0),
                "length": acc["length"] + live.astype(jnp.int32),
                "terminated": acc["terminated"] | (live & st.terminated),
                "events": acc["events"] + (st.events.as_array() & live).astype(jnp.int32),
            }
            s = jax.tree.map(lambda old, new: jnp.where(done, old, new), s, nxt)  # freeze after the end
            return (s, done | st.terminated | st.truncated, acc), None

        acc0 = {
            "return": jnp.float32(0),
            "true_return": jnp.float32(0),
            "length": jnp.int32(0),
            "terminated": jnp.array(False),
            "events": jnp.zeros(len(EVENT_NAMES), jnp.int32),
        }
        (_, _, acc), _ = jax.lax.scan(body, (s0, jnp.array(False), acc0), jnp.arange(params.horizon))
        return acc, scene_tokens(s0, params), state_tokens(s0, params)

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def _results(params: WorldParams, ret, true_return, optimal, length, terminated, events) -> dict[str, np.ndarray]:
    events = np.asarray(events, np.int32)  # (N, 7)
    optimal = np.asarray(optimal, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(optimal > 0, np.asarray(true_return) / optimal, np.nan).astype(np.float32)
    return {
        "return": np.asarray(ret, np.float32),
        "true_return": np.asarray(true_return, np.float32),
        "optimal_return": optimal,
        "fraction_of_optimal": fraction,
        "success": np.asarray(success(events[:, COIN], params)),
        "length": np.asarray(length, np.int32),
        "terminated": np.asarray(terminated, bool),
        **{name: events[:, i] for i, name in enumerate(EVENT_NAMES)},
    }


def evaluate(
    policy: Policy, params: WorldParams, key: jax.Array, n_episodes: int, policy_params=None, batch: int = 1024
) -> dict[str, np.ndarray]:
    """Per-episode behaviour of `policy` over `n_episodes` fresh episodes of `params` (see the
    module docstring for the keys)."""
    if n_episodes < 1:
        raise ValueError(f"invalid n_episodes={n_episodes!r}: must be at least 1")
    run = _episodes_fn(policy, params)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_episodes))
    batch = min(batch, n_episodes)
    parts = []
    for i in range(0, n_episodes, batch):
        k = keys[i : i + batch]
        n = k.shape[0]
        if n < batch:  # pad to one shape: one compilation
            k = jnp.concatenate([k, jnp.repeat(k[-1:], batch - n, axis=0)])
        parts.append(jax.tree.map(lambda x, n=n: np.asarray(x)[:n], run(policy_params, k)))
    acc, scenes, first = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
    optimal = optimal_returns(params, scenes, first)
    return _results(params, acc["return"], acc["true_return"], optimal, acc["length"], acc["terminated"], acc["events"])


def from_corpus(corpus) -> dict[str, np.ndarray]:
    """The same per-episode arrays as `evaluate`, for a corpus's stored episodes (aligned with
    them, so `corpus["character"]` splits them by character)."""
    a = corpus.arrays
    return _results(
        corpus.params, a["return"], a["true_return"], a["optimal_return"], a["length"], a["terminated"], a["events"].sum(1)
    )


def summarise(results: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of every per-episode array (nan-aware for `fraction_of_optimal`), plus `episodes`."""
    out = {"episodes": float(len(results["return"]))}
    for name, x in results.items():
        x = np.asarray(x, np.float64)
        out[name] = float(np.nanmean(x)) if np.any(~np.isnan(x)) else float("nan")
    return out


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a Student-t confidence interval for the mean of independent values
    (one per seed, say). With one value the interval is (nan, nan)."""
    from scipy import stats  # a dependency of jax

    x = np.asarray(values, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


__all__ = ["evaluate", "from_corpus", "mean_ci", "summarise"]
