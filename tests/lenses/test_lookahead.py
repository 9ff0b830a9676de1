"""The look-ahead lens: labels k steps ahead match a hand loop over episodes, rows cover every
(layer, target, offset), the ideal's features read the ideal's knowledge, and bad input is refused."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.lenses import lookahead as la
from simulacra.lenses.probes import residual_names, step_index
from simulacra.model import Simulator
from simulacra.training.predict import PredictConfig
from simulacra.world import task
from simulacra.world.core import EVENT_NAMES

TINY = PredictConfig(d_model=16, n_layers=1, n_heads=2, d_mlp=32)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(task("coin-fixed-7x7", horizon=10), parse_mixture("seeker:1,random:1"), 40, seed=0)


@pytest.fixture(scope="module")
def sim(corpus):
    s = Simulator.init(TINY, corpus.params, jax.random.PRNGKey(1))
    s.card = {"corpus": {"mixture": corpus.mixture.to_list()}}
    return s


def test_rows_cover_every_layer_target_and_offset(sim, corpus):
    offsets = (0, 2)
    rows = la.lookahead(sim, corpus, offsets=offsets, max_episodes=24, folds=2)
    names = residual_names(TINY.n_layers)
    assert [(r["name"], r["layer"], r["target"], r["offset"]) for r in rows] == [
        (n, i, target, k) for i, n in enumerate(names) for target in la.LOOKAHEAD_TARGETS for k in offsets
    ]
    length = corpus.episodes.length[:24].astype(int)
    for r in rows:
        for key in ("score", "control", "baseline", "ideal", "chance"):
            assert 0.0 <= r[key] <= 1.0, (key, r)
        assert r["selectivity"] == pytest.approx(r["score"] - r["control"])
        k = r["offset"]
        reach = length - k + 1 if r["target"] == "cell" and k > 0 else length - k  # s_{t+k} exists up to s_L
        assert r["n"] == int(np.maximum(reach, 0).sum())
    # the agent's cell is one of the ideal's features: at offset 0 it reads it (nearly perfectly)
    cell0 = next(r for r in rows if r["target"] == "cell" and r["offset"] == 0)
    assert cell0["ideal"] > 0.95 and cell0["chance"] < 0.2
    # the ideal does not depend on the layer
    for target in la.LOOKAHEAD_TARGETS:
        assert len({r["ideal"] for r in rows if r["target"] == target and r["offset"] == 2}) == 1


def test_labels_are_the_corpus_shifted_by_the_offset(corpus):
    e = corpus.episodes
    ep, t = step_index(corpus)
    for k in (0, 1, 3):
        per = la.lookahead_targets(corpus, k)
        assert set(per) == set(la.LOOKAHEAD_TARGETS)
        want = {name: ([], []) for name in la.LOOKAHEAD_TARGETS}
        row = 0
        for i in range(corpus.n_episodes):
            n = int(e.length[i])
            for s in range(n):
                if s + k < n:
                    want["action"][0].append(row)
                    want["action"][1].append(int(e.actions[i, s + k]))
                    hit = [j for j in range(len(EVENT_NAMES)) if e.events[i, s + k, j]]
                    want["event"][0].append(row)
                    want["event"][1].append(hit[0] if hit else len(EVENT_NAMES))
                if s + k <= n:
                    want["cell"][0].append(row)
                    want["cell"][1].append(int(e.states[i, s + k, 0]))
                row += 1
        for name, (rows, y) in per.items():
            np.testing.assert_array_equal(rows, want[name][0], err_msg=f"{name} rows at offset {k}")
            np.testing.assert_array_equal(y, want[name][1], err_msg=f"{name} labels at offset {k}")
        if k == 0:  # offset 0: the live actions themselves, every live step
            np.testing.assert_array_equal(per["action"][1], e.actions[e.mask])
            np.testing.assert_array_equal(per["action"][0], np.arange(len(ep)))
    assert np.any(la.lookahead_targets(corpus, 0)["event"][1] == EVENT_NAMES.index("coin"))  # some coins are taken


def test_ideal_ceiling_beats_chance_on_a_deterministic_corpus():
    """A noiseless seeker in a fixed world: its action is (nearly) a function of its cell, so the
    probe on the ideal's features predicts a_t well above the majority share (measured 0.76 vs
    0.57: the seeker splits ties between two shortest directions at random)."""
    c = make_corpus(task("coin-fixed-7x7", horizon=10), parse_mixture("seeker(0)"), 40, seed=0)
    s = Simulator.init(TINY, c.params, jax.random.PRNGKey(2))
    s.card = {"corpus": {"mixture": c.mixture.to_list()}}
    rows = la.lookahead(s, c, offsets=(0,), which=("action",), names=["hook_embed"], folds=2, baseline=False)
    (r,) = rows
    counts = np.bincount(c.episodes.actions[c.episodes.mask])
    assert r["chance"] == pytest.approx(counts.max() / counts.sum())
    assert np.isfinite(r["ideal"]) and r["ideal"] >= r["chance"] + 0.1
    assert np.isnan(r["baseline"])
    x = la.ideal_features(c)
    assert x.shape[0] == int(c.episodes.length.sum()) and np.all(np.isfinite(x))
    again = la.lookahead(s, c, offsets=(0,), which=("action",), names=["hook_embed"], folds=2, baseline=False)
    np.testing.assert_equal(again, rows)  # deterministic (NaN baselines compare equal here)


def test_bad_input_is_refused(sim, corpus):
    with pytest.raises(ValueError, match="offset -1 is negative"):
        la.lookahead(sim, corpus, offsets=(0, -1))
    with pytest.raises(ValueError, match="offset 10 is beyond the context: episodes of this world have at most 10 steps"):
        la.lookahead(sim, corpus, offsets=(10,))
    with pytest.raises(ValueError, match="offset 12 is beyond the context"):
        la.lookahead_targets(corpus, 12)
    with pytest.raises(ValueError, match="unknown look-ahead target 'mood'; known: action, cell, event"):
        la.lookahead(sim, corpus, which=("action", "mood"))
    with pytest.raises(ValueError, match="unknown look-ahead target"):
        la.lookahead_targets(corpus, 0, which=("reward",))
    # one episode long enough for offset 8 (t + 8 < length), the rest too short
    length = corpus.episodes.length
    keep = np.concatenate([np.flatnonzero(length == 10)[:1], np.flatnonzero(length < 8)[:5]])
    short = corpus.subset(keep)
    with pytest.raises(ValueError, match="'action' at offset 8 has steps from fewer than two episodes"):
        la.lookahead(sim, short, offsets=(0, 8), which=("action",))


def test_probe_methods_agree_on_separable_classes_and_refuse_unknown_ones():
    from simulacra.lenses.probes import probe_score

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 4)) * 0.1 + np.eye(4)[y] * 3.0  # three well-separated clusters
    groups = np.arange(120) // 4
    shuffled = rng.permutation(y)
    for method in ("logistic", "ridge"):
        assert probe_score(x, y, groups, True, 3, method=method) > 0.95
        assert probe_score(x, shuffled, groups, True, 3, method=method) < 0.6  # labels unrelated to x
    with pytest.raises(ValueError, match="unknown probe method 'svm'"):
        probe_score(x, y, groups, True, 3, method="svm")
