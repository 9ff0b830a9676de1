"""Batched rollouts of a uniformly random policy (for smoke tests, the demo and the throughput bench)."""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from simulacra.world.core import EVENT_NAMES, reset, step_auto_reset
from simulacra.world.params import WorldParams


class RolloutStats(NamedTuple):
    """Totals over all worlds and steps of a random rollout."""

    reward: jax.Array  # () float32 observed reward
    true_reward: jax.Array  # () float32
    episodes: jax.Array  # () int32 episodes that ended (terminated or truncated)
    events: jax.Array  # (len(EVENT_NAMES),) int32 event counts, `EVENT_NAMES` order
    obs_checksum: jax.Array  # () uint32 sum of every observation entry (keeps them computed)


def obs_checksum(obs: jax.Array) -> jax.Array:
    """() uint32 checksum of a batch of observations: their float32 sum, read the way a network's
    first layer reads them (rounded for very large batches; it is a checksum, not a count). The
    throughput bench applies the same function to every framework so that XLA cannot drop the
    observation computation for any of them."""
    return obs.astype(jnp.float32).sum().astype(jnp.uint32)


def make_random_rollout(params: WorldParams, n_envs: int, n_steps: int) -> Callable[[jax.Array], RolloutStats]:
    """`run(key) -> RolloutStats`: reset `n_envs` worlds and take `n_steps` uniformly random
    actions in each (auto-reset), all in one jitted `lax.scan` over a `vmap`ped step."""
    batch_reset = jax.vmap(reset, in_axes=(0, None))
    batch_step = jax.vmap(step_auto_reset, in_axes=(0, 0, 0, None))

    def run(key: jax.Array) -> RolloutStats:
        key, k_reset = jax.random.split(key)
        states = batch_reset(jax.random.split(k_reset, n_envs), params)

        def body(carry, _):
            states, key, stats = carry
            key, k_act, k_step = jax.random.split(key, 3)
            actions = jax.random.randint(k_act, (n_envs,), 0, params.num_actions)
            states, st = batch_step(jax.random.split(k_step, n_envs), states, actions, params)
            stats = RolloutStats(
                reward=stats.reward + st.reward.sum(),
                true_reward=stats.true_reward + st.true_reward.sum(),
                episodes=stats.episodes + jnp.sum(st.terminated | st.truncated),
                events=stats.events + st.events.as_array().sum(0, dtype=jnp.int32),
                obs_checksum=stats.obs_checksum + obs_checksum(st.obs),
            )
            return (states, key, stats), None

        zero = RolloutStats(jnp.float32(0), jnp.float32(0), jnp.int32(0), jnp.zeros(len(EVENT_NAMES), jnp.int32), jnp.uint32(0))
        (_, _, stats), _ = jax.lax.scan(body, (states, key, zero), None, length=n_steps)
        return stats

    return jax.jit(run)


def measure_steps_per_second(
    params: WorldParams, n_envs: int = 4096, n_steps: int = 200, repeats: int = 3, seed: int = 0
) -> tuple[float, RolloutStats]:
    """Best-of-`repeats` random-policy environment steps per second (after compilation)."""
    run = make_random_rollout(params, n_envs, n_steps)
    key = jax.random.PRNGKey(seed)
    stats = jax.block_until_ready(run(key))  # compile
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        stats = jax.block_until_ready(run(jax.random.fold_in(key, i)))
        best = min(best, time.perf_counter() - t0)
    return n_envs * n_steps / best, stats
