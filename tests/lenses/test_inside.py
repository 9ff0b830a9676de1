"""Inside the network: probes find a planted feature at its layer, CKA is 1 on itself and blind
to rotations, weight change and transplant see the right layers, and steering with k = 0 is a
no-op while a character-tag direction moves behaviour towards that character."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.lenses import layers, probes, steering
from simulacra.nets.transformer import Hooks
from simulacra.model import Simulator
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task

TINY = PredictConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64, steps=60, batch_size=8, warmup=5, lr=3e-3)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(task("coin-7x7", horizon=10), parse_mixture("seeker:1,random:1"), 160, seed=0)


@pytest.fixture(scope="module")
def trained(corpus):
    return fit(corpus, TINY, seed=0, progress=False)


def test_planted_feature_is_found_at_its_layer_with_high_selectivity(corpus):
    """A random-init model with the coin's row added along a fixed direction to the residual
    stream after block 1 only: the probe reads it there, not after block 0, and not from
    memorised state types (the control task)."""
    sim = Simulator.init(TINY, corpus.params, jax.random.PRNGKey(1))
    sim.card = {"corpus": {"mixture": corpus.mixture.to_list()}}
    row = probes.coin_cells(corpus.episodes.scene, corpus.params)[:, 0] // corpus.params.width  # (N,)
    direction = np.random.default_rng(0).normal(size=TINY.d_model).astype(np.float32)
    direction /= np.linalg.norm(direction)
    # the per-episode feature at every position: feed episodes in one batch so the add lines up
    name = "blocks.1.hook_resid_post"
    add = jnp.asarray(row[:, None, None] * 3.0 * direction[None, None, :], jnp.float32)
    acts = probes.step_activations(sim, corpus, probes.residual_names(2), batch=corpus.n_episodes, hooks=Hooks(add={name: add}))
    ep, _ = probes.step_index(corpus)
    y = row[ep]
    types = corpus.episodes.states[ep, probes.step_index(corpus)[1]]
    control = probes.control_labels(y, types, classification=True)
    planted = probes.probe_score(acts[name], y, ep, True)
    before = probes.probe_score(acts["blocks.0.hook_resid_post"], y, ep, True)
    memorised = probes.probe_score(acts[name], control, ep, True)
    assert planted > 0.95
    assert before < planted - 0.3
    assert planted - memorised > 0.3


def test_probe_layers_rows_and_trained_beats_random_baseline(trained, corpus):
    rows = probes.probe_layers(trained, corpus, which=("rtg", "coin_cell", "posterior"), max_episodes=160, folds=3)
    assert {r["target"] for r in rows} == {"rtg", "coin_cell", "posterior"}
    assert {r["name"] for r in rows} == set(probes.residual_names(2))
    for r in rows:
        assert r["selectivity"] == pytest.approx(r["score"] - r["control"])
        assert np.isfinite(r["baseline"]) and r["n"] == int(corpus.episodes.length.sum())
    # where the coin is (it must be read from the scene by attention): the trained model's last
    # layer carries it far better than a random one (measured 0.30 vs 0.10 accuracy over 25 cells)
    last = next(r for r in rows if r["target"] == "coin_cell" and r["name"] == "blocks.1.hook_resid_post")
    assert last["score"] > last["baseline"] + 0.1
    with pytest.raises(ValueError, match="unknown probe target"):
        probes.targets(corpus, ("mood",))


def test_linear_cka_is_one_on_itself_and_invariant_to_rotation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert layers.linear_cka(x, x) == pytest.approx(1.0)
    assert layers.linear_cka(x, x @ q) == pytest.approx(1.0)
    assert layers.linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # isotropic scale and shift
    assert layers.linear_cka(x, rng.normal(size=(200, 16))) < 0.2
    with pytest.raises(ValueError, match="same inputs"):
        layers.linear_cka(x, x[:10])


def test_weight_change_cka_and_transplant_see_the_changed_layer(trained, corpus):
    other = Simulator.init(TINY, corpus.params, jax.random.PRNGKey(7))
    mixed = layers.transplant(trained, other, "blocks.1")
    change = layers.weight_change(trained, mixed)
    assert change["blocks.1"] > 0.1
    assert all(v == 0.0 for k, v in change.items() if k != "blocks.1")
    cka = layers.cka_by_layer(trained, mixed, corpus)
    assert cka["hook_embed"] == pytest.approx(1.0) and cka["blocks.0.hook_resid_post"] == pytest.approx(1.0)
    assert cka["blocks.1.hook_resid_post"] < 0.99
    assert layers.cka_by_layer(trained, trained, corpus)["blocks.1.hook_resid_post"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown layer"):
        layers.transplant(trained, other, "blocks.9")


def test_steering_with_zero_is_exactly_a_no_op(trained, corpus):
    d = steering.contrastive_direction(trained, corpus, "blocks.0.hook_resid_post", "seeker", "random")
    key = jax.random.PRNGKey(3)
    plain = trained.act(key, 32)
    zero = trained.act(key, 32, hooks=steering.steering_hooks("blocks.0.hook_resid_post", d, 0.0))
    for k in ("actions", "states", "action_probs", "tokens"):
        np.testing.assert_array_equal(getattr(plain, k), getattr(zero, k))
    pushed = trained.act(key, 32, hooks=steering.steering_hooks("blocks.0.hook_resid_post", d, 4.0))
    assert not np.array_equal(plain.action_probs, pushed.action_probs)


def test_final_posterior_names_the_acting_character(corpus):
    """On the corpus's own episodes, the final posterior's favourite is mostly the true actor."""
    post = steering.final_posterior(corpus.episodes, corpus.params, corpus.mixture)
    np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-6)
    long = corpus.episodes.length >= 4
    assert np.mean(post.argmax(1)[long] == corpus.episodes.character[long]) > 0.8


def test_tag_direction_moves_behaviour_towards_the_character():
    """A character-tagged simulator of seeker + presser in the off-switch world, prompted as the
    seeker and pushed along (presser tag − seeker tag) after its last block: the presser-match
    rate rises with k."""
    world = task("offswitch", horizon=16)
    c = make_corpus(world, parse_mixture("seeker:1,presser:1"), 600, seed=0)
    cfg = PredictConfig(character=True, d_model=32, n_layers=2, n_heads=2, d_mlp=64, steps=200, batch_size=16, warmup=20)
    sim = fit(c, cfg, seed=0, progress=False)
    name = "blocks.1.hook_resid_post"
    d = steering.tag_direction(sim, c, name, "presser", "seeker", max_episodes=128)
    rows = steering.steering_sweep(sim, name, d, [0, 1, 3], jax.random.PRNGKey(1), toward="presser", n_episodes=128, character="seeker(0.1)")
    rates = [r["match_rate"] for r in rows]
    assert rates[0] < rates[1] < rates[2] and rates[2] > rates[0] + 0.2, rates
    with pytest.raises(ValueError, match="character-tagged"):
        steering.tag_direction(fit(c, PredictConfig(steps=2, warmup=0, d_model=16, n_layers=1, n_heads=2, d_mlp=32), progress=False),
                               c, name, "presser", "seeker")  # fmt: skip


def test_coin_direction_contrasts_episodes_by_coin_cell(trained, corpus):
    cells = probes.coin_cells(corpus.episodes.scene, corpus.params)[:, 0]
    cell = divmod(int(np.bincount(cells).argmax()), corpus.params.width)  # a cell that holds the coin in some episodes
    d = steering.coin_direction(trained, corpus, "blocks.1.hook_resid_post", cell)
    assert d.shape == (TINY.d_model,) and np.all(np.isfinite(d)) and np.linalg.norm(d) > 0
    with pytest.raises(ValueError, match="both at and away"):
        steering.coin_direction(trained, corpus, "blocks.1.hook_resid_post", (0, 0))  # a wall: never a coin


def test_grid_tables_belong_to_the_embedding_layer():
    cfg = PredictConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=32, grid=True)
    a = Simulator.init(cfg, task("coin-7x7"), jax.random.PRNGKey(0))
    b = Simulator.init(cfg, task("coin-7x7"), jax.random.PRNGKey(0))
    b.params = {"params": {**a.params["params"], "grid_row": a.params["params"]["grid_row"] + 1.0}}
    change = layers.weight_change(a, b)
    assert change["embed"] > 0 and change["blocks.0"] == 0 and change["unembed"] == 0
    moved = layers.transplant(a, b, "embed")
    np.testing.assert_array_equal(moved.params["params"]["grid_row"], b.params["params"]["grid_row"])
