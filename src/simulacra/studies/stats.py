"""Findings: each hypothesis's effect size, its 95% bootstrap confidence interval over seeds, and a
verdict by a fixed rule (docs/studies.md, "Verdicts").

The unit of replication is the seed. A group's value for a seed is the metric of its unit —
averaged over the sweep points the group does not fix with `where` (so a group pools its sweep
per seed, and seeds stay independent). NaN values are left out.

* `compare`: effect = aggregate(a) − aggregate(b), aggregate = mean or IQM (the interquartile
  mean, `scipy.stats.trim_mean(x, 0.25)`, robust to a few outlying seeds). When both groups have
  the same seeds the bootstrap resamples seeds jointly (paired: a seed's shared corpus or world
  draws cancel); otherwise each group is resampled on its own.
* `trend`: effect = least-squares slope of the metric against the swept knob, over all
  (knob value, per-seed value) points; the bootstrap resamples whole seeds (each with all its
  points), so the CI reflects seed-to-seed variation, not the number of knob values.

Intervals are `scipy.stats.bootstrap` intervals (9,999 resamples) from a fixed generator, so
findings are deterministic: BCa for means and slopes, percentile for IQM (BCa's jackknife
acceleration is unstable for trimmed statistics when one seed is an outlier, the very case IQM is
for; rliable also uses percentile intervals). With fewer than two seeds in a group there is no interval (NaN) and
the verdict is inconclusive. If every resample gives the same value (no variation across seeds)
the interval collapses to the effect itself; if BCa is undefined otherwise, the percentile
interval of the same resamples is used.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
from scipy import stats as sps

from simulacra.studies.runner import expand
from simulacra.studies.schema import Group, Hypothesis, Study

RESAMPLES = 9999
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 20240601
VERDICTS = ("supported", "refuted", "inconclusive")


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
    aggregate: str
    """"mean", "iqm" or "slope"."""
    effect: float
    """a − b (compare) or the slope (trend); NaN without data."""
    ci_low: float
    """Lower end of the 95% bootstrap CI (NaN if there is none)."""
    ci_high: float
    """Upper end."""
    n_seeds: int
    """Seeds behind the effect (paired seeds, or the smaller group's, or the trend's)."""
    verdict: str
    """supported / refuted / inconclusive (docs/studies.md, "Verdicts")."""
    means: dict[str, float]
    """Per group (compare) or per knob value (trend): the aggregate over seeds."""
    values: dict[str, dict[int, float]]
    """Per group or knob value: seed -> value."""
    paired: bool
    """Whether the bootstrap resampled seeds jointly."""
    note: str = ""
    """Why the verdict is inconclusive for want of data, or how the CI was obtained, if unusual."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN -> None, seeds as strings)."""
        d = dataclasses.asdict(self)
        for k in ("effect", "ci_low", "ci_high"):
            d[k] = None if math.isnan(d[k]) else d[k]
        d["means"] = {k: None if math.isnan(v) else v for k, v in self.means.items()}
        d["values"] = {g: {str(s): None if math.isnan(v) else v for s, v in vals.items()} for g, vals in self.values.items()}
        return d


