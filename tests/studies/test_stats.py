"""Findings: interval coverage measured by simulation, planted effects recovered, the verdict rule
(with min_effect), "not run", Holm's adjustment, the seeds an inconclusive effect needs, and the
terminal's findings table at 80 and 200 columns."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pydantic
import pytest
from rich.console import Console
from scipy import stats as sps

from simulacra.studies import Hypothesis, findings_table
from simulacra.studies.stats import (
    IQM_MIN_SEEDS,
    SIGN_TEST_MIN_SEEDS,
    adjust,
    difference,
    finding,
    holm,
    mean_slope,
    p_value,
    sign_test_p,
    slope,
    verdict,
)


def hyp(expect: str = "greater", aggregate: str = "mean", min_effect: float = 0.0, **test) -> Hypothesis:
    test = test or {"compare": {"a": "a", "b": "b"}}
    return Hypothesis.model_validate(
        {"id": "H", "claim": "c", "seed": {"essay": "E", "sentence": "s"}, "metric": "m", "expect": expect, "aggregate": aggregate,
         "min_effect": min_effect, **test}
    )  # fmt: skip


def rows(process: str, values, sweep: dict | None = None, seeds=None, metric: str = "m") -> list[dict]:
    seeds = range(len(values)) if seeds is None else seeds
    return [{"process": process, "seed": s, "sweep": sweep or {}, "metric": metric, "value": float(v)} for s, v in zip(seeds, values)]


NOISE = np.random.default_rng(0).normal(0, 0.1, size=(2, 8))
NOISE -= NOISE.mean(axis=1, keepdims=True)  # so that the planted effects are the sample effects
B = 2.0 + NOISE[0]


# ---------------------------------------------------------------------------------------------
# coverage: every interval the findings use, on simulated seeds whose true effect is known

SIMULATED = 2000
"""Simulated studies per (design, distribution, seeds): the coverage estimate's standard error is
about 0.5 points at 95%."""
SIZES = (3, 5, 10)


def _noise(rng: np.random.Generator, dist: str, size) -> np.ndarray:
    """Normal, or lognormal(0, 1): skewness about 6, far more skewed than seed-to-seed spread tends to be."""
    return rng.normal(size=size) if dist == "normal" else rng.lognormal(0.0, 1.0, size=size)


def _paired(rng, dist, n, trim=0.0, scale_b=None):
    """Both groups share a per-seed effect (cancelled by pairing) and draw their own noise:
    a = 1 + s + e_a, b = s + scale_b · e_b, with normal noise of unequal spreads (scale_b 0.25) or
    skewed noise of the same spread. The truth is the difference of the populations' means (or
    IQMs, which differ by the same shift when scale_b = 1)."""
    scale_b = scale_b if scale_b is not None else (0.25 if dist == "normal" else 1.0)
    s = rng.normal(size=(SIMULATED, n))
    a, b = 1.0 + s + _noise(rng, dist, (SIMULATED, n)), s + scale_b * _noise(rng, dist, (SIMULATED, n))
    truth = 1.0 + (1 - scale_b) * (math.exp(0.5) if dist == "lognormal" else 0.0)
    return difference(a, b, paired=True, trim=trim), truth


def _unpaired(rng, dist, n, trim=0.0, scale_b=None):
    """Independent groups of n and n + 2 seeds, a = 1 + e_a, b = scale_b · e_b: normal noise with
    unequal spreads (scale_b 0.25, Welch's case; the noisier group has fewer seeds, the harder
    case) or skewed noise with the same spread."""
    scale_b = scale_b if scale_b is not None else (0.25 if dist == "normal" else 1.0)
    a, b = 1.0 + _noise(rng, dist, (SIMULATED, n)), scale_b * _noise(rng, dist, (SIMULATED, n + 2))
    truth = 1.0 + (1 - scale_b) * (math.exp(0.5) if dist == "lognormal" else 0.0)
    return difference(a, b, paired=False, trim=trim), truth


def _trend(knob):
    """Per seed y = 0.5 · knob + s + e at each knob value: the mean of per-seed slopes."""

    def design(rng, dist, n):
        x = np.asarray(knob, np.float64)
        y = 0.5 * x + 2.0 * rng.normal(size=(SIMULATED, n, 1)) + _noise(rng, dist, (SIMULATED, n, x.size))
        return mean_slope(slope(x, y)), 0.5

    return design


DESIGNS = {
    "mean, paired (Student t)": (_paired, SIZES),
    "mean, unpaired (Welch t)": (_unpaired, SIZES),
    "slope, 4 knob values": (_trend((0, 1, 2, 4)), SIZES),
    "slope, 2 knob values": (_trend((0, 1)), SIZES),
    "iqm, paired (Yuen t)": (lambda rng, dist, n: _paired(rng, dist, n, trim=0.25), (5, 10)),
    "iqm, unpaired (Yuen-Welch t)": (lambda rng, dist, n: _unpaired(rng, dist, n, trim=0.25), (5, 10)),
}
SHORTFALLS = {("iqm, unpaired (Yuen-Welch t)", "normal", 5): 0.91}
"""Documented exceptions to 93% (docs/studies.md, "Verdicts"): Yuen's trimmed t keeps 3 of 5
seeds, and with unequal spreads and seed counts it covers about 92%."""
SKEWED_DIFFERENCES = {
    "mean, paired, b = 0.3 e": (lambda rng, dist, n: _paired(rng, dist, n, scale_b=0.3), SIZES),
    "mean, unpaired, b = 0.3 e": (lambda rng, dist, n: _unpaired(rng, dist, n, scale_b=0.3), SIZES),
}
"""A documented limitation (docs/studies.md, "Verdicts"): when the groups' skewed noise differs in
spread, the per-seed differences are themselves skewed and no t-interval reaches 95%."""


def _coverages(designs: dict, dists=("normal", "lognormal")) -> dict[tuple[str, str, int], float]:
    rng = np.random.default_rng(20240601)
    out = {}
    for name, (design, sizes) in designs.items():
        for dist in dists:
            for n in sizes:
                est, truth = design(rng, dist, n)
                low, high = est.bounds()
                out[name, dist, n] = float(np.mean((low <= truth) & (truth <= high)))
    return out


def _print(title: str, cov: dict) -> None:
    print(f"\n{title} (nominal 95%, {SIMULATED} simulated studies each)")
    for (name, dist, n), c in cov.items():
        print(f"  {name:30s} {dist:9s} n={n:2d}  {c:.1%}")


def test_every_interval_covers_at_least_93_percent_at_3_5_and_10_seeds():
    cov = _coverages(DESIGNS)
    _print("coverage", cov)
    assert len(cov) == 4 * 2 * 3 + 2 * 2 * 2
    low = {k: c for k, c in cov.items() if c < SHORTFALLS.get(k, 0.93)}
    assert not low, low
    assert all(c < 0.99 for c in cov.values()), cov  # not merely wide


def test_skewed_differences_undercover_as_documented():
    cov = _coverages(SKEWED_DIFFERENCES, dists=("lognormal",))
    _print("coverage, skewed differences", cov)
    assert all(0.80 <= c < 0.93 for c in cov.values()), cov


def test_interval_formulas_match_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 1, 7), rng.normal(0, 2, 9)
    welch = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert difference(a, b, paired=False).bounds() == pytest.approx((welch.low, welch.high))
    paired = sps.ttest_rel(a, b[:7]).confidence_interval(0.95)
    assert difference(a, b[:7], paired=True).bounds() == pytest.approx((paired.low, paired.high))
    yuen = sps.ttest_ind(a, b, equal_var=False, trim=0.25)
    est = difference(a, b, paired=False, trim=0.25)
    assert float(est.effect / est.se) == pytest.approx(yuen.statistic) and float(est.df) == pytest.approx(yuen.df)
    assert float(est.effect) == pytest.approx(sps.trim_mean(a, 0.25) - sps.trim_mean(b, 0.25))


# ---------------------------------------------------------------------------------------------
# findings from metric rows


def test_planted_effect_is_supported_with_ci_covering_it():
    f = finding(hyp("greater"), rows("a", B + 1 + NOISE[1]) + rows("b", B) + rows("a", [99.0], metric="other"))
    assert f.verdict == f.verdict_holm == "supported" and f.paired and f.n_seeds == 8
    assert f.ci_low < 1 < f.ci_high and f.effect == pytest.approx(1.0) and f.p_value == f.p_holm < 1e-6
    assert f.method == "Student t on paired seed differences" and f.seeds_needed is None
    assert f.means["a"] == pytest.approx(np.mean(B + 1 + NOISE[1])) and set(f.values["b"]) == set(range(8))
    assert finding(hyp("less"), rows("a", B + 1 + NOISE[1]) + rows("b", B)).verdict == "refuted"
    assert finding(hyp("different"), rows("a", B + 1 + NOISE[1]) + rows("b", B)).verdict == "supported"


def test_no_effect_is_inconclusive_and_says_how_many_seeds_would_resolve_it():
    f = finding(hyp("greater"), rows("a", B + NOISE[1]) + rows("b", B))
    assert f.verdict == "inconclusive" and f.ci_low < 0 < f.ci_high
    assert finding(hyp("different"), rows("a", B + NOISE[1]) + rows("b", B)).verdict == "inconclusive"
    # a small effect among noisy seeds: the fewest seeds whose t-interval half-width is below it
    d = np.array([0.3, -0.2, 0.5, 0.1])
    f = finding(hyp("greater"), rows("a", 1 + d) + rows("b", [1.0] * 4))
    sd, effect = np.std(d, ddof=1), np.mean(d)
    half = {n: sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n) for n in range(2, 200)}
    expected = min(n for n, h in half.items() if h < effect)
    assert f.verdict == "inconclusive" and f.seeds_needed == expected and half[expected - 1] >= effect
    # min_effect: the interval must clear it, so more seeds are needed
    g = finding(hyp("greater", min_effect=0.05), rows("a", 1 + d) + rows("b", [1.0] * 4))
    assert g.seeds_needed == min(n for n, h in half.items() if h < effect - 0.05)
    # an effect no larger than min_effect cannot be supported however many seeds
    assert finding(hyp("greater", min_effect=0.2), rows("a", 1 + d) + rows("b", [1.0] * 4)).seeds_needed is None
    # on the wrong side, the seeds that would refute it
    assert finding(hyp("less", min_effect=0.2), rows("a", 1 + d) + rows("b", [1.0] * 4)).seeds_needed == expected


def test_seeds_needed_reaches_far_and_gives_up_past_the_limit():
    est = difference(np.array([0.0, 1.0, 2.0]), np.zeros(3), paired=True)  # seed-to-seed sd 1
    n = est.seeds_needed(0.02)  # about (1.96 / 0.02)² ≈ 9,600
    assert sps.t.ppf(0.975, n - 1) / math.sqrt(n) < 0.02 <= sps.t.ppf(0.975, n - 2) / math.sqrt(n - 1)
    assert est.seeds_needed(0.001) is None and est.seeds_needed(0.0) is None  # beyond MAX_SEEDS; nothing to resolve
    iqm = difference(np.arange(6.0), np.zeros(6), paired=True, trim=0.25)
    assert iqm.seeds_needed(100.0) == IQM_MIN_SEEDS  # the IQM's interval starts at 5 seeds


def test_min_effect_raises_the_bar_for_support_only():
    data = rows("a", B + 1 + NOISE[1]) + rows("b", B)  # effect 1, interval about [0.9, 1.1]
    assert finding(hyp("greater", min_effect=0.5), data).verdict == "supported"
    f = finding(hyp("greater", min_effect=1.5), data)
    assert f.verdict == f.verdict_holm == "inconclusive" and f.p_value == 1.0 and f.min_effect == 1.5
    assert finding(hyp("less", min_effect=1.5), data).verdict == "refuted"
    assert finding(hyp("different", min_effect=0.5), data).verdict == "supported"
    assert finding(hyp("different", min_effect=1.5), data).verdict == "inconclusive"
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        hyp(min_effect=-0.1)
    with pytest.raises(pydantic.ValidationError, match="finite"):
        hyp(min_effect=math.nan)


def test_unpaired_when_seeds_differ_and_iqm_resists_outliers():
    a = rows("a", B[:6] + 1, seeds=range(6))
    b = rows("b", B, seeds=range(8))
    f = finding(hyp("greater"), a + b)
    assert not f.paired and f.n_seeds == 6 and f.verdict == "supported" and f.method == "Welch t"
    b16 = 2.0 + np.random.default_rng(2).normal(0, 0.1, 16)
    outlier = b16 + 1
    outlier[0] = -100.0
    assert finding(hyp("greater"), rows("a", outlier) + rows("b", b16)).verdict != "supported"
    f = finding(hyp("greater", "iqm"), rows("a", outlier) + rows("b", b16))
    assert f.verdict == "supported" and f.effect == pytest.approx(1.0, abs=0.2)
    assert (f.aggregate, f.method, f.note) == ("iqm", "Yuen trimmed t on paired seeds", "")


def test_iqm_below_five_seeds_is_the_mean_with_a_note():
    data = rows("a", B[:4] + 1) + rows("b", B[:4])
    f = finding(hyp("greater", "iqm"), data)
    assert IQM_MIN_SEEDS == 5 and f.aggregate == "mean" and "at least 5 seeds" in f.note and "(4 here)" in f.note
    mean = finding(hyp("greater"), data)
    assert (f.effect, f.ci_low, f.ci_high, f.verdict) == (mean.effect, mean.ci_low, mean.ci_high, mean.verdict)
    assert finding(hyp("greater", "iqm"), rows("a", B[:5] + 1) + rows("b", B[:5])).aggregate == "iqm"


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


def test_trend_is_the_mean_of_per_seed_slopes():
    rng = np.random.default_rng(1)
    data = []
    for k in (0, 1, 2, 4):
        data += rows("p", 0.5 + 0.25 * k + rng.normal(0, 0.05, 8), {"world.reward_delay": k, "params.g": 0.9})
        data += rows("p", 10 + rng.normal(0, 0.05, 8), {"world.reward_delay": k, "params.g": 0.5})
    h = hyp("increasing", trend={"process": "p", "knob": "world.reward_delay", "where": {"params.g": 0.9}})
    f = finding(h, data)
    assert f.verdict == "supported" and f.ci_low < 0.25 < f.ci_high and f.effect == pytest.approx(0.25, abs=0.03)
    y = np.array([[r["value"] for r in data if r["seed"] == s and r["sweep"]["params.g"] == 0.9] for s in range(8)])
    slopes = [np.polyfit([0, 1, 2, 4], y[s], 1)[0] for s in range(8)]
    assert f.effect == pytest.approx(np.mean(slopes)) and f.method == "Student t on per-seed slopes"
    t = sps.ttest_1samp(slopes, 0.0).confidence_interval(0.95)
    assert (f.ci_low, f.ci_high) == pytest.approx((t.low, t.high))
    assert f.n_seeds == 8 and list(f.means) == [f"world.reward_delay={k}" for k in (0, 1, 2, 4)]
    assert finding(hyp("decreasing", trend=h.trend.model_dump()), data).verdict == "refuted"
    flat = hyp("increasing", trend={"process": "p", "knob": "world.reward_delay", "where": {"params.g": 0.5}})
    assert finding(flat, data).verdict == "inconclusive"
    # a seed measured at one knob value only has no slope and is left out
    some = [r for r in data if not (r["seed"] == 0 and r["sweep"]["world.reward_delay"] > 0)]
    g = finding(h, some)
    assert g.n_seeds == 7 and "1 seed(s)" in g.note


def test_a_trend_versus_another_process_is_the_mean_of_per_seed_slope_differences():
    rng = np.random.default_rng(2)
    data = []
    for g in (0.0, 0.5, 1.0):
        data += rows("steep", 1.0 + 0.8 * g + rng.normal(0, 0.05, 6), {"params.gamma": g})
        data += rows("flat", 3.0 + 0.2 * g + rng.normal(0, 0.05, 6), {"params.gamma": g})
    h = hyp("less", trend={"process": "flat", "knob": "params.gamma", "versus": "steep"})
    f = finding(h, data)
    per = {p: np.array([[r["value"] for r in data if r["process"] == p and r["seed"] == s] for s in range(6)]) for p in ("steep", "flat")}
    diffs = [np.polyfit([0, 0.5, 1], per["flat"][s], 1)[0] - np.polyfit([0, 0.5, 1], per["steep"][s], 1)[0] for s in range(6)]
    assert f.effect == pytest.approx(np.mean(diffs)) and f.effect == pytest.approx(-0.6, abs=0.1)
    t = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert (f.ci_low, f.ci_high) == pytest.approx((t.low, t.high)) and f.verdict == "supported" and f.n_seeds == 6
    assert f.groups == "flat: slope vs params.gamma − steep: slope" and set(f.processes) == {"flat", "steep"}
    assert f.method == "Student t on per-seed slope differences"
    assert "steep: params.gamma=1" in f.means and "flat: params.gamma=0" in f.means
    assert finding(hyp("greater", trend=h.trend.model_dump()), data).verdict == "refuted"
    # a seed that has a slope in one process only is left out of the pairs
    g = finding(h, [r for r in data if not (r["process"] == "steep" and r["seed"] == 0 and r["sweep"]["params.gamma"] > 0)])
    assert g.n_seeds == 5 and "1 seed(s) without a slope in both" in g.note
    # the other process not run: inconclusive; neither: not run
    only = finding(h, [r for r in data if r["process"] == "flat"])
    assert only.verdict == "inconclusive" and only.note == "no results for steep"
    assert finding(h, []).verdict == "not run"
    with pytest.raises(pydantic.ValidationError, match="expect 'increasing' is not allowed with trend with versus"):
        hyp("increasing", trend=h.trend.model_dump())


def test_not_run_is_not_inconclusive():
    f = finding(hyp(), [])
    assert f.verdict == f.verdict_holm == "not run" and math.isnan(f.effect) and f.n_seeds == 0 and "no results" in f.note
    assert finding(hyp("increasing", trend={"process": "p", "knob": "world.k"}), rows("q", [1.0])).verdict == "not run"
    # one group measured, the other not: run, but inconclusive
    f = finding(hyp(), rows("a", [1.0, 2.0]))
    assert f.verdict == "inconclusive" and f.note == "no results for group b"
    # measured, but every value NaN: run, inconclusive
    assert finding(hyp(), rows("a", [np.nan] * 3) + rows("b", [np.nan] * 3)).verdict == "inconclusive"


def test_degenerate_cases_do_not_crash():
    # one seed: an effect but no interval
    f = finding(hyp(), rows("a", [3.0]) + rows("b", [1.0]))
    assert f.effect == 2.0 and math.isnan(f.ci_low) and f.verdict == "inconclusive" and math.isnan(f.p_value)
    # no variation across seeds: the interval is the point, and the sign test decides (see below)
    f = finding(hyp(), rows("a", [1.0] * 5) + rows("b", [0.0] * 5))
    assert (f.effect, f.ci_low, f.ci_high, f.verdict, f.p_value) == (1.0, 1.0, 1.0, "inconclusive", 0.0625)
    f = finding(hyp(), rows("a", [0.0] * 5) + rows("b", [0.0] * 5))
    assert (f.effect, f.verdict, f.seeds_needed) == (0.0, "inconclusive", None)
    # NaN values are left out
    f = finding(hyp(), rows("a", [np.nan, 2, 2.1, 1.9]) + rows("b", [1, 1.1, 0.9, 1.0]))
    assert f.n_seeds == 3 and not f.paired and np.isfinite(f.effect)
    # a trend with one knob value, and with two seeds
    h = hyp("increasing", trend={"process": "p", "knob": "world.k"})
    assert finding(h, rows("p", [1, 2, 3], {"world.k": 0})).verdict == "inconclusive"
    f = finding(h, rows("p", [0, 0.1], {"world.k": 0}) + rows("p", [1, 1.1], {"world.k": 1}))
    assert f.effect == pytest.approx(1.0) and f.to_dict()["values"]["world.k=1"] == {"0": 1.0, "1": 1.1}


def test_identical_seeds_get_the_sign_test():
    """Every seed the same: no spread, so no t-interval; the point is reported and the verdict is
    the exact two-sided sign test's, p = 2^(1−n) — inconclusive below 6 seeds."""
    for n, p in ((3, 0.25), (5, 0.0625)):
        f = finding(hyp(), rows("a", [112.0] * n) + rows("b", [0.0] * n))
        assert (f.effect, f.ci_low, f.ci_high, f.p_value, f.p_holm) == (112.0, 112.0, 112.0, p, p)
        assert f.verdict == f.verdict_holm == "inconclusive" and f.seeds_needed == SIGN_TEST_MIN_SEEDS == 6
        assert f"all {n} seeds identical" in f.note and "sign test" in f.note and f"= {p:g})" in f.note
    # 6 identical seeds decide: supported in the expected direction (a trend's slopes alike) ...
    f = finding(hyp("greater"), rows("a", [3.0] * 6) + rows("b", [1.0] * 6))
    assert (f.verdict, f.verdict_holm, f.p_value, f.seeds_needed) == ("supported", "supported", 0.03125, None)
    assert "all 6 seeds identical" in f.note and "2^(1−6) = 0.03125" in f.note
    h = hyp("increasing", trend={"process": "p", "knob": "world.k"})
    f = finding(h, rows("p", [0.0] * 6, {"world.k": 0}) + rows("p", [2.0] * 6, {"world.k": 1}))
    assert (f.effect, f.ci_low, f.ci_high, f.verdict, f.p_value) == (2.0, 2.0, 2.0, "supported", 0.03125)
    assert "all 6 seeds identical" in f.note
    # ... refuted on the wrong side of 0, and "different" either way
    f = finding(hyp("greater"), rows("a", [0.0] * 6) + rows("b", [1.0] * 6))
    assert (f.effect, f.verdict, f.p_value) == (-1.0, "refuted", 0.03125)
    f = finding(hyp("different"), rows("a", [0.0] * 6) + rows("b", [1.0] * 6))
    assert (f.verdict, f.p_value) == ("supported", 0.03125)
    # an effect that does not clear the rule: p = 1, and no number of identical seeds would decide
    f = finding(hyp(), rows("a", [0.0] * 6) + rows("b", [0.0] * 6))
    assert (f.effect, f.verdict, f.p_value, f.seeds_needed) == (0.0, "inconclusive", 1.0, None) and "p = 1" in f.note
    f = finding(hyp("greater", min_effect=0.5), rows("a", [0.3] * 8) + rows("b", [0.0] * 8))
    assert (f.verdict, f.p_value, f.seeds_needed) == ("inconclusive", 1.0, None)
    f = finding(hyp("different", min_effect=0.5), rows("a", [0.0] * 8) + rows("b", [0.3] * 8))
    assert (f.verdict, f.p_value) == ("inconclusive", 1.0)
    # min_effect cleared by identical seeds, and the wrong side refutes whatever min_effect is
    assert finding(hyp("less", min_effect=0.5), rows("a", [0.0] * 7) + rows("b", [1.0] * 7)).verdict == "supported"
    assert finding(hyp("less", min_effect=0.5), rows("a", [0.2] * 7) + rows("b", [0.0] * 7)).verdict == "refuted"
    # unpaired groups, each constant: the smaller group's seeds count
    f = finding(hyp(), rows("a", [1.0] * 5, seeds=range(5)) + rows("b", [0.0] * 7, seeds=range(10, 17)))
    assert not f.paired and (f.n_seeds, f.verdict, f.p_value) == (5, "inconclusive", 0.0625)
    assert "each group's seeds identical (5 in the smaller)" in f.note
    # the sign test's p-values, and Holm over them unchanged
    assert [sign_test_p("greater", 1.0, n) for n in (1, 2, 5, 6, 10)] == [1.0, 0.5, 0.0625, 0.03125, 2.0**-9]
    assert p_value("greater", 1.0, 0.0, math.nan, n=6) == 0.03125 and p_value("greater", -1.0, 0.0, math.nan, n=6) == 0.03125
    with pytest.raises(ValueError, match="sign test"):
        p_value("greater", 1.0, 0.0, math.nan)
    six = finding(hyp("greater"), rows("a", [3.0] * 6) + rows("b", [1.0] * 6))
    adjusted = adjust([six, dataclasses.replace(six, id="H2")])
    assert [(g.p_holm, g.verdict_holm) for g in adjusted] == [(0.0625, "inconclusive")] * 2


