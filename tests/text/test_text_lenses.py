"""Text simulators and their lenses: training, the ideal references, probes, additivity and
steering (coefficient 0 leaves generation identical)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from simulacra.lenses.steering import steering_hooks
from simulacra.text import SWEAR_WORDS, TextCorpus, default_grammar, make_text_corpus, parse_persona, parse_personas
from simulacra.text.lenses import (
    _additive_error,
    additivity,
    expected_swears,
    posterior_probe,
    steer_swearing,
    trait_direction,
    trait_probes,
    word_activations,
    word_index,
)
from simulacra.text.model import TextSimulator, excess_nats, fit_text
from simulacra.training.predict import PredictConfig

MIX = "plain:1,friendly:1,sailor:1,friendly+sailor:1"


@pytest.fixture(scope="module")
def trained():
    corpus = make_text_corpus(None, parse_personas(MIX), 600, seed=0)
    held = make_text_corpus(None, corpus.mixture, 120, seed=1)
    sim = fit_text(corpus, PredictConfig(d_model=16, d_mlp=32, steps=60, warmup=10, batch_size=16), seeds=[0], progress=False)[0]
    return sim, held


def test_expected_swears_is_the_law():
    """The exact expectation against a large draw, per persona (5 standard errors)."""
    g = default_grammar()
    corpus = make_text_corpus(g, parse_personas("sailor:1,friendly+sailor:1,plain:1"), 6000, seed=4)
    ids = [corpus.vocab.index(w) for w in SWEAR_WORDS]
    for p in corpus.mixture.personas:
        counts = np.isin(corpus.words[corpus.personas == p], ids).sum(1)
        assert abs(counts.mean() - expected_swears(g, p)) < 5 * counts.std() / np.sqrt(len(counts)) + 1e-3


def test_training_beats_a_random_model_and_loads_back(trained, tmp_path):
    sim, held = trained
    rnd = TextSimulator.init(sim.spec, sim.fmt, jax.random.PRNGKey(1))
    assert 0 < excess_nats(sim, held) < excess_nats(rnd, held)
    sim.save(tmp_path / "m")
    back = TextSimulator.load(tmp_path / "m")
    assert excess_nats(back, held) == excess_nats(sim, held)


def test_seeds_are_deterministic_and_vmapped_seeds_match_single_runs():
    corpus = make_text_corpus(None, parse_personas("sailor:1,friendly:1"), 200, seed=0)
    cfg = PredictConfig(d_model=16, d_mlp=32, steps=20, warmup=5, batch_size=8)
    a = fit_text(corpus, cfg, seeds=[3], progress=False)[0]
    b = fit_text(corpus, cfg, seeds=[3], progress=False)[0]
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))


def test_steering_with_zero_leaves_generation_identical(trained):
    sim, held = trained
    name = "blocks.1.hook_resid_post"
    direction = trait_direction(sim, held, "sailor", name)
    key = jax.random.PRNGKey(5)
    plain = sim.generate(key, 32)
    assert np.array_equal(sim.generate(key, 32, hooks=steering_hooks(name, direction, 0.0)), plain)
    assert not np.array_equal(sim.generate(key, 32, hooks=steering_hooks(name, direction, 50.0)), plain)


def test_steering_rows_carry_the_ideal_references(trained):
    sim, held = trained
    rows = steer_swearing(sim, held, ks=(0.0, 4.0), n_documents=32)
    assert [r["k"] for r in rows] == [0.0, 4.0] and rows[0]["shift"] == 0.0
    mix = np.mean([expected_swears(held.grammar, p) for p in held.mixture.personas])
    sailors = np.mean([expected_swears(held.grammar, parse_persona(n)) for n in ("sailor", "friendly+sailor")])
    assert rows[0]["ideal_mixture"] == pytest.approx(mix) and rows[0]["ideal_trait"] == pytest.approx(sailors)


def test_trait_probes_rows(trained):
    sim, held = trained
    rows = trait_probes(sim, held, max_documents=60, folds=3)
    assert {r["trait"] for r in rows} == {"friendly", "sailor"}  # formal and terse do not vary in this mixture
    for r in rows:
        assert r["chance"] <= r["ideal"] <= 1 and 0 <= r["score"] <= 1 and r["selectivity"] == r["score"] - r["control"]
    post = posterior_probe(sim, held, max_documents=60, folds=3)
    assert post["r2"] <= 1 and 0 <= post["argmax_agreement"] <= 1


def test_additive_error_on_known_means():
    d = 5
    rng = np.random.default_rng(0)
    m0, da, db = rng.normal(size=(3, d))
    a, b = 1, 2
    means = {0: m0, a: m0 + da, b: m0 + db, a | b: m0 + da + db}
    assert _additive_error(means, a, b) == pytest.approx(0.0, abs=1e-12)
    means[a | b] = m0 + da + db + 0.5 * (da + db)
    assert _additive_error(means, a, b) == pytest.approx(1 / 3)


def test_additivity_needs_the_four_corners(trained):
    sim, held = trained
    rows = additivity(sim, held, pairs=(("friendly", "sailor"),))
    assert rows[0]["error"] >= 0 and np.isfinite(rows[0]["control"])
    with pytest.raises(ValueError, match="needs all four"):
        additivity(sim, held, pairs=(("formal", "terse"),))


def test_word_activations_align_with_words(trained):
    sim, held = trained
    doc, t = word_index(held)
    acts = word_activations(sim, held, ["hook_embed"])["hook_embed"]
    assert acts.shape[0] == len(doc) == int(held.lengths.sum())
    # at t = 0 the position read is BOS: the same embedding for every document
    assert np.allclose(acts[t == 0], acts[t == 0][0])


def test_lenses_refuse_the_other_family(trained):
    from simulacra.characters import parse_mixture
    from simulacra.corpus import make_corpus
    from simulacra.corpus.tokens import encode
    from simulacra.world import task

    sim, held = trained
    grid = make_corpus(task("coin-7x7"), parse_mixture("seeker:1"), 4, seed=0)
    with pytest.raises(ValueError, match="needs a text corpus"):
        trait_probes(sim, grid)
    with pytest.raises(ValueError, match="this is a text corpus"):
        encode(held)
    assert isinstance(held, TextCorpus)


def test_steer_nats_at_zero_is_the_excess_over_each_ideal(trained):
    from simulacra.text import persona_traits
    from simulacra.text.lenses import steer_nats

    sim, held = trained
    row = steer_nats(sim, held, 0.0, trait="sailor")
    has = np.array([persona_traits(p)[1] for p in held.personas]) == 1
    assert row["nats_mixture"] == pytest.approx(excess_nats(sim, held.subset(np.flatnonzero(has))), abs=1e-6)
    assert np.isfinite(row["nats_trait"]) and steer_nats(sim, held, 4.0, trait="sailor")["nats_mixture"] != row["nats_mixture"]


def test_dream_personas_reads_documents_with_the_exact_law(trained):
    """Fed real documents as its 'dreams', the lens finds them all valid and recovers the persona
    shares (the mean posterior is the prior in expectation); a broken document is not read."""
    from simulacra.text.lenses import dream_personas

    sim, held = trained
    tokens, _ = sim.fmt.encode(held)

    class Fake:
        fmt = sim.fmt

        def __init__(self, rows):
            self.rows = rows

        def generate(self, key, n):
            return self.rows[:n]

    out = dream_personas(Fake(tokens), held.grammar, held.mixture, jax.random.PRNGKey(0), len(tokens))
    assert out["valid"] == 1.0
    assert sum(out["shares"].values()) == pytest.approx(1.0)
    for name, share in out["shares"].items():
        assert abs(share - float(np.mean([held.mixture.names[held.mixture.personas.index(p)] == name for p in held.personas]))) < 0.12
    assert 0 < out["persona_entropy"] <= np.log(len(held.mixture.personas)) + 1e-9
    broken = tokens.copy()
    broken[0, sim.fmt.prefix_len] = tokens[0, sim.fmt.prefix_len + 2]  # a verb or noun where the greeting goes
    assert dream_personas(Fake(broken), held.grammar, held.mixture, jax.random.PRNGKey(0), len(tokens))["valid"] == pytest.approx(1 - 1 / len(tokens))
