"""The prediction process: a pure, vmappable training run that lowers the log-loss."""

import jax
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.training.predict import PredictConfig, _buckets, evaluate, fit, make_train, train_data
from simulacra.world import task

CFG = PredictConfig(steps=40, batch_size=8, d_model=32, n_layers=1, n_heads=2, d_mlp=64, lr=3e-3, warmup=5)


@pytest.fixture(scope="module")
def setup():
    corpus = make_corpus(task("coin-7x7", horizon=12), parse_mixture("seeker(0.1):0.5,random:0.5"), 64, seed=0)
    fmt = CFG.format(corpus.params)
    data = train_data(corpus, CFG)
    return corpus, fmt, data, jax.jit(make_train(CFG, data, fmt))


def test_training_lowers_the_loss_and_evaluates_per_token(setup):
    corpus, fmt, data, train = setup
    params, metrics = train(jax.random.PRNGKey(0))
    loss = np.asarray(metrics.loss)
    assert loss.shape == (CFG.steps,) and loss[-5:].mean() < loss[:5].mean() - 1.0
    per_token = evaluate(CFG, params, data, fmt)
    assert per_token.shape == data.tokens.shape
    assert np.all(per_token[~np.asarray(data.loss_mask)] == 0)
    assert np.all(per_token[np.asarray(data.loss_mask)] > 0)


def test_two_seeds_vmapped_equal_two_separate_runs(setup):
    _, _, _, train = setup
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    both_params, both = jax.jit(jax.vmap(train))(keys)
    for i in range(2):
        params, one = train(keys[i])
        np.testing.assert_allclose(np.asarray(both.loss[i]), np.asarray(one.loss), rtol=2e-4, atol=2e-4)


def test_behaviour_cloning_scores_only_actions(setup):
    corpus, _, _, _ = setup
    cfg = PredictConfig(loss_on="actions", steps=1, warmup=0)
    data = train_data(corpus, cfg)
    assert int(np.asarray(data.loss_mask).sum()) == corpus.n_transitions
    with pytest.raises(ValueError, match="loss_on"):
        PredictConfig(loss_on="everything")


def test_fit_is_the_same_run_as_make_train_and_fills_the_card(setup):
    corpus, fmt, data, train = setup
    sim = fit(corpus, CFG, seed=3, progress=False)
    params, metrics = train(jax.random.PRNGKey(3))
    for a, b in zip(jax.tree.leaves(sim.params), jax.tree.leaves(params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    card = sim.card
    assert card["corpus"]["sha256"] == corpus.content_hash() and len(card["corpus"]["sha256"]) == 64
    assert card["seed"] == 3 and card["metrics"]["train_loss_last"] < card["metrics"]["train_loss_first"]
    assert card["metrics"]["train_loss_last"] == pytest.approx(float(np.asarray(metrics.loss)[-4:].mean()), rel=1e-3)


def test_length_buckets_keep_every_target_and_share_steps_by_episodes(setup):
    _, _, data, _ = setup
    idx, crop, plan = _buckets(data, 4, CFG.batch_size, 1000)
    mask = np.asarray(data.loss_mask)
    assert sorted(np.concatenate(idx).tolist()) == list(range(len(mask)))
    for i, c in zip(idx, crop):
        assert not mask[i][:, c:].any()  # cropping drops no target
    assert len(plan) == 1000 and crop == sorted(crop) and len(set(crop)) == len(crop)
    counts = np.bincount(plan, minlength=len(idx))
    np.testing.assert_allclose(counts / 1000, [len(i) / len(mask) for i in idx], atol=1e-3)


def test_fit_seeds_equals_fit_for_each_seed(setup):
    from simulacra.training.predict import fit_seeds

    corpus = setup[0]
    both = fit_seeds(corpus, CFG, [3, 5], progress=False)
    for sim, seed in zip(both, [3, 5]):
        one = fit(corpus, CFG, seed=seed, progress=False)
        assert sim.card["seed"] == seed
        # the same run up to float rounding (which Adam amplifies on near-zero gradients: compare
        # the losses tightly and the weights loosely)
        for k in ("train_loss_first", "train_loss_last"):
            assert sim.card["metrics"][k] == pytest.approx(one.card["metrics"][k], rel=1e-4)
        for a, b in zip(jax.tree.leaves(sim.params), jax.tree.leaves(one.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-2, atol=2e-3)
    with pytest.raises(ValueError, match="at least one seed"):
        fit_seeds(corpus, CFG, [])


def test_bfloat16_training_tracks_float32(setup):
    """Mixed precision (bfloat16 products, float32 parameters and optimiser state) follows the
    float32 run: the stated tolerance is 0.05 nats per token on every 5-step mean of the loss
    curve, and parameters stay float32."""
    corpus, fmt, data, train = setup
    bf = PredictConfig(**{**__import__("dataclasses").asdict(CFG), "dtype": "bfloat16"})
    params16, m16 = jax.jit(make_train(bf, data, fmt))(jax.random.PRNGKey(0))
    _, m32 = train(jax.random.PRNGKey(0))
    a, b = np.asarray(m16.loss).reshape(-1, 5).mean(1), np.asarray(m32.loss).reshape(-1, 5).mean(1)
    assert np.max(np.abs(a - b)) < 0.05, (a, b)
    assert not np.array_equal(a, b)  # the products did run in bfloat16
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(params16))
    per_token = evaluate(bf, params16, data, fmt)
    assert per_token.dtype == np.float32 and np.isfinite(per_token).all()
    with pytest.raises(ValueError, match="dtype"):
        PredictConfig(dtype="float16")


def test_myopic_training_changes_the_gradient_not_the_first_loss(setup):
    """Myopic descent (#16): the same first loss (the forward pass is the ordinary one), a
    different path after it, still learning; the card records the option."""
    corpus, fmt, data, train = setup
    my = PredictConfig(**{**__import__("dataclasses").asdict(CFG), "myopic": True})
    params_m, m_my = jax.jit(make_train(my, data, fmt))(jax.random.PRNGKey(0))
    _, m_or = train(jax.random.PRNGKey(0))
    a, b = np.asarray(m_my.loss), np.asarray(m_or.loss)
    assert a[0] == b[0] and not np.allclose(a[1:], b[1:])
    assert a[-5:].mean() < a[:5].mean() - 0.5
    assert fit(corpus, my, seed=0, progress=False).card["process"]["config"]["myopic"] is True
    with pytest.raises(ValueError, match="myopic"):
        PredictConfig(myopic="yes")


def test_multi_token_training_scores_every_head(setup):
    """future_heads = 2 (#16): the loss is the sum of both heads' (so above the next-token loss
    alone at the start), it falls, and the next-token head is what `evaluate` scores."""
    corpus, fmt, data, train = setup
    two = PredictConfig(**{**__import__("dataclasses").asdict(CFG), "future_heads": 2})
    params, m2 = jax.jit(make_train(two, data, fmt))(jax.random.PRNGKey(0))
    _, m1 = train(jax.random.PRNGKey(0))
    a, b = np.asarray(m2.loss), np.asarray(m1.loss)
    assert a[0] > b[0] + 1.0 and a[-5:].mean() < a[:5].mean() - 1.0
    assert "head_2" in params["params"]
    per_token = evaluate(two, params, data, fmt)
    assert per_token.shape == data.tokens.shape and np.isfinite(per_token).all()
    for bad in (0, -2):
        with pytest.raises(ValueError, match="future_heads"):
            PredictConfig(future_heads=bad)
