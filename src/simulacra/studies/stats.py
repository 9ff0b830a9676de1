"""Findings: each hypothesis's effect size, its 95% confidence interval over seeds, a verdict by
a fixed rule, and the same verdict after Holm's adjustment across the study's hypotheses
(docs/studies.md, "Verdicts").

The unit of replication is the seed. A group's value for a seed is the metric of its unit —
averaged over the sweep points the group does not fix with `where` (so a group pools its sweep
per seed, and seeds stay independent). NaN values are left out.

* `compare`: effect = aggregate(a) − aggregate(b). With the mean, the interval is Student's t on
  the per-seed differences when both groups have the same seeds (paired: a seed's shared corpus
  or world draws cancel), else Welch's t. With the interquartile mean (`iqm`,
  `scipy.stats.trim_mean(x, 0.25)`, robust to a few outlying seeds) it is Yuen's trimmed-mean t
  (paired or Welch-style); below `IQM_MIN_SEEDS` seeds `trim_mean` trims nothing or nearly
  nothing, so the mean is used instead, with a note.
* `trend`: each seed's least-squares slope of the metric against the swept knob, then Student's t
  over the seeds' slopes; the effect is their mean (the pooled slope when every seed has every
  knob value), and the interval reflects seed-to-seed variation, not the number of knob values.
  With `versus` (another process swept over the same knob) the effect is the mean over seeds of
  the per-seed difference of the two slopes (paired by seed), with Student's t over those
  differences: "does the metric grow faster with the knob here than there".

When every seed gives the same value (all paired differences equal, all per-seed slopes equal,
or both unpaired groups constant), se = 0 and the t-interval has zero width: that is not a
measured precision, only agreement. The interval is then reported as the point [effect, effect]
and the verdict is the exact two-sided sign test's on the n per-seed effects (n = `n_seeds`: the
smaller group's seeds when unpaired): all n on one side gives p = 2^(1−n) when the effect clears
the rule (beyond `min_effect` on the expected side, or on the wrong side of 0), p = 1 when it does
not, and the verdict is decided when p < 0.05 — so 3 or 5 identical seeds are inconclusive and 6
(`SIGN_TEST_MIN_SEEDS`) decide. The finding's note says so (`sign_test_p`).

Every interval is closed-form, so findings are deterministic. Their coverage is measured by
tests/studies/test_stats.py on normal and skewed data at 3, 5 and 10 seeds (the resampling
intervals used before under-covered badly at these sizes: ~72% at 3 seeds). Each finding also
carries the p-value of its verdict (the level at which the rule would first decide), the
Holm-adjusted p-value and verdict across the study's run hypotheses (`findings`), and, when
inconclusive, the seeds an effect of the observed size would need.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from simulacra.studies.runner import expand
from simulacra.studies.schema import Group, Hypothesis, Study

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
"""The verdicts' level: a decided verdict has p < ALPHA, and Holm controls the family-wise error at it."""
IQM_TRIM = 0.25
IQM_MIN_SEEDS = 5
"""At 3 seeds `trim_mean(x, 0.25)` trims nothing, at 4 it is the mean of the middle two."""
MAX_SEEDS = 100_000
"""`seeds_needed` looks no further."""
SIGN_TEST_MIN_SEEDS = 6
"""The fewest identical seeds at which the sign test decides: 2^(1−n) < ALPHA from n = 6 (0.03125)."""
METHODS = {
    ("mean", True): "Student t on paired seed differences",
    ("mean", False): "Welch t",
    ("iqm", True): "Yuen trimmed t on paired seeds",
    ("iqm", False): "Yuen–Welch trimmed t",
    ("slope", True): "Student t on per-seed slopes",
}
"""(aggregate, paired) -> the interval's name, as the report lists it."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """A hypothesis's result, as the report's findings table shows it."""

    id: str
    """The hypothesis id."""
    claim: str
    """The claim."""
    essay: str
    """The seed essay's title (and section)."""
    seed: str
    """The seed sentence, in our words."""
    metric: str
    """The metric."""
    test: str
    """"compare" or "trend"."""
    groups: str
    """The groups, e.g. "ppo − dt" or "ppo: slope vs world.reward_delay"."""
    knob: str | None
    """The trend's swept knob (e.g. "world.reward_delay"); None for compare."""
    processes: tuple[str, ...]
    """The processes its groups name (`Hypothesis.processes()`)."""
    expect: str
    """The expected direction."""
    min_effect: float
    """The smallest effect that counts as support (`Hypothesis.min_effect`)."""
    aggregate: str
    """"mean", "iqm" or "slope": what was computed (an `iqm` hypothesis with too few seeds says "mean")."""
    effect: float
    """a − b (compare) or the mean per-seed slope (trend); NaN without data."""
    ci_low: float
    """Lower end of the 95% interval (NaN if there is none)."""
    ci_high: float
    """Upper end."""
    n_seeds: int
    """Seeds behind the effect (paired seeds, or the smaller group's, or the seeds with a slope)."""
    verdict: str
    """supported / refuted / inconclusive / not run (docs/studies.md, "Verdicts")."""
    p_value: float
    """The smallest level at which the verdict rule decides (supported or refuted); NaN without an
    interval. With no spread across seeds (se = 0), the sign test's (`sign_test_p`)."""
    p_holm: float
    """`p_value` adjusted by Holm's method across the study's run hypotheses (`findings`)."""
    verdict_holm: str
    """The verdict if `p_holm` < 0.05, else inconclusive (not run stays not run)."""
    seeds_needed: int | None
    """For an inconclusive finding with an interval: the fewest seeds (per group) at which an effect of
    the observed size and seed-to-seed spread would be decided; None otherwise, or if none would.
    With identical seeds (se = 0) and an effect that clears the rule, `SIGN_TEST_MIN_SEEDS`."""
    method: str
    """The interval's method (`METHODS`)."""
    means: dict[str, float]
    """Per group (compare) or per knob value (trend): the aggregate over seeds."""
    values: dict[str, dict[int, float]]
    """Per group or knob value: seed -> value."""
    paired: bool
    """Whether both groups had the same seeds, so the interval is on per-seed differences (always, for a trend)."""
    note: str = ""
    """Why there is no verdict for want of data, or what was unusual about the interval."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN -> None, seeds as strings)."""
        d = dataclasses.asdict(self)
        for k in ("effect", "ci_low", "ci_high", "p_value", "p_holm"):
            d[k] = None if math.isnan(d[k]) else d[k]
        d["means"] = {k: None if math.isnan(v) else v for k, v in self.means.items()}
        d["values"] = {g: {str(s): None if math.isnan(v) else v for s, v in vals.items()} for g, vals in self.values.items()}
        return d


