"""RL fine-tuning of a text simulator against swearing, and where the change went."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from simulacra.text import make_text_corpus, parse_personas
from simulacra.text.finetune import TextFinetuneConfig, compare, finetune_text
from simulacra.text.model import fit_text
from simulacra.training.predict import PredictConfig


@pytest.fixture(scope="module")
def pretrained():
    corpus = make_text_corpus(None, parse_personas("plain:1,friendly:1,sailor:1,friendly+sailor:1"), 800, seed=0)
    held = make_text_corpus(None, corpus.mixture, 80, seed=1)
    sim = fit_text(corpus, PredictConfig(d_model=16, d_mlp=32, steps=150, warmup=20, batch_size=16), seeds=[0], progress=False)[0]
    return sim, held


def test_the_penalty_lowers_swearing_and_the_leash_holds(pretrained):
    sim, held = pretrained
    before = [np.array(x) for x in jax.tree.leaves(sim.params)]
    free, m_free = finetune_text(sim, TextFinetuneConfig(beta=0.0, updates=12, documents=32, lr=3e-4), jax.random.PRNGKey(0), progress=False)
    held_back, m_held = finetune_text(sim, TextFinetuneConfig(beta=50.0, updates=12, documents=32, lr=3e-4), jax.random.PRNGKey(0), progress=False)
    assert m_free["swear_rate"][-4:].mean() < m_free["swear_rate"][:4].mean()
    assert m_held["kl"][-1] < m_free["kl"][-1]
    assert free.card["process"]["name"] == "finetune_text" and free.card["reference"]["process"]["name"] == "predict"
    # the reference is untouched
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(sim.params), before))
    r = compare(sim, free, held, n_documents=32, random_directions=4)
    assert r["swear_rate_after"] < r["swear_rate_before"]
    assert set(r["weight_change"]) == {"embed", "blocks.0", "blocks.1", "unembed"} and set(r["transplant_swear_rate"]) == set(r["weight_change"])
    assert all(0 <= v <= 1 + 1e-9 for v in r["cka"].values())
    assert np.isfinite([r["excess_nats_after"], r["friendly_alignment"], r["random_alignment"]]).all()


@pytest.mark.parametrize("field, value, words", [("beta", -1.0, "at least 0"), ("documents", 30, "must divide"), ("penalty", 0.0, "positive"),
                                                 ("updates", 0, "positive integer")])  # fmt: skip
def test_bad_configs(field, value, words):
    kwargs = {"documents": 32, "minibatches": 4, field: value}
    with pytest.raises(ValueError, match=words):
        TextFinetuneConfig(**kwargs)


def test_a_tagged_model_is_refused():
    corpus = make_text_corpus(None, parse_personas("sailor:1,friendly:1"), 100, seed=0)
    sim = fit_text(corpus, PredictConfig(d_model=16, d_mlp=32, steps=5, warmup=1, batch_size=8), tagged=True, progress=False)[0]
    with pytest.raises(ValueError, match="untagged"):
        finetune_text(sim, TextFinetuneConfig(updates=1, documents=8), jax.random.PRNGKey(0), progress=False)


def test_seeds_fine_tuned_together_equal_each_fine_tuned_alone(pretrained, tmp_path):
    """`finetune_text_seeds` vmaps several models' runs in one program; each equals its own
    `finetune_text` (same key) up to float rounding."""
    from simulacra.text.finetune import finetune_text_seeds
    from simulacra.text.model import TextSimulator

    sim, _ = pretrained
    other = TextSimulator(sim.spec, sim.fmt, TextSimulator.init(sim.spec, sim.fmt, jax.random.PRNGKey(3)).params, sim.card)
    other = TextSimulator.load(other.save(tmp_path / "other"))  # as the study's cache gives it: a format object of its own
    config = TextFinetuneConfig(beta=0.1, updates=3, documents=16, lr=3e-4)
    keys = [jax.random.PRNGKey(5), jax.random.PRNGKey(6)]
    together = finetune_text_seeds([sim, other], config, keys, progress=False)
    for model, key, (tuned, metrics) in zip([sim, other], keys, together):
        alone, m_alone = finetune_text(model, config, key, progress=False)
        # the same documents are generated (same keys, same samples): their lengths and swears agree
        for name in ("swear_rate", "length", "truth"):
            np.testing.assert_allclose(metrics[name], m_alone[name], rtol=1e-3, atol=1e-3, err_msg=name)
        for name in ("kl", "loss", "critic"):  # what rounding changes, Adam amplifies: a few percent
            np.testing.assert_allclose(metrics[name], m_alone[name], rtol=0.1, atol=0.03, err_msg=name)
        assert tuned.card["process"]["name"] == "finetune_text" and tuned.card["metrics"]["finetune_seconds"] >= 0
    assert not np.allclose(together[0][1]["length"], together[1][1]["length"])  # two different runs
    with pytest.raises(ValueError, match="one key per model"):
        finetune_text_seeds([sim], config, keys)
    elsewhere = TextSimulator(sim.spec, sim.fmt, sim.params, {})  # no corpus in its card: all 16 personas
    with pytest.raises(ValueError, match="training mixture"):
        finetune_text_seeds([sim, elsewhere], config, keys)
