"""RL fine-tuning of a simulator: β = 0 learns, a huge β stays at the reference, snapshots are
ordinary checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.model import Simulator
from simulacra.training.finetune import FinetuneConfig, _advantages, finetune
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task

WORLD = task("coin-fixed-7x7", horizon=12)  # the coin is always in the same corner


@pytest.fixture(scope="module")
def poor():
    """A simulator of a random walker: a poor corpus for a world that is easy to solve."""
    corpus = make_corpus(WORLD, parse_mixture("random"), 128, seed=0)
    return fit(corpus, PredictConfig(steps=30, batch_size=16, d_model=32, n_layers=1, n_heads=2, d_mlp=64, warmup=5, lr=3e-3), progress=False)


def test_beta_zero_learns_and_a_huge_beta_stays_at_the_reference(poor, tmp_path):
    free = finetune(poor, FinetuneConfig(beta=0.0, updates=10, episodes=32, lr=3e-3, snapshots=(3,)), jax.random.PRNGKey(0), progress=False)
    held = finetune(poor, FinetuneConfig(beta=1000.0, updates=10, episodes=32, lr=3e-3), jax.random.PRNGKey(0), progress=False)
    r, k = free.metrics["return"], free.metrics["kl"]
    assert r[-3:].mean() > r[:2].mean() + 0.2, r
    assert k[0] == pytest.approx(0.0, abs=1e-5) and k[-1] > 0.1
    assert free.metrics["agreement"][0] == 1.0
    assert held.metrics["kl"].max() < 0.01 < k[-1]
    # the reference itself was not changed
    for a, b in zip(jax.tree.leaves(poor.params), jax.tree.leaves(held.sim.params)):
        assert a.shape == b.shape
    assert free.sim.card["process"]["name"] == "finetune" and free.sim.card["reference"]["process"]["name"] == "predict"
    # a snapshot is an ordinary checkpoint: it saves, loads and acts
    snap = free.snapshots[3]
    snap.save(tmp_path / "snap3")
    back = Simulator.load(tmp_path / "snap3")
    assert back.card["process"]["update"] == 3
    a = snap.act(jax.random.PRNGKey(9), 8)
    b = back.act(jax.random.PRNGKey(9), 8)
    assert np.array_equal(a.actions, b.actions)


def test_advantages_are_centred_returns_to_go():
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(6, 5)).astype(np.float32)
    length = np.array([5, 3, 1, 5, 4, 2])
    mask = np.arange(5)[None, :] < length[:, None]
    reward = np.where(mask, reward, 0)
    gamma = 0.9
    rtg = np.zeros_like(reward)
    for i in range(6):
        g = 0.0
        for t in reversed(range(5)):
            g = reward[i, t] + gamma * g
            rtg[i, t] = g
    base = np.array([rtg[mask[:, t], t].mean() for t in range(5)])
    adv = np.where(mask, rtg - base, 0)
    adv /= np.sqrt((adv**2).sum() / mask.sum())
    np.testing.assert_allclose(np.asarray(_advantages(jnp.asarray(reward), jnp.asarray(mask), gamma)), adv, rtol=1e-4, atol=1e-5)


def test_config_is_validated():
    with pytest.raises(ValueError, match="minibatches"):
        FinetuneConfig(episodes=10, minibatches=4)
    with pytest.raises(ValueError, match="beta"):
        FinetuneConfig(beta=-1)
    with pytest.raises(ValueError, match="snapshots"):
        FinetuneConfig(updates=5, snapshots=(6,))


def test_a_randomly_initialised_transformer_is_an_agent_in_the_making():
    sim = Simulator.init(PredictConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=32), WORLD, jax.random.PRNGKey(0))
    out = sim.act(jax.random.PRNGKey(1), 4)
    assert out.actions.shape == (4, WORLD.horizon)
    r = finetune(sim, FinetuneConfig(beta=0.0, updates=2, episodes=8, minibatches=2), jax.random.PRNGKey(0), progress=False)
    assert r.metrics["return"].shape == (2,) and r.sim.card["reference"]["process"]["name"] == "init"


def test_seeds_fine_tuned_together_equal_each_fine_tuned_alone(poor):
    """`finetune_seeds` vmaps the runs of several seeds in one program; each equals its own
    `finetune` (same keys) up to float rounding."""
    from simulacra.training.finetune import finetune_seeds

    config = FinetuneConfig(beta=0.1, updates=3, episodes=16, lr=3e-3, snapshots=(2,))
    keys = [jax.random.PRNGKey(5), jax.random.PRNGKey(6)]
    other = Simulator.init(poor.spec, poor.fmt.params, jax.random.PRNGKey(1))
    together = finetune_seeds([poor, other], config, keys, progress=False)
    for sim, key, got in zip([poor, other], keys, together):
        alone = finetune(sim, config, key, progress=False)
        # the same episodes are acted (same keys, same samples), so returns and lengths agree;
        # what rounding changes, Adam amplifies (below), so the KL, the loss and the agreement agree to a few percent
        for name in ("return", "true_return", "length"):
            np.testing.assert_allclose(got.metrics[name], alone.metrics[name], rtol=1e-3, atol=1e-3, err_msg=name)
        for name in ("kl", "loss", "agreement"):  # agreement: an argmax a rounding-sized change can flip
            np.testing.assert_allclose(got.metrics[name], alone.metrics[name], rtol=0.1, atol=0.03, err_msg=name)
        # (parameters are not compared: Adam moves a parameter by ~lr whatever its gradient's size,
        # so a near-zero gradient whose sign rounding flips sends it the other way, and over 48
        # steps such differences compound; the behaviour above is what the runs must share)
        assert set(got.snapshots) == {2} and got.sim.card["process"]["update"] == 3
    assert not np.allclose(together[0].metrics["kl"], together[1].metrics["kl"])  # two different runs
    with pytest.raises(ValueError, match="one key per model"):
        finetune_seeds([poor], config, keys)
