"""Findings: planted effects are recovered with CIs that cover them, and the verdict rule holds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulacra.studies import Hypothesis
from simulacra.studies.stats import finding, verdict


def hyp(expect: str = "greater", aggregate: str = "mean", **test) -> Hypothesis:
    test = test or {"compare": {"a": "a", "b": "b"}}
    return Hypothesis.model_validate(
        {"id": "H", "claim": "c", "seed": {"essay": "E", "sentence": "s"}, "metric": "m", "expect": expect, "aggregate": aggregate, **test}
    )


def rows(process: str, values, sweep: dict | None = None, seeds=None, metric: str = "m") -> list[dict]:
    seeds = range(len(values)) if seeds is None else seeds
    return [{"process": process, "seed": s, "sweep": sweep or {}, "metric": metric, "value": float(v)} for s, v in zip(seeds, values)]


NOISE = np.random.default_rng(0).normal(0, 0.1, size=(2, 8))
NOISE -= NOISE.mean(axis=1, keepdims=True)  # so that the planted effects are the sample effects
B = 2.0 + NOISE[0]


def test_planted_effect_is_supported_with_ci_covering_it():
    f = finding(hyp("greater"), rows("a", B + 1 + NOISE[1]) + rows("b", B) + rows("a", [99.0], metric="other"))
    assert f.verdict == "supported" and f.paired and f.n_seeds == 8
    assert f.ci_low < 1 < f.ci_high and f.effect == pytest.approx(1.0)
    assert f.means["a"] == pytest.approx(np.mean(B + 1 + NOISE[1])) and set(f.values["b"]) == set(range(8))
    again = finding(hyp("greater"), rows("a", B + 1 + NOISE[1]) + rows("b", B))
    assert (again.ci_low, again.ci_high) == (f.ci_low, f.ci_high)  # deterministic
    assert finding(hyp("less"), rows("a", B + 1 + NOISE[1]) + rows("b", B)).verdict == "refuted"
    assert finding(hyp("different"), rows("a", B + 1 + NOISE[1]) + rows("b", B)).verdict == "supported"


def test_no_effect_is_inconclusive():
    f = finding(hyp("greater"), rows("a", B + NOISE[1]) + rows("b", B))
    assert f.verdict == "inconclusive" and f.ci_low < 0 < f.ci_high
    assert finding(hyp("different"), rows("a", B + NOISE[1]) + rows("b", B)).verdict == "inconclusive"


def test_unpaired_when_seeds_differ_and_iqm_resists_outliers():
    a = rows("a", B[:6] + 1, seeds=range(6))
    b = rows("b", B, seeds=range(8))
    f = finding(hyp("greater"), a + b)
    assert not f.paired and f.n_seeds == 6 and f.verdict == "supported"
    b16 = 2.0 + np.random.default_rng(2).normal(0, 0.1, 16)
    outlier = b16 + 1
    outlier[0] = -100.0
    assert finding(hyp("greater"), rows("a", outlier) + rows("b", b16)).verdict != "supported"
    f = finding(hyp("greater", "iqm"), rows("a", outlier) + rows("b", b16))
    assert f.verdict == "supported" and f.effect == pytest.approx(1.0, abs=0.2)


def test_groups_filter_and_pool_sweep_points():
    h = hyp("greater", compare={"a": {"process": "p", "where": {"params.x": 1}}, "b": {"process": "p", "where": {"params.x": 0}}})
    data = (
        rows("p", B + 1, {"params.x": 1, "world.k": 0})
        + rows("p", B + 3, {"params.x": 1, "world.k": 1})
        + rows("p", B, {"params.x": 0, "world.k": 0})
    )
    f = finding(h, data)
    assert f.effect == pytest.approx(2.0) and f.n_seeds == 8  # a pools k=0 and k=1 per seed: B + 2
    assert set(f.means) == {"p[params.x=1]", "p[params.x=0]"}


def test_trend_slope_is_recovered():
    rng = np.random.default_rng(1)
    data = []
    for k in (0, 1, 2, 4):
        data += rows("p", 0.5 + 0.25 * k + rng.normal(0, 0.05, 8), {"world.reward_delay": k, "params.g": 0.9})
        data += rows("p", 10 + rng.normal(0, 0.05, 8), {"world.reward_delay": k, "params.g": 0.5})
    h = hyp("increasing", trend={"process": "p", "knob": "world.reward_delay", "where": {"params.g": 0.9}})
    f = finding(h, data)
    assert f.verdict == "supported" and f.ci_low < 0.25 < f.ci_high and f.effect == pytest.approx(0.25, abs=0.03)
    assert f.n_seeds == 8 and list(f.means) == [
        "world.reward_delay=0",
        "world.reward_delay=1",
        "world.reward_delay=2",
        "world.reward_delay=4",
    ]
    assert finding(hyp("decreasing", trend=h.trend.model_dump()), data).verdict == "refuted"
    flat = hyp("increasing", trend={"process": "p", "knob": "world.reward_delay", "where": {"params.g": 0.5}})
    assert finding(flat, data).verdict == "inconclusive"


def test_degenerate_cases_do_not_crash():
    # no data at all
    f = finding(hyp(), [])
    assert f.verdict == "inconclusive" and math.isnan(f.effect) and f.n_seeds == 0 and "no results" in f.note
    # one seed: an effect but no interval
    f = finding(hyp(), rows("a", [3.0]) + rows("b", [1.0]))
    assert f.effect == 2.0 and math.isnan(f.ci_low) and f.verdict == "inconclusive"
    # no variation across seeds: the interval is the point
    f = finding(hyp(), rows("a", [1.0] * 5) + rows("b", [0.0] * 5))
    assert (f.effect, f.ci_low, f.ci_high, f.verdict) == (1.0, 1.0, 1.0, "supported")
    f = finding(hyp(), rows("a", [0.0] * 5) + rows("b", [0.0] * 5))
    assert (f.effect, f.verdict) == (0.0, "inconclusive")
    # NaN values are left out
    f = finding(hyp(), rows("a", [np.nan, 2, 2.1, 1.9]) + rows("b", [1, 1.1, 0.9, 1.0]))
    assert f.n_seeds == 3 and not f.paired and np.isfinite(f.effect)
    # a trend with one knob value, and with two seeds
    h = hyp("increasing", trend={"process": "p", "knob": "world.k"})
    assert finding(h, rows("p", [1, 2, 3], {"world.k": 0})).verdict == "inconclusive"
    f = finding(h, rows("p", [0, 0.1], {"world.k": 0}) + rows("p", [1, 1.1], {"world.k": 1}))
    assert f.effect == pytest.approx(1.0) and f.to_dict()["values"]["world.k=1"] == {"0": 1.0, "1": 1.1}


def test_verdict_rule():
    assert verdict("greater", 0.1, 2) == "supported" and verdict("greater", -2, -0.1) == "refuted"
    assert verdict("greater", -0.1, 2) == "inconclusive" and verdict("greater", 0.0, 1) == "inconclusive"
    assert verdict("less", -2, -0.1) == "supported" and verdict("decreasing", 0.1, 2) == "refuted"
    assert verdict("different", -2, -0.1) == "supported" and verdict("different", -1, 1) == "inconclusive"
    assert verdict("increasing", math.nan, math.nan) == "inconclusive"
