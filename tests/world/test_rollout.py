"""Batched random rollouts: reproducible, and their totals agree with the events."""

import jax
import numpy as np

from simulacra.world import task
from simulacra.world.rollout import make_random_rollout


def test_same_seed_same_numbers_and_other_seed_other_numbers():
    run = make_random_rollout(task("full"), n_envs=32, n_steps=50)
    a = jax.device_get(run(jax.random.PRNGKey(0)))
    b = jax.device_get(run(jax.random.PRNGKey(0)))
    c = jax.device_get(run(jax.random.PRNGKey(1)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_rollout_totals_are_consistent():
    p = task("tamper", step_cost=-0.01)
    stats = jax.device_get(make_random_rollout(p, n_envs=64, n_steps=100)(jax.random.PRNGKey(0)))
    coins, hazards, _, _, tampers = stats.events[:5]
    assert stats.episodes >= coins  # every coin ends an episode in this one-coin world
    # observed - true = tamper bonus per tampering step (no delay here)
    np.testing.assert_allclose(stats.reward - stats.true_reward, 0.2 * tampers, rtol=1e-4)
    np.testing.assert_allclose(stats.true_reward, coins - 0.01 * 64 * 100, rtol=1e-4)