def verdict(expect: str, ci_low: float, ci_high: float) -> str:
    """The verdict rule: supported if the whole CI lies on the expected side of 0, refuted if it
    lies wholly on the opposite side, inconclusive otherwise (or without a CI). For "different",
    supported if the CI excludes 0, else inconclusive (nothing refutes "different")."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "inconclusive"
    above, below = ci_low > 0, ci_high < 0
    if expect == "different":
        return "supported" if above or below else "inconclusive"
    if expect in ("greater", "increasing"):
        return "supported" if above else "refuted" if below else "inconclusive"
    if expect in ("less", "decreasing"):
        return "supported" if below else "refuted" if above else "inconclusive"
    raise ValueError(f"unknown expectation {expect!r}")


def _aggregate(name: str):
    if name == "iqm":
        return lambda x, axis=-1: sps.trim_mean(x, 0.25, axis=axis)
    return lambda x, axis=-1: np.mean(x, axis=axis)


def bootstrap_ci(data: tuple[np.ndarray, ...], statistic, effect: float, paired: bool, method: str = "BCa") -> tuple[float, float, str]:
    """(low, high, note): the 95% bootstrap interval (`method`: BCa or percentile) of
    `statistic(*samples, axis)` over resampled seeds; NaN with fewer than 2 per sample; the point
    when nothing varies (see the module docstring)."""
    if any(len(d) < 2 for d in data):
        return math.nan, math.nan, "fewer than 2 seeds: no interval"
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = sps.bootstrap(
            data, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method=method, paired=paired, vectorized=True, rng=rng
        )
    dist = np.asarray(res.bootstrap_distribution, np.float64)
    finite = dist[np.isfinite(dist)]
    if finite.size and np.ptp(finite) == 0 and finite.size == dist.size:
        return effect, effect, "no variation across seeds: the interval is the effect"
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(low) and math.isfinite(high):
        return low, high, ""
    if finite.size < 2:
        return math.nan, math.nan, "bootstrap undefined"
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high), "percentile interval (BCa undefined)"


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


def _group_values(rows: list[dict], g: Group) -> dict[int, float]:
    return _per_seed([r for r in rows if _matches(r, g.process, g.where)])


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
    )


def compare(h: Hypothesis, rows: list[dict]) -> Finding:
    """The finding of a `compare` hypothesis from metric rows (`Store.metrics_frame`)."""
    rows = [r for r in rows if r["metric"] == h.metric]
    a, b = _group_values(rows, h.compare.a), _group_values(rows, h.compare.b)
    agg = _aggregate(h.aggregate)
    names = {"a": h.compare.a.describe(), "b": h.compare.b.describe()}
    if names["a"] == names["b"]:
        names = {"a": "a: " + names["a"], "b": "b: " + names["b"]}
    values = {names["a"]: a, names["b"]: b}
    means = {
        names["a"]: float(agg(np.array(list(a.values())))) if a else math.nan,
        names["b"]: float(agg(np.array(list(b.values())))) if b else math.nan,
    }
    common = dict(_base(h), test="compare", aggregate=h.aggregate, means=means, values=values)
    if not a or not b:
        missing = " and ".join(n for n, v in (("a", a), ("b", b)) if not v)
        return Finding(
            **common,
            effect=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            n_seeds=0,
            verdict="inconclusive",
            paired=False,
            note=f"no results for group {missing}",
        )
    paired = set(a) == set(b)
    if paired:
        seeds = sorted(a)
        xa, xb = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
        n = len(seeds)
    else:
        xa, xb = np.array(list(a.values())), np.array(list(b.values()))
        n = min(len(xa), len(xb))
    effect = float(agg(xa) - agg(xb))

    def statistic(x, y, axis=-1):
        return agg(x, axis=axis) - agg(y, axis=axis)

    # BCa's jackknife acceleration is unstable for a trimmed statistic when a seed is an outlier
    # (the case IQM is for), so IQM uses the percentile interval, as rliable does.
    method = "percentile" if h.aggregate == "iqm" else "BCa"
    low, high, note = bootstrap_ci((xa, xb), statistic, effect, paired, method)
    return Finding(
        **common, effect=effect, ci_low=low, ci_high=high, n_seeds=n, verdict=verdict(h.expect, low, high), paired=paired, note=note
    )


def _slope(s: np.ndarray) -> np.ndarray:
    """Least-squares slope from summed sufficient statistics (..., 5) = (n, Σx, Σy, Σxx, Σxy)."""
    n, sx, sy, sxx, sxy = np.moveaxis(s, -1, 0)
    with np.errstate(all="ignore"):
        return (n * sxy - sx * sy) / (n * sxx - sx * sx)


def trend(h: Hypothesis, rows: list[dict]) -> Finding:
    """The finding of a `trend` hypothesis from metric rows (`Store.metrics_frame`)."""
    t = h.trend
    rows = [r for r in rows if r["metric"] == h.metric and _matches(r, t.process, t.where) and t.knob in r["sweep"]]
    knob_values = sorted({float(r["sweep"][t.knob]) for r in rows})
    values = {f"{t.knob}={x:g}": _per_seed([r for r in rows if float(r["sweep"][t.knob]) == x]) for x in knob_values}
    means = {k: float(np.mean(list(v.values()))) if v else math.nan for k, v in values.items()}
    common = dict(_base(h), test="trend", aggregate="slope", means=means, values=values, paired=True)
    points: dict[int, list[tuple[float, float]]] = {}
    for x, per_seed in zip(knob_values, values.values()):
        for s, y in per_seed.items():
            points.setdefault(s, []).append((x, y))
    if len(knob_values) < 2 or not points:
        return Finding(
            **common,
            effect=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            n_seeds=len(points),
            verdict="inconclusive",
            note="results at fewer than 2 knob values",
        )
    seeds = sorted(points)
    suff = np.array(
        [
            [len(p), sum(x for x, _ in p), sum(y for _, y in p), sum(x * x for x, _ in p), sum(x * y for x, y in p)]
            for p in (points[s] for s in seeds)
        ]
    )
    effect = float(_slope(suff.sum(axis=0)))

    def statistic(idx, axis=-1):
        return _slope(suff[np.asarray(idx, dtype=np.int64)].sum(axis=-2))

    low, high, note = bootstrap_ci((np.arange(len(seeds)),), statistic, effect, paired=False)
    return Finding(**common, effect=effect, ci_low=low, ci_high=high, n_seeds=len(seeds), verdict=verdict(h.expect, low, high), note=note)


def finding(h: Hypothesis, rows: list[dict]) -> Finding:
    return compare(h, rows) if h.compare is not None else trend(h, rows)


def findings(study: Study, store) -> list[Finding]:
    """Every hypothesis of `study` (as resolved for its profile), from the store's results of the
    study's current units (results of units no longer in the study are ignored)."""
    rows = store.metrics_frame(study.name, {u.unit_id for u in expand(study)})
    return [finding(h, rows) for h in study.hypotheses]
