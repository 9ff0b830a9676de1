"""The reinforcement process: GAE against a loop, truncation bootstrapping, a PPO run that learns,
vmapped seeds, config validation, save/load."""

import ast
import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.linen.initializers import orthogonal as flax_orthogonal

from simulacra.lenses.behaviour import evaluate, summarise
from simulacra.model.checkpoint import CheckpointError
from simulacra.training.reinforce import (
    PPOConfig,
    gae,
    init_params,
    load_agent,
    make_policy,
    make_stages,
    make_train,
    network,
    orthogonal,
    save_agent,
)
from simulacra.world import EVENT_NAMES, from_ascii, observe, reset

# A coin three steps from a fixed start: a random walk finds it within 12 steps now and then.
NEAR_COIN = from_ascii(
    """
    #######
    #.....#
    #A..c.#
    #.....#
    #######
    """,
    horizon=12,
)
CFG = PPOConfig(n_envs=16, n_steps=16, total_steps=16 * 16 * 30, lr=3e-3, n_minibatches=2, n_epochs=4)


@pytest.fixture(scope="module")
def trained():
    train = jax.jit(make_train(CFG, NEAR_COIN))
    net_params, metrics = train(jax.random.PRNGKey(0))
    return train, net_params, metrics


def gae_loop(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The textbook recursion, one step at a time."""
    adv = np.zeros_like(values)
    last = np.zeros(values.shape[1])
    for t in reversed(range(len(rewards))):
        for i in range(values.shape[1]):
            boot = 0.0 if terminated[t, i] else gamma * next_values[t, i]
            delta = rewards[t, i] + boot - values[t, i]
            end = terminated[t, i] or truncated[t, i]
            last[i] = delta if end else delta + gamma * lam * last[i]
        adv[t] = last
    return adv, adv + values


def test_scanned_gae_equals_a_python_loop():
    rng = np.random.default_rng(0)
    T, N = 37, 5
    rewards, values, next_values = (rng.normal(size=(T, N)).astype(np.float32) for _ in range(3))
    terminated = rng.random((T, N)) < 0.1
    truncated = ~terminated & (rng.random((T, N)) < 0.1)
    for gamma, lam in ((0.99, 0.95), (0.5, 1.0), (0.9, 0.0)):
        adv, ret = gae(*map(jnp.asarray, (rewards, values, next_values, terminated, truncated)), gamma, lam)
        ref_adv, ref_ret = gae_loop(rewards, values, next_values, terminated, truncated, gamma, lam)
        np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # Two steps of one world; step 1 ends the episode. V = 0.5 before each step; the value of
    # step 1's true successor (its final_obs) is 2.
    rewards, values, next_values = jnp.array([[0.0], [1.0]]), jnp.array([[0.5], [0.5]]), jnp.array([[0.5], [2.0]])
    no = jnp.array([[False], [False]])
    end = jnp.array([[False], [True]])
    adv_trunc, _ = gae(rewards, values, next_values, no, end, 0.9, 1.0)
    adv_term, _ = gae(rewards, values, next_values, end, no, 0.9, 1.0)
    np.testing.assert_allclose(np.asarray(adv_trunc)[:, 0], [-0.05 + 0.9 * 2.3, 1.0 + 0.9 * 2.0 - 0.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(adv_term)[:, 0], [-0.05 + 0.9 * 0.5, 1.0 - 0.5], rtol=1e-6)


def test_the_critic_bootstraps_through_the_time_limit():
    # +1 every step, nothing else, a time limit of 4 steps, and no clock in the observation:
    # with truncation bootstrapped every state is worth 1 / (1 - gamma) = 2. Treating the time
    # limit as termination would teach about 1.5 (the mean of 1, 1.5, 1.75, 1.875).
    world = from_ascii("#####\n#...#\n#.A.#\n#...#\n#####", step_cost=1.0, horizon=4)
    cfg = PPOConfig(n_envs=8, n_steps=8, total_steps=8 * 8 * 80, gamma=0.5, lr=3e-3, n_minibatches=1, ent_coef=0.0)
    net_params, _ = jax.jit(make_train(cfg, world))(jax.random.PRNGKey(0))
    obs = observe(reset(jax.random.PRNGKey(0), world), world)
    _, value = network(cfg, world).apply(net_params, obs)
    assert abs(float(value) - 2.0) < 0.1


def test_a_short_ppo_run_learns_to_fetch_a_near_coin(trained):
    _, net_params, metrics = trained
    assert metrics.observed_return.shape == (CFG.n_updates,) and metrics.events.shape == (CFG.n_updates, len(EVENT_NAMES))
    assert int(metrics.steps[-1]) == CFG.n_updates * CFG.batch_size
    policy = make_policy(CFG, NEAR_COIN)
    key = jax.random.PRNGKey(1)
    before = summarise(evaluate(policy, NEAR_COIN, key, 256, policy_params=init_params(CFG, NEAR_COIN, jax.random.PRNGKey(0))))
    after = summarise(evaluate(policy, NEAR_COIN, key, 256, policy_params=net_params))
    assert before["success"] < 0.6 and after["success"] > 0.95, (before, after)
    assert after["length"] < 4.5  # the shortest path is 3 steps
    assert np.nanmean(metrics.observed_return[-3:]) > np.nanmean(metrics.observed_return[:3])


def test_vmapped_seeds_equal_a_separate_run(trained):
    train, net_params, metrics = trained
    both, both_metrics = jax.jit(jax.vmap(train))(jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(5)]))
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[0], both)), jax.tree.leaves(net_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(both_metrics.value_loss[0]), np.asarray(metrics.value_loss), rtol=1e-4, atol=1e-6)
    assert not np.allclose(np.asarray(both_metrics.value_loss[0]), np.asarray(both_metrics.value_loss[1]))


def test_a_run_in_stages_equals_the_whole_run(trained):
    _, net_params, metrics = trained
    init, advance = make_stages(CFG, NEAR_COIN)
    advance = jax.jit(advance)
    runner = jax.jit(init)(jax.random.PRNGKey(0))
    runner, first = advance(runner, jnp.arange(0, 12))
    runner, rest = advance(runner, jnp.arange(12, CFG.n_updates))
    for a, b in zip(jax.tree.leaves(runner.train_state.params), jax.tree.leaves(net_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([first.value_loss, rest.value_loss]), np.asarray(metrics.value_loss), rtol=1e-4, atol=1e-6)
    assert int(rest.steps[-1]) == CFG.n_updates * CFG.batch_size


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_envs", 0),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("clip_eps", 0.0),
        ("lr", -1e-3),
        ("ent_coef", -0.1),
        ("network", "transformer"),
        ("hidden", (64, 0)),
        ("anneal_lr", 1),
        ("total_steps", 10),
        ("n_minibatches", 3),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"PPOConfig\.{field}="):
        PPOConfig(**{"n_envs": 8, "n_steps": 8, field: value})


def test_config_round_trips_through_a_dict():
    cfg = PPOConfig(network="cnn", hidden=[32], channels=[8, 8])
    assert cfg.hidden == (32,) and hash(cfg) == hash(PPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))))
    with pytest.raises(ValueError, match="unknown PPOConfig field"):
        PPOConfig.from_dict({"n_env": 4})


def test_cnn_policy_acts_on_one_and_many_observations():
    cfg = PPOConfig(network="cnn", channels=(4,), hidden=(8,))
    net = init_params(cfg, NEAR_COIN, jax.random.PRNGKey(0))
    obs = observe(reset(jax.random.PRNGKey(0), NEAR_COIN), NEAR_COIN)
    policy = jax.jit(make_policy(cfg, NEAR_COIN, greedy=True))
    a, p = policy(net, obs, jax.random.PRNGKey(1))
    b, q = policy(net, jnp.stack([obs] * 3), jax.random.PRNGKey(1))
    assert a.shape == () and p.shape == (5,) and b.shape == (3,) and q.shape == (3, 5)
    assert np.all(np.asarray(b) == int(a)) and int(a) == int(np.argmax(np.asarray(p)))
    np.testing.assert_allclose(np.asarray(q), np.broadcast_to(np.asarray(p), (3, 5)), rtol=1e-5)


def test_save_then_load_gives_identical_actions(trained, tmp_path):
    _, net_params, _ = trained
    path = save_agent(tmp_path / "agent", net_params, CFG, NEAR_COIN, card={"metrics": {"success": 1.0}})
    loaded, cfg, world, card = load_agent(path)
    assert cfg == CFG and world == NEAR_COIN and card["metrics"]["success"] == 1.0
    assert card["schema"] == "simulacra.agent" and card["schema_version"] == 1
    keys = jax.random.split(jax.random.PRNGKey(2), 64)
    obs = jax.vmap(lambda k: observe(reset(k, world), world))(keys)
    a, p = make_policy(CFG, NEAR_COIN)(net_params, obs, jax.random.PRNGKey(3))
    b, q = make_policy(cfg, world)(loaded, obs, jax.random.PRNGKey(3))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(p), np.asarray(q))

    with pytest.raises(CheckpointError, match="already exists"):
        save_agent(path, net_params, CFG, NEAR_COIN)
    (path / "params.msgpack").write_bytes((path / "params.msgpack").read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="checksum"):
        load_agent(path)
    other = save_agent(tmp_path / "other", init_params(PPOConfig(hidden=(8,)), NEAR_COIN, jax.random.PRNGKey(0)), CFG, NEAR_COIN)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_agent(other)


def test_orthogonal_init_equals_flax_without_lapack():
    for shape in ((120, 16), (16, 5), (3, 3, 12, 8), (4, 30)):
        key = jax.random.PRNGKey(len(shape))
        np.testing.assert_allclose(np.asarray(orthogonal(2.0)(key, shape)), np.asarray(flax_orthogonal(2.0)(key, shape)), atol=1e-5)


def test_the_docs_table_lists_every_config_field_with_its_default():
    doc = (Path(__file__).parents[2] / "docs" / "agents.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", doc, flags=re.MULTILINE))
    assert set(rows) == {f.name for f in dataclasses.fields(PPOConfig)}
    for f in dataclasses.fields(PPOConfig):
        text = rows[f.name].strip()
        documented = {"true": True, "false": False}.get(text) if text in ("true", "false") else None
        if documented is None:
            documented = int(text.replace(",", "")) if isinstance(f.default, int) else ast.literal_eval(text)
        assert documented == f.default, f.name