# ---------------------------------------------------------------------------------------------
# intervals (vectorised over leading axes, so the coverage test can run thousands at once)


@dataclasses.dataclass(frozen=True)
class Interval:
    """An effect with a t-interval: `se` and `df` come from Welch–Satterthwaite over one or two
    components, each (seeds n, seeds h left after trimming, variance): Student's t is one
    untrimmed component (h = n), Welch's two, Yuen's the same with 25% trimmed from each end and
    winsorised variances. Arrays (or floats) over any leading axes."""

    effect: np.ndarray
    se: np.ndarray
    df: np.ndarray
    variances: tuple[np.ndarray, ...]
    """Per component: the (winsorised) variance over seeds, for `seeds_needed`."""
    trim: float

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The 95% interval; the effect itself where nothing varies across seeds (se = 0)."""
        with np.errstate(invalid="ignore"):
            half = np.where(self.se == 0, 0.0, sps.t.ppf(1 - ALPHA / 2, self.df) * self.se)
        return self.effect - half, self.effect + half

    def seeds_needed(self, target: float) -> int | None:
        """The fewest seeds per group (from 2, or `IQM_MIN_SEEDS` when trimmed) at which the
        interval's half-width, with these variances, is below `target`; None if none up to
        `MAX_SEEDS` is."""
        if not target > 0:
            return None
        start = IQM_MIN_SEEDS if self.trim else 2
        while start <= MAX_SEEDS:  # in growing blocks: most answers are small
            n = np.arange(start, min(10 * start, MAX_SEEDS) + 1)
            se, df = _welch_satterthwaite([(n, n - 2 * np.floor(self.trim * n), float(v)) for v in self.variances])
            with np.errstate(invalid="ignore"):
                half = np.where(se == 0, 0.0, sps.t.ppf(1 - ALPHA / 2, df) * se)
            hit = np.flatnonzero(half < target)
            if hit.size:
                return int(n[hit[0]])
            start = int(n[-1]) + 1
        return None


def _welch_satterthwaite(components) -> tuple[np.ndarray, np.ndarray]:
    """(se, df) from components (n, h, variance): each adds (n − 1)·variance / (h(h − 1)) to se²
    (variance/n untrimmed, Yuen's term trimmed to h seeds), and df is Satterthwaite's."""
    terms = [(n - 1) * v / (h * (h - 1)) for n, h, v in components]
    total = sum(terms)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = total**2 / sum(d**2 / (h - 1) for d, (_, h, _) in zip(terms, components))
    return np.sqrt(total), df


def _winsorise(x: np.ndarray, g: int) -> np.ndarray:
    """`x` with its g smallest and g largest values (last axis) set to the nearest kept one."""
    if g == 0:
        return x
    s = np.sort(x, axis=-1)
    return np.clip(x, s[..., g : g + 1], s[..., -g - 1 : x.shape[-1] - g])


def _trimmed_mean(x: np.ndarray, trim: float) -> np.ndarray:
    return sps.trim_mean(x, trim, axis=-1) if trim else np.mean(x, axis=-1)


def difference(a: np.ndarray, b: np.ndarray, paired: bool, trim: float = 0.0) -> Interval:
    """aggregate(a) − aggregate(b) over the last axis (the seeds; at least 2 per group), with its
    interval: Student's t on the per-seed differences (paired) or Welch's t; with `trim` (0.25:
    the IQM), Yuen's trimmed-mean t, paired (winsorised differences) or Welch-style."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    effect = _trimmed_mean(a, trim) - _trimmed_mean(b, trim)
    n_a, n_b = a.shape[-1], b.shape[-1]
    g_a, g_b = int(trim * n_a), int(trim * n_b)  # what trim_mean cuts from each end
    w_a, w_b = _winsorise(a, g_a), _winsorise(b, g_b)
    if paired:
        components = [(n_a, n_a - 2 * g_a, np.var(w_a - w_b, axis=-1, ddof=1))]
    else:
        components = [(n_a, n_a - 2 * g_a, np.var(w_a, axis=-1, ddof=1)), (n_b, n_b - 2 * g_b, np.var(w_b, axis=-1, ddof=1))]
    se, df = _welch_satterthwaite(components)
    return Interval(effect, se, df, tuple(v for _, _, v in components), trim)


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y against x over the last axis."""
    xc = np.asarray(x, np.float64) - np.mean(x, axis=-1, keepdims=True)
    return np.sum(xc * y, axis=-1) / np.sum(xc * xc, axis=-1)


def mean_slope(slopes: np.ndarray) -> Interval:
    """The mean of per-seed slopes (last axis) with Student's t over seeds."""
    slopes = np.asarray(slopes, np.float64)
    n = slopes.shape[-1]
    v = np.var(slopes, axis=-1, ddof=1)
    se, df = _welch_satterthwaite([(n, n, v)])
    return Interval(np.mean(slopes, axis=-1), se, df, (v,), 0.0)


# ---------------------------------------------------------------------------------------------
# the verdict rule


def _direction(expect: str) -> int:
    """+1 for greater/increasing, −1 for less/decreasing, 0 for different."""
    if expect in ("greater", "increasing"):
        return 1
    if expect in ("less", "decreasing"):
        return -1
    if expect == "different":
        return 0
    raise ValueError(f"unknown expectation {expect!r}")


def verdict(expect: str, ci_low: float, ci_high: float, min_effect: float = 0.0) -> str:
    """The verdict rule: supported if the whole CI lies beyond `min_effect` on the expected side,
    refuted if it lies wholly on the opposite side of 0, inconclusive otherwise (or without a CI).
    For "different", supported if the CI excludes [−min_effect, min_effect], else inconclusive
    (nothing refutes "different")."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    sign = _direction(expect)
    if sign == 0:
        return "supported" if ci_low > min_effect or ci_high < -min_effect else "inconclusive"
    low, high = (ci_low, ci_high) if sign > 0 else (-ci_high, -ci_low)  # as if expect were "greater"
    return "supported" if low > min_effect else "refuted" if high < 0 else "inconclusive"


def _distance(expect: str, effect: float, min_effect: float) -> float:
    """How far the effect is beyond what decides: towards support (beyond `min_effect` on the
    expected side), or towards refutation (on the wrong side of 0); > 0 when the point decides."""
    sign = _direction(expect)
    if sign == 0:
        return abs(effect) - min_effect
    return max(sign * effect - min_effect, -sign * effect)


def sign_test_p(expect: str, effect: float, n: int, min_effect: float = 0.0) -> float:
    """The exact two-sided sign test's p-value for n identical per-seed effects (no spread, so no
    t-interval): all n lie on one side, p = min(1, 2 · 0.5^n) = 2^(1−n), when the effect clears the
    rule (`_distance` > 0); p = 1 when it does not (0, or inside `min_effect`)."""
    if not math.isfinite(effect) or n < 1:
        return math.nan
    return float(min(1.0, 2.0 ** (1 - n))) if _distance(expect, effect, min_effect) > 0 else 1.0


def p_value(expect: str, effect: float, se: float, df: float, min_effect: float = 0.0, n: int | None = None) -> float:
    """The smallest α at which the rule, applied to the (1 − α) t-interval, decides: the verdict's
    two-sided p-value (with min_effect 0, the usual one of "effect = 0"). p < 0.05 exactly when
    the 95% interval decides. NaN without an interval. With se = 0 (every seed the same) there is
    no t-interval, and it is the sign test's over the `n` seeds (`sign_test_p`; required then)."""
    if not (math.isfinite(effect) and math.isfinite(se)):
        return math.nan
    if se == 0:
        if n is None:
            raise ValueError("se = 0: the sign test needs the number of seeds n")
        return sign_test_p(expect, effect, n, min_effect)
    distance = _distance(expect, effect, min_effect)
    return float(min(1.0, 2 * sps.t.sf(distance / se, df)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (a NaN counts as 1: a hypothesis without a test can
    reject nothing, but it is one of the family); rejecting where the adjusted p < α controls the
    family-wise error rate at α."""
    p = np.nan_to_num(np.asarray(p_values, np.float64), nan=1.0)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def _holm_verdict(raw: str, p_holm: float) -> str:
    if raw in ("supported", "refuted") and p_holm < ALPHA:
        return raw
    return raw if raw == "not run" else "inconclusive"


def _resolving_target(expect: str, effect: float, min_effect: float) -> float:
    """The half-width below which an interval around `effect` would decide: |effect| − min_effect
    towards support, |effect| towards refutation."""
    sign = _direction(expect)
    if sign != 0 and sign * effect < 0:
        return abs(effect)
    return abs(effect) - min_effect


# ---------------------------------------------------------------------------------------------
# findings


def _matches(row: dict, process: str, where: dict) -> bool:
    if row["process"] != process:
        return False
    for k, v in where.items():
        allowed = v if isinstance(v, list) else [v]
        if row["sweep"].get(k) not in allowed:
            return False
    return True


def _per_seed(rows: list[dict]) -> dict[int, float]:
    """seed -> mean of the (non-NaN) values of that seed's rows."""
    acc: dict[int, list[float]] = {}
    for r in rows:
        if not math.isnan(r["value"]):
            acc.setdefault(int(r["seed"]), []).append(r["value"])
    return {s: float(np.mean(v)) for s, v in sorted(acc.items())}


def _group_rows(rows: list[dict], g: Group) -> list[dict]:
    return [r for r in rows if _matches(r, g.process, g.where)]


def _base(h: Hypothesis) -> dict[str, Any]:
    essay = h.seed.essay + (f", {h.seed.section}" if h.seed.section else "")
    return dict(
        id=h.id,
        claim=h.claim,
        essay=essay,
        seed=h.seed.sentence,
        metric=h.metric,
        groups=h.describe_groups(),
        knob=h.trend.knob if h.trend is not None else None,
        processes=tuple(h.processes()),
        expect=h.expect,
        min_effect=h.min_effect,
    )


def _undecided(common: dict, verdict_: str, note: str, n_seeds: int = 0, effect: float = math.nan) -> Finding:
    """A finding without an interval: not run, or inconclusive for want of data."""
    return Finding(
        **common,
        effect=effect,
        ci_low=math.nan,
        ci_high=math.nan,
        n_seeds=n_seeds,
        verdict=verdict_,
        p_value=math.nan,
        p_holm=math.nan,
        verdict_holm=verdict_,
        seeds_needed=None,
        note=note,
    )


def _decided(h: Hypothesis, common: dict, est: Interval, n_seeds: int, note: str) -> Finding:
    """A finding with its interval, verdict, p-values and the seeds an inconclusive effect needs."""
    effect, se, df = float(est.effect), float(est.se), float(est.df)
    low, high = (float(x) for x in est.bounds())
    p = p_value(h.expect, effect, se, df, h.min_effect, n_seeds)
    if se == 0:  # every seed the same: the point, and the sign test's verdict in the direction it lies
        raw = verdict(h.expect, low, high, h.min_effect) if p < ALPHA else "inconclusive"
        clears = _distance(h.expect, effect, h.min_effect) > 0
        needed = SIGN_TEST_MIN_SEEDS if raw == "inconclusive" and clears else None
        why = f"p = 2^(1−{n_seeds}) = {p:g}" if clears else "p = 1: the effect does not clear the rule"
        paired = len(est.variances) == 1
        seeds = f"all {n_seeds} seeds identical" if paired else f"each group's seeds identical ({n_seeds} in the smaller)"
        seeds = f"{seeds} after winsorising" if est.trim else seeds
        identical = f"{seeds}: no spread to make an interval from; the verdict is the sign test's ({why})"
        note = "; ".join(x for x in (note, identical) if x)
    else:
        raw = verdict(h.expect, low, high, h.min_effect)
        needed = est.seeds_needed(_resolving_target(h.expect, effect, h.min_effect)) if raw == "inconclusive" and se > 0 else None
    return Finding(
        **common,
        effect=effect,
        ci_low=low,
        ci_high=high,
        n_seeds=n_seeds,
        verdict=raw,
        p_value=p,
        p_holm=p,
        verdict_holm=_holm_verdict(raw, p),
        seeds_needed=needed,
        note=note,
    )


def compare(h: Hypothesis, rows: list[dict]) -> Finding:
    """The finding of a `compare` hypothesis from metric rows (`Store.metrics_frame`)."""
    rows = [r for r in rows if r["metric"] == h.metric]
    rows_a, rows_b = _group_rows(rows, h.compare.a), _group_rows(rows, h.compare.b)
    a, b = _per_seed(rows_a), _per_seed(rows_b)
    paired = bool(a) and set(a) == set(b)
    n = len(a) if paired else min(len(a), len(b))
    aggregate, note = h.aggregate, ""
    if aggregate == "iqm" and 0 < n < IQM_MIN_SEEDS:
        aggregate, note = "mean", f"the IQM needs at least {IQM_MIN_SEEDS} seeds per group ({n} here): the mean is used"
    trim = IQM_TRIM if aggregate == "iqm" else 0.0
    names = {"a": h.compare.a.describe(), "b": h.compare.b.describe()}
    if names["a"] == names["b"]:
        names = {"a": "a: " + names["a"], "b": "b: " + names["b"]}
    values = {names["a"]: a, names["b"]: b}
    means = {names[k]: float(_trimmed_mean(np.array(list(v.values())), trim)) if v else math.nan for k, v in (("a", a), ("b", b))}
    method = METHODS[aggregate, paired]
    common = dict(_base(h), test="compare", aggregate=aggregate, means=means, values=values, paired=paired, method=method)
    if not rows_a and not rows_b:
        return _undecided(common, "not run", "no results stored for its groups")
    missing = [k for k, v in (("a", a), ("b", b)) if not v]
    if missing:
        return _undecided(common, "inconclusive", f"no results for group {' and '.join(missing)}")
    if paired:
        xa, xb = np.array([a[s] for s in sorted(a)]), np.array([b[s] for s in sorted(a)])
    else:
        xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    if n < 2:
        effect = float(_trimmed_mean(xa, trim) - _trimmed_mean(xb, trim))
        return _undecided(common, "inconclusive", "fewer than 2 seeds: no interval", n, effect)
    return _decided(h, common, difference(xa, xb, paired, trim), n, note)


def _slopes(rows: list[dict], process: str, where: dict, knob: str, label: str = "") -> tuple[dict, dict[int, float], int, int]:
    """Per knob value {label knob=x: {seed: mean}}, each seed's slope over the knob values it has
    (seeds with fewer than 2 left out), the number of seeds with any result, and of knob values."""
    rows = [r for r in rows if _matches(r, process, where) and knob in r["sweep"]]
    knob_values = sorted({float(r["sweep"][knob]) for r in rows})
    values = {f"{label}{knob}={x:g}": _per_seed([r for r in rows if float(r["sweep"][knob]) == x]) for x in knob_values}
    points: dict[int, list[tuple[float, float]]] = {}
    for x, per_seed in zip(knob_values, values.values()):
        for s, y in per_seed.items():
            points.setdefault(s, []).append((x, y))
    slopes = {s: float(slope(*np.array(p).T)) for s, p in sorted(points.items()) if len(p) >= 2}
    return values, slopes, len(points), len(knob_values)


def trend(h: Hypothesis, rows: list[dict]) -> Finding:
    """The finding of a `trend` hypothesis from metric rows (`Store.metrics_frame`); with
    `versus`, of the per-seed difference of two slopes."""
    t = h.trend
    rows = [r for r in rows if r["metric"] == h.metric]
    own = Group(process=t.process, where=t.where)
    label = f"{own.describe()}: " if t.versus is not None else ""
    values, slopes, n_points, n_knob = _slopes(rows, t.process, t.where, t.knob, label)
    if t.versus is not None:
        other_values, other, n_other, n_knob_other = _slopes(rows, t.versus.process, t.versus.where, t.knob, f"{t.versus.describe()}: ")
        values.update(other_values)
    means = {k: float(np.mean(list(v.values()))) if v else math.nan for k, v in values.items()}
    method = METHODS["slope", True] if t.versus is None else "Student t on per-seed slope differences"
    common = dict(_base(h), test="trend", aggregate="slope", means=means, values=values, paired=True, method=method)
    if not n_points and (t.versus is None or not n_other):
        return _undecided(common, "not run", "no results stored for its process" + ("es" if t.versus is not None else ""))
    if t.versus is not None:
        missing = [g.describe() for g, n in ((own, n_points), (t.versus, n_other)) if not n]
        if missing:
            return _undecided(common, "inconclusive", f"no results for {missing[0]}")
    if n_knob < 2 or (t.versus is not None and n_knob_other < 2):
        return _undecided(common, "inconclusive", "results at fewer than 2 knob values", n_points)
    if t.versus is not None:
        seeds = sorted(set(slopes) & set(other))
        measured = {int(r["seed"]) for r in rows if _matches(r, t.process, t.where) or _matches(r, t.versus.process, t.versus.where)}
        short = len(measured) - len(seeds)
        estimates = np.array([slopes[s] - other[s] for s in seeds])
        note = f"{short} seed(s) without a slope in both processes left out" if short else ""
    else:
        estimates = np.array(list(slopes.values()))
        short = n_points - len(estimates)
        note = f"{short} seed(s) with results at fewer than 2 knob values left out" if short else ""
    if len(estimates) < 2:
        effect = float(estimates[0]) if len(estimates) else math.nan
        return _undecided(common, "inconclusive", "fewer than 2 seeds with a slope: no interval", len(estimates), effect)
    return _decided(h, common, mean_slope(estimates), len(estimates), note)


def finding(h: Hypothesis, rows: list[dict]) -> Finding:
    """One hypothesis's finding (Holm over a family of one: `p_holm` is `p_value`)."""
    return compare(h, rows) if h.compare is not None else trend(h, rows)


def adjust(found: Sequence[Finding]) -> list[Finding]:
    """The findings with `p_holm` and `verdict_holm` adjusted by Holm's method across those that
    were run (not "not run"); findings without a test (NaN p) count in the family and keep a NaN."""
    ran = [i for i, f in enumerate(found) if f.verdict != "not run"]
    adjusted = holm([found[i].p_value for i in ran])
    out = list(found)
    for i, p in zip(ran, adjusted):
        p = math.nan if math.isnan(found[i].p_value) else float(p)
        out[i] = dataclasses.replace(found[i], p_holm=p, verdict_holm=_holm_verdict(found[i].verdict, p))
    return out


def findings(study: Study, store) -> list[Finding]:
    """Every hypothesis of `study` (as resolved for its profile), from the store's results of the
    study's current units (results of units no longer in the study are ignored), Holm-adjusted
    across the hypotheses that were run."""
    rows = store.metrics_frame(study.name, {u.unit_id for u in expand(study)})
    return adjust([finding(h, rows) for h in study.hypotheses])
