"""Fidelity of simulators: real episodes are legal dreams, corrupted ones are not; excess
log-loss is measured against the ideal; calibration error behaves."""

import jax
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.tokens import encode, reward_token
from simulacra.lenses import fidelity
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import Vocab, task

WORLD = task("offswitch", horizon=12)  # interruption: a stochastic law with two outcomes
CFG = PredictConfig(steps=30, batch_size=8, d_model=32, n_layers=1, n_heads=2, d_mlp=64, lr=3e-3, warmup=5)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(WORLD, parse_mixture("presser(0.1):0.5,random:0.5"), 96, seed=1)


@pytest.fixture(scope="module")
def sim(corpus):
    return fit(corpus, CFG, seed=0, progress=False)


def _as_dreams(corpus, fmt):
    return {"tokens": encode(corpus, fmt)["tokens"], "scene": corpus.episodes.scene}


def test_real_episodes_are_legal_and_match_the_real_distribution(sim, corpus):
    dreams = _as_dreams(corpus, sim.fmt)
    legal = fidelity.legality(sim, dreams)
    assert legal["illegal_fraction"] == 0.0 and legal["malformed_episodes"] == 0
    assert legal["transitions"] == corpus.n_transitions
    np.testing.assert_array_equal(legal["length"], corpus.episodes.length)
    np.testing.assert_allclose(legal["return"], corpus.episodes.return_, atol=0.006)
    np.testing.assert_array_equal(legal["events"], corpus.episodes.events.sum(1))
    cmp = fidelity.compare(legal, corpus)
    assert cmp["return"]["ks"] == 0.0 and cmp["return"]["pvalue"] == 1.0
    assert all(e["pvalue"] == pytest.approx(1.0) for e in cmp["events"].values())


def test_corrupted_dreams_are_illegal(sim, corpus):
    fmt = sim.fmt
    dreams = _as_dreams(corpus, fmt)
    tokens = dreams["tokens"].copy()
    i = int(np.argmax(corpus.episodes.length >= 4))
    # teleport: the agent's cell in s_2 moved to a far corner
    tokens[i, fmt.step_start(2)] = Vocab.CELL[0] + 5 * 15 + 7
    # a wrong reward in another episode, and a state token where an action belongs in a third
    j = int(np.argmax((corpus.episodes.length >= 3) & (np.arange(corpus.n_episodes) != i)))
    tokens[j, fmt.reward_pos(1)] = reward_token(0.37)
    k = int(np.argmax((corpus.episodes.length >= 3) & ~np.isin(np.arange(corpus.n_episodes), [i, j])))
    tokens[k, fmt.action_pos(1)] = Vocab.CELL[0]
    legal = fidelity.legality(sim, {"tokens": tokens, "scene": dreams["scene"]})
    assert legal["n_illegal"][i] == 2  # into s_2 and out of it
    assert legal["n_illegal"][j] == 1
    assert legal["malformed"][k] and legal["n_transitions"][k] == 2 and legal["n_illegal"][k] == 1
    assert legal["n_illegal"].sum() == 4
    assert legal["illegal_fraction"] == pytest.approx(4 / legal["transitions"])


def test_a_trained_model_has_nonnegative_excess_and_reports_every_type(sim, corpus):
    held_out = make_corpus(WORLD, parse_mixture("presser(0.1):0.5,random:0.5"), 48, seed=2)
    s = fidelity.scores(sim, held_out)
    assert set(s["by_type"]) == {"state", "action", "reward", "end", "all"}
    assert s["by_type"]["action"]["tokens"] == held_out.n_transitions
    for v in s["by_type"].values():
        assert v["model"] >= v["ideal"] - 0.05 and 0 <= v["ece"] <= 1
    assert s["action_kl"] > 0
    with pytest.raises(ValueError, match="unconditioned"):
        fidelity.scores(fit(corpus, PredictConfig(**{**CFG.__dict__, "rtg": True, "steps": 1, "warmup": 0}), progress=False), held_out)


def test_dreams_of_a_trained_model_can_be_checked(sim):
    d = sim.dream(jax.random.PRNGKey(0), 16)
    legal = fidelity.legality(sim, d)
    assert 0 <= legal["illegal_fraction"] <= 1 and legal["transitions"] > 0


def test_expected_calibration_error():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 200_000)
    calibrated = rng.uniform(size=conf.size) < conf
    assert fidelity.expected_calibration_error(conf, calibrated) < 0.01
    assert fidelity.expected_calibration_error(np.full(1000, 0.9), np.zeros(1000)) == pytest.approx(0.9)