# ---------------------------------------------------------------------------------------------
# the verdict rule, p-values and Holm


def test_verdict_rule():
    assert verdict("greater", 0.1, 2) == "supported" and verdict("greater", -2, -0.1) == "refuted"
    assert verdict("greater", -0.1, 2) == "inconclusive" and verdict("greater", 0.0, 1) == "inconclusive"
    assert verdict("less", -2, -0.1) == "supported" and verdict("decreasing", 0.1, 2) == "refuted"
    assert verdict("different", -2, -0.1) == "supported" and verdict("different", -1, 1) == "inconclusive"
    assert verdict("increasing", math.nan, math.nan) == "inconclusive"
    # min_effect: support must clear it; refutation is still the wrong side of 0
    assert verdict("greater", 0.1, 2, 0.2) == "inconclusive" and verdict("greater", 0.3, 2, 0.2) == "supported"
    assert verdict("less", -2, -0.3, 0.2) == "supported" and verdict("less", -2, -0.1, 0.2) == "inconclusive"
    assert verdict("less", 0.05, 2, 0.2) == "refuted" and verdict("different", 0.1, 2, 0.2) == "inconclusive"
    assert verdict("different", -2, -0.3, 0.2) == "supported"


def test_p_value_is_below_5_percent_exactly_when_the_interval_decides():
    rng = np.random.default_rng(5)
    for _ in range(500):
        effect, se, df, m = rng.normal(0, 1), rng.exponential(0.3), rng.integers(1, 12), rng.choice([0.0, 0.2])
        half = sps.t.ppf(0.975, df) * se
        for expect in ("greater", "less", "different"):
            decided = verdict(expect, effect - half, effect + half, m) != "inconclusive"
            assert (p_value(expect, effect, se, df, m) < 0.05) == decided, (expect, effect, se, df, m)
    assert p_value("greater", 1.0, 0.5, 4) == pytest.approx(2 * sps.t.sf(2.0, 4))  # the usual two-sided p


