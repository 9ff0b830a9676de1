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