def _holm_rejects(p: list[float], alpha: float) -> set[int]:
    """Holm's step-down procedure, as written: reject in order of p while p_(j) ≤ α/(m − j)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for j, i in enumerate(order):
        if p[i] > alpha / (len(p) - j):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_p_values_reject_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(6)
    for _ in range(300):
        p = list(rng.uniform(0, 0.1, rng.integers(1, 8)) ** rng.uniform(0.5, 2))
        adjusted = holm(p)
        assert all(a >= q for a, q in zip(adjusted, p))
        for alpha in (0.01, 0.05):
            assert {i for i, a in enumerate(adjusted) if a <= alpha} == _holm_rejects(p, alpha)
    assert list(holm([0.01, math.nan, 0.02])) == pytest.approx([0.03, 1.0, 0.04])


def test_holm_verdicts_across_the_run_findings():
    strong = finding(hyp("greater"), rows("a", B + 1 + NOISE[1]) + rows("b", B))
    d = np.array([0.12, 0.04, 0.2, 0.1, 0.0, 0.12])  # p about 0.019: supported on its own
    weak = finding(hyp("greater"), rows("a", 1 + d) + rows("b", [1.0] * 6))
    assert weak.verdict == weak.verdict_holm == "supported" and 0.05 / 4 < weak.p_value < 0.05 / 2
    noise = finding(hyp("greater"), rows("a", B + NOISE[1]) + rows("b", B))
    not_run = finding(hyp(), [])
    out = adjust([strong, weak, not_run, noise])
    assert [f.verdict_holm for f in out] == ["supported", "supported", "not run", "inconclusive"]  # a family of 3
    assert out[1].p_holm == pytest.approx(2 * weak.p_value) and math.isnan(out[2].p_holm)
    out = adjust([strong, weak, noise, noise, noise, not_run])  # a family of 5: 4 · p > 0.05
    assert out[1].verdict == "supported" and out[1].verdict_holm == "inconclusive"
    assert out[1].to_dict()["p_holm"] == pytest.approx(min(1.0, 4 * weak.p_value)) and out[5].to_dict()["p_holm"] is None


# ---------------------------------------------------------------------------------------------
# the terminal's findings table


def _long_findings():
    data = []
    for s in range(3):
        for k in (0, 1):
            data += rows("ppo_tamper_sparse", [0.3 * k + 0.1 * s], {"world.reward_delay": k}, seeds=[s], metric="m")
            data += rows("finetune_switch", [0.2 + 0.05 * s + 0.01 * k], {"params.beta": float(k)}, seeds=[s], metric="m")
    hs = [
        hyp("increasing", trend={"process": "ppo_tamper_sparse", "knob": "world.reward_delay"}),
        hyp("greater", compare={"a": {"process": "finetune_switch", "where": {"params.beta": 0.0}},
                                "b": {"process": "finetune_switch", "where": {"params.beta": 1.0}}}),  # fmt: skip
        hyp("less", compare={"a": "ppo_tamper_sparse", "b": "dt_tamper_sparse_random_long_name"}),
        hyp("increasing", trend={"process": "steer_switch_character_tags", "knob": "params.k"}),
    ]
    return adjust([finding(h.model_copy(update={"id": f"H{i}b"}), data) for i, h in enumerate(hs)])


@pytest.mark.parametrize("width", [80, 200])
def test_findings_table_reads_at_80_and_200_columns(width):
    found = _long_findings()
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(findings_table(found, "findings"))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    names = {p for f in found for p in f.processes}
    for name in names:  # every occurrence whole: none split across lines
        assert text.count(name) == sum(f.groups.count(name) for f in found), (name, text)
    for f in found:
        effect, ci = (f"{f.effect:.3g}", f"[{f.ci_low:.3g}, {f.ci_high:.3g}]") if f.ci_low == f.ci_low else ("–", "–")
        row = next(line for line in lines if line.lstrip().startswith(f.id))
        assert effect in row and str(f.n_seeds) in row and f.verdict in row, (row, text)
        assert ci in lines[lines.index(row) + (width == 80)]  # the CI under the effect at 80 columns
        assert f.verdict_holm in lines[lines.index(row) + (width == 80)]
        if width == 200:  # one line per finding, groups and all
            assert f.groups in row, row
    assert "not run" in text
    for f in found:  # each note follows the table as a line of its own, wrapped to the width
        if f.note:
            assert f"{f.id}: {f.note}".split()[:4] == text[text.index(f"{f.id}: {f.note[:10]}"):].split()[:4], text


def test_a_long_sweep_group_breaks_before_its_bracket_at_80_columns():
    data = []
    for s in range(3):
        for d, v in (("friendly", 0.4 + 0.1 * s), ("random", 0.3 + 0.05 * s)):
            data += rows("rl_direction", [v], {"params.direction": d}, seeds=[s], metric="m")
    h = hyp("greater", compare={"a": {"process": "rl_direction", "where": {"params.direction": "friendly"}},
                                "b": {"process": "rl_direction", "where": {"params.direction": "random"}}})  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(findings_table(adjust([finding(h, data)]), "findings"))
    text = out.getvalue()
    assert "[params.direction=friendly]" in text and "[params.direction=random]" in text, text
    data = []
    for s in range(3):
        for mix, v in (("seeker:1,tamperer:3,random:1", 0.02 + 0.01 * s), ("seeker:3,tamperer:1,random:1", 0.004 * s)):
            data += rows("dt_share", [v], {"corpus.mixture": mix}, seeds=[s], metric="m")
    h = hyp("greater", compare={"a": {"process": "dt_share", "where": {"corpus.mixture": "seeker:1,tamperer:3,random:1"}},
                                "b": {"process": "dt_share", "where": {"corpus.mixture": "seeker:3,tamperer:1,random:1"}}})  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(findings_table(adjust([finding(h, data)]), "findings"))
    words = out.getvalue().split()
    assert "tamperer:3," in words and "tamperer:1," in words, out.getvalue()
