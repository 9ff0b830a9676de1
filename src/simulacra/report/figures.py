"""The report's figures, drawn from the plain records a study leaves behind.

Every figure function takes plain Python data (the findings, the results store's rows, the
series, see `simulacra.report` for their shapes) and returns PNG bytes, or None when its input
holds nothing to draw, so the report can say "no data" instead of failing. Figures are built
on `matplotlib.figure.Figure` directly, never through pyplot: no global backend or figure
state, safe in a notebook, a server or a worker process. PNGs carry no creation time, so the
same inputs give the same bytes.

Statistics over seeds are descriptive: a unit's seeds are the independent replicates, so every
mean ± interval first averages the units of one (process, seed) at one x value (other swept
knobs, worlds), then takes the mean and a Student-t 95% interval across seeds
(`lenses.behaviour.mean_ci`). The findings' own effects and intervals come from the study's
statistics and are drawn as given.

The functions know no study: every series, metric and knob they draw is named by a parameter
(a default is the name the shipped process kinds use), and the report's sections
(`simulacra.kinds.sections` for the kinds' own) choose what to pass.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simulacra.lenses.behaviour import mean_ci

VERDICT_COLOURS = {"supported": "#2e8b57", "refuted": "#c0392b", "inconclusive": "#8c8c8c", "not run": "#bdbdbd"}
_DPI = 110
_TAB10 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def attr(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` for a mapping, `obj.name` for anything else (dataclass, pydantic model)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def as_float(x: Any) -> float:
    """A float, with None and anything unparseable as nan."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def metric_rows(rows: Iterable[Mapping]) -> list[Mapping]:
    """The rows with the metric's name under `name` (the results store may call it `metric`)."""
    out = []
    for r in rows or ():
        if "name" not in r:
            r = {**r, "name": r.get("metric")}
        out.append(r if isinstance(r["name"], str) else {**r, "name": str(r["name"])})
    return out


def sweep_key(sweep: Mapping | None, knob: str) -> str | None:
    """The key of `sweep` that is `knob` itself or ends in `.knob` (a study's sweep keys carry
    their root, e.g. `world.reward_delay`), or None."""
    for k in sweep or {}:
        if k == knob or str(k).endswith("." + knob):
            return k
    return None


def palette(processes: Iterable[str]) -> dict[str, str]:
    """A colour per process, by sorted name, so that every figure of a report agrees."""
    names = sorted({str(p) for p in processes})
    return {p: _TAB10[i % len(_TAB10)] for i, p in enumerate(names)}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _plain(s: Any) -> str:
    """Text from the study shown as it is: no mathtext (`$...$`), not hidden from legends (`_x`)."""
    s = str(s).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _finite(*xs: float) -> bool:
    return all(math.isfinite(x) for x in xs)


def _seed_means(rows: Iterable[Mapping], key) -> dict[Any, dict[Any, list[float]]]:
    """{group: {seed: [values]}} for the rows `key(row)` maps to a group (None drops the row)."""
    out: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        g = key(r)
        v = as_float(r.get("value"))
        if g is None or not math.isfinite(v):
            continue
        out[g][r.get("seed")].append(v)
    return out


def over_seeds(per_seed: Mapping[Any, list[float]]) -> tuple[float, float, float, list[float]]:
    """(mean, low, high, per-seed means) across seeds."""
    vals = [float(np.mean(v)) for v in per_seed.values() if v]
    if not vals:
        return float("nan"), float("nan"), float("nan"), []
    m, lo, hi = mean_ci(vals)
    return m, lo, hi, vals


def _line(ax, xs: Sequence[float], stats: Sequence[tuple], style: str, colour: str, label: str, alpha: float) -> None:
    """Means `stats[i][0]` against `xs` with the band [low, high] where both are finite."""
    ax.plot(xs, [s[0] for s in stats], style, color=colour, ms=4, label=_plain(label))
    ok = [i for i, s in enumerate(stats) if _finite(s[1], s[2])]
    if ok:
        ax.fill_between([xs[i] for i in ok], [stats[i][1] for i in ok], [stats[i][2] for i in ok], color=colour, alpha=alpha, lw=0)


def _sort_key(v: Any) -> tuple:
    """Numbers in numeric order first, then anything else by its text."""
    f = as_float(v) if not isinstance(v, bool) else float("nan")
    return (0, f, "") if math.isfinite(f) else (1, 0.0, str(v))


def _series_label(s: Mapping) -> str:
    """A series' line label: its process, with its sweep point as `[knob=value, ...]` (the knob's
    last dotted part) when it has one."""
    sweep = s.get("sweep") or {}
    point = ", ".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in sorted(sweep.items()))
    return str(s.get("process")) + (f" [{point}]" if sweep else "")


def _label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# findings


def findings_forest(findings: Sequence[Any]) -> bytes | None:
    """Each hypothesis's effect with its 95% interval, one row per finding, coloured by verdict.
    A finding without a finite effect keeps its row, marked "not run" or "n/a"."""
    if not findings:
        return None
    n = len(findings)
    fig = Figure(figsize=(7.5, 0.9 + 0.42 * n))
    ax = fig.add_subplot()
    ys = np.arange(n)[::-1]
    labels = []
    for y, f in zip(ys, findings):
        eff, lo, hi = (as_float(attr(f, k)) for k in ("effect", "ci_low", "ci_high"))
        verdict = str(attr(f, "verdict", "inconclusive"))
        colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["inconclusive"])
        labels.append(_plain(f"{attr(f, 'id', '?')}  {attr(f, 'metric', '')}"))
        if _finite(lo, hi):
            ax.plot([lo, hi], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
        if math.isfinite(eff):
            ax.plot([eff], [y], "o", color=colour, ms=7, zorder=3)
        else:
            ax.text(0.0, y, " not run" if verdict == "not run" else " n/a", va="center", ha="left", color=colour, fontsize=9)
    ax.axvline(0.0, color="#444444", lw=0.8, ls="--")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("effect (95% CI over seeds)")
    handles = [ax.plot([], [], "o-", color=c, label=v)[0] for v, c in VERDICT_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Findings")
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# return conditioning


def conditioning_curves(
    series: Iterable[Mapping], name: str = "return_sweep", best_return: float | None = None, colours: Mapping[str, str] | None = None
) -> bytes | None:
    """Target vs achieved return, one line per process with a 95% band, the diagonal y = x,
    and the corpus's best return (`best_return`, else the series' `data["corpus_best"]` when every
    process drawn has the same one).

    Series named `name` with `data = {"targets", "returns", "ci_low"?, "ci_high"?,
    "corpus_best"?}`. Several series of one process (seeds) are averaged target by target and
    their band is the interval across them; a lone series keeps its own interval."""
    by_process: dict[str, list[dict]] = defaultdict(list)
    bests = []
    for s in series:
        if s.get("name") != name or not isinstance(s.get("data"), Mapping):
            continue
        d = s["data"]
        targets = [as_float(t) for t in d.get("targets") or []]
        returns = [as_float(r) for r in d.get("returns") or []]
        if not targets or len(targets) != len(returns):
            continue
        n = len(targets)
        lo = [as_float(x) for x in d.get("ci_low") or [None] * n][:n]
        hi = [as_float(x) for x in d.get("ci_high") or [None] * n][:n]
        by_process[str(s.get("process"))].append(
            {"seed": s.get("seed"), "pts": {t: (r, a, b) for t, r, a, b in zip(targets, returns, lo, hi)}}
        )
        if d.get("corpus_best") is not None:
            bests.append((str(s.get("process")), as_float(d["corpus_best"])))
    if not by_process:
        return None
    colours = colours or palette(by_process)
    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    span = []
    for process in sorted(by_process):
        curves = by_process[process]
        targets = sorted({t for c in curves for t in c["pts"]})
        mean, low, high = [], [], []
        for t in targets:
            at = [c["pts"][t] for c in curves if t in c["pts"] and math.isfinite(c["pts"][t][0])]
            if len(at) >= 2:
                m, lo, hi = mean_ci([a[0] for a in at])
            elif at:
                m, lo, hi = at[0]
            else:
                m = lo = hi = float("nan")
            mean.append(m)
            low.append(lo)
            high.append(hi)
        colour = colours.get(process, "#333333")
        seeds = {c["seed"] for c in curves}
        label = f"{process} (n={len(seeds)} seeds)" if len(seeds) > 1 else process
        ax.plot(targets, mean, "o-", color=colour, label=_plain(label), ms=4)
        ok = [i for i in range(len(targets)) if _finite(low[i], high[i])]
        if ok:
            ax.fill_between([targets[i] for i in ok], [low[i] for i in ok], [high[i] for i in ok], color=colour, alpha=0.2, lw=0)
        span += targets + [m for m in mean if math.isfinite(m)]
    lo_, hi_ = min(span), max(span)
    ax.plot([lo_, hi_], [lo_, hi_], color="#555555", lw=0.9, ls="--", label="achieved = target")
    if best_return is not None:
        best = as_float(best_return)
    else:
        # one corpus-best line only when every process drawn shares it (else each corpus's best
        # would be read against the others' curves)
        values = {round(b, 6) for p, b in bests if p in by_process and math.isfinite(b)}
        best = values.pop() if len(values) == 1 else float("nan")
    if math.isfinite(best):
        ax.axhline(best, color="#aa3377", lw=0.9, ls=":", label=f"corpus best ({best:.3g})")
    ax.set_xlabel("target return (prompt)")
    ax.set_ylabel("achieved return")
    ax.set_title("Return conditioning")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# event rates


def event_rates(rows: Iterable[Mapping], prefix: str = "rate_", colours: Mapping[str, str] | None = None,
                ylabel: str = "rate (mean over seeds, 95% CI; points: seeds)", title: str = "Event rates by process",
                tick=None) -> bytes | None:  # fmt: skip
    """Grouped bars: for every event metric present (names starting with `prefix`, e.g.
    `rate_button`), the mean over seeds per process with its 95% interval, and each seed's value
    as a point. Any family of metrics sharing a prefix can be drawn so (`ylabel`, `title`; `tick`
    maps a metric name to its label, by default the name without the prefix)."""
    rows = [r for r in metric_rows(rows) if r["name"].startswith(prefix)]
    data = _seed_means(rows, lambda r: (str(r.get("process")), str(r["name"])))
    if not data:
        return None
    events = sorted({e for _, e in data})
    processes = sorted({p for p, _ in data})
    colours = colours or palette(processes)
    width = 0.8 / len(processes)
    fig = Figure(figsize=(max(6.0, 1.1 * len(events) * max(1, len(processes)) ** 0.5 + 2), 4.2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # jitter of the per-seed points only
    for j, p in enumerate(processes):
        label = p
        for i, e in enumerate(events):
            if (p, e) not in data:
                continue
            m, lo, hi, vals = over_seeds(data[(p, e)])
            x = i - 0.4 + width * (j + 0.5)
            ax.bar(x, m, width * 0.9, color=colours.get(p, "#333333"), alpha=0.75, label=label and _plain(label))
            label = None
            if _finite(lo, hi):
                ax.errorbar(x, m, yerr=[[m - lo], [hi - m]], color="#222222", capsize=3, lw=1)
            ax.plot(x + rng.uniform(-0.25, 0.25, len(vals)) * width, vals, "o", color="#111111", ms=2.5, alpha=0.8)
    tick = tick or (lambda e: e[len(prefix) :])
    ax.set_xticks(range(len(events)), [_plain(tick(e)) for e in events])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if prefix != "rate_":
        ax.axhline(0.0, color="#555555", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def choice_rates(rows: Iterable[Mapping], metrics: Sequence[str], reference_prefix: str = "optimal_",
                 colours: Mapping[str, str] | None = None, title: str = "Choices against the exact optimum") -> bytes | None:  # fmt: skip
    """Grouped bars, one group per process and sweep point (`_series_label`): for each of
    `metrics` (e.g. `rate_clue`, `rate_fix`, `rate_hedge`) the mean over seeds with its 95%
    interval and each seed as a point, and a black bar at the same metric of the reference
    (`reference_prefix + metric`, e.g. the exact optimum's `optimal_rate_fix`) where measured."""
    rows = metric_rows(rows)
    wanted = set(metrics) | {reference_prefix + m for m in metrics}
    data = _seed_means((r for r in rows if r["name"] in wanted), lambda r: (_series_label(r), str(r["name"])))
    groups = sorted({g for g, m in data if m in metrics}, key=str)
    if not groups:
        return None
    colours = colours or palette(metrics)
    hatch_of = dict(zip(metrics, ["", "//", ".."]))
    width = 0.8 / len(metrics)
    fig = Figure(figsize=(max(6.0, 1.3 * len(groups) + 2), 4.4))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # jitter of the per-seed points only
    shown_ref = False
    for j, metric in enumerate(metrics):
        label = metric
        for i, g in enumerate(groups):
            x = i - 0.4 + width * (j + 0.5)
            if (g, metric) in data:
                m, lo, hi, vals = over_seeds(data[(g, metric)])
                ax.bar(x, m, width * 0.9, color=colours.get(metric, "#333333"), alpha=0.75, hatch=hatch_of.get(metric, ""),
                       label=label and _plain(label))  # fmt: skip
                label = None
                if _finite(lo, hi):
                    ax.errorbar(x, m, yerr=[[m - lo], [hi - m]], color="#222222", capsize=3, lw=1)
                ax.plot(x + rng.uniform(-0.25, 0.25, len(vals)) * width, vals, "o", color="#111111", ms=2.5, alpha=0.8)
            ref = (g, reference_prefix + metric)
            if ref in data:
                r = over_seeds(data[ref])[0]
                if math.isfinite(r):
                    ax.hlines(r, x - width * 0.45, x + width * 0.45, color="#000000", lw=2.5,
                              label=None if shown_ref else _plain(f"{reference_prefix.rstrip('_')} (black bars)"))  # fmt: skip
                    shown_ref = True
    ax.set_xticks(range(len(groups)), [_plain(g) for g in groups], rotation=15 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center")
    ax.set_ylabel("share of episodes (mean over seeds, 95% CI)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# a metric against a swept knob


def _knob_axes(values: list) -> tuple[dict, list[str] | None]:
    """x positions for knob values: the numbers themselves, or categories in sorted order."""
    if all(math.isfinite(as_float(v)) and not isinstance(v, (bool, str)) for v in values):
        return {v: as_float(v) for v in values}, None
    ordered = sorted(values, key=_sort_key)
    return {v: float(i) for i, v in enumerate(ordered)}, [_label(v) for v in ordered]


def _knob_panel(ax, rows: list[Mapping], knob: str, metric: str, colours: Mapping[str, str]) -> bool:
    sel = [r for r in rows if r.get("name") == metric and knob in (r.get("sweep") or {})]
    data = _seed_means(sel, lambda r: (str(r.get("process")), _hashable(r["sweep"][knob])))
    if not data:
        return False
    xs, ticks = _knob_axes(sorted({v for _, v in data}, key=_sort_key))
    for p in sorted({p for p, _ in data}):
        vs = sorted((v for q, v in data if q == p), key=_sort_key)
        stats = [over_seeds(data[(p, v)]) for v in vs]
        x = [xs[v] for v in vs]
        _line(ax, x, stats, "o-", colours.get(p, "#333333"), p, alpha=0.2)
    if ticks is not None:
        ax.set_xticks(range(len(ticks)), [_plain(t) for t in ticks])
    ax.set_xlabel(_plain(knob))
    ax.set_ylabel(_plain(metric))
    ax.grid(alpha=0.3)
    return True


def _hashable(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def knob_curves(rows: Iterable[Mapping], knob: str, metrics: Sequence[str], colours: Mapping[str, str] | None = None) -> bytes | None:
    """One panel per metric: the metric against the swept `knob` (a unit's `sweep[knob]`), one
    line per process, mean ± 95% interval over seeds (other swept knobs averaged within a
    seed). Numeric knob values are placed on a numeric axis, anything else as categories."""
    rows = metric_rows(rows)
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        return None
    colours = colours or palette(r.get("process") for r in rows)
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4.2 * cols + 0.6, 3.4 * nrows + 0.4))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    drawn = [_knob_panel(ax, rows, knob, m, colours) for ax, m in zip(axes, metrics)]
    if not any(drawn):
        return None
    for ax, ok in zip(axes, drawn + [False] * (len(axes) - len(drawn))):
        if not ok:
            ax.set_visible(False)
    # one legend per distinct set of processes (panels may show different processes)
    seen: set[tuple[str, ...]] = set()
    for ax, ok in zip(axes, drawn):
        labels = tuple(ax.get_legend_handles_labels()[1]) if ok else ()
        if labels and labels not in seen:
            seen.add(labels)
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle(_plain(f"{', '.join(m for m, ok in zip(metrics, drawn) if ok)} vs {knob}"))
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# goal misgeneralisation


def misgeneralisation_curve(
    rows: Iterable[Mapping],
    knob: str,
    old_spot: str = "p_old_spot",
    coin: str = "p_coin",
    colours: Mapping[str, str] | None = None,
) -> bytes | None:
    """With the coin moved at test time: P(goes to the old spot) (metric `old_spot`, dashed) and
    P(gets the coin) (metric `coin`, solid) against the probability `knob` that the coin was
    placed at random in training, one colour per process, mean ± 95% interval over seeds."""
    rows = [r for r in metric_rows(rows) if r["name"] in (old_spot, coin) and sweep_key(r.get("sweep"), knob)]
    data = _seed_means(rows, lambda r: (str(r.get("process")), str(r["name"]), as_float(r["sweep"][sweep_key(r["sweep"], knob)])))
    data = {k: v for k, v in data.items() if math.isfinite(k[2])}
    if not data:
        return None
    processes = sorted({p for p, _, _ in data})
    colours = colours or palette(processes)
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for p in processes:
        for name, style, what in ((coin, "o-", "gets the coin"), (old_spot, "s--", "goes to the old spot")):
            ps = sorted(x for q, n, x in data if q == p and n == name)
            if not ps:
                continue
            stats = [over_seeds(data[(p, name, x)]) for x in ps]
            _line(ax, ps, stats, style, colours.get(p, "#333333"), f"{p}: {what}", alpha=0.15)
    ax.set_xlabel(_plain(f"{knob} in training"))
    ax.set_ylabel("probability, coin moved at test")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Goal misgeneralisation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# inside the network, layer by layer


def layer_profiles(
    rows: Iterable[Mapping],
    knob: str,
    probe: tuple[str, str, str] = ("probe_score", "probe_baseline", "probe_control"),
    changes: Sequence[str] = ("weight_change", "cka", "transplant_gain"),
    colours: Mapping[str, str] | None = None,
) -> bytes | None:
    """Inside the network, block by block (units sweeping `knob`, e.g. `params.layer`): for each
    probed process a panel with the probe's score (accuracy or R², solid), the same probe on a
    randomly initialised model (dashed) and on its control task (dotted) — the metrics `probe`
    names, in that order; then a panel per layer-change metric in `changes`, one line per
    process. Mean ± 95% interval over seeds."""
    score, baseline, control = probe
    probe_lines = ((score, "o-", "probe score"), (baseline, "s--", "random-init baseline"), (control, "x:", "control task"))
    rows = [r for r in metric_rows(rows) if sweep_key(r.get("sweep"), knob)]
    data = _seed_means(rows, lambda r: (str(r.get("process")), str(r["name"]), as_float(r["sweep"][sweep_key(r["sweep"], knob)])))
    data = {k: v for k, v in data.items() if math.isfinite(k[2])}
    have = {(p, m) for p, m, _ in data}
    processes = sorted({p for p, _ in have})
    panels: list[tuple[str, str, list[tuple[str, str, str, str]]]] = []
    for p in processes:
        lines = [(p, m, style, label) for m, style, label in probe_lines if (p, m) in have]
        if any(m == score for _, m, _, _ in lines):
            panels.append((p, "probe score", lines))
    for m in changes:
        lines = [(p, m, "o-", p) for p in processes if (p, m) in have]
        if lines:
            panels.append((m, m, lines))
    if not panels:
        return None
    colours = colours or palette(processes)
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols + 0.6, 3.4 * nrows + 0.4))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, ylabel, lines) in zip(axes, panels):
        layers_seen: set[float] = set()
        for p, m, style, label in lines:
            xs = sorted(x for q, n, x in data if q == p and n == m)
            stats = [over_seeds(data[(p, m, x)]) for x in xs]
            _line(ax, xs, stats, style, "#888888" if m == control else colours.get(p, "#333333"), label, alpha=0.15)
            layers_seen.update(xs)
        if all(float(x).is_integer() for x in layers_seen):
            ax.set_xticks(sorted(layers_seen))
        ax.set_title(_plain(title), fontsize=10)
        ax.set_xlabel(_plain(f"{knob} (block)"))
        ax.set_ylabel(_plain(ylabel))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# fine-tuning


def finetune_curves(series: Iterable[Mapping], name: str = "finetune", colours: Mapping[str, str] | None = None) -> bytes | None:
    """Per update: return (and true return, dotted, where present) and the KL to the pretrained
    simulator, one line per unit, coloured by process. Series named `name` with
    `data = {"return": [...], "kl": [...], "true_return"?: [...], "update"?: [...]}`."""
    curves = []
    for s in series:
        d = s.get("data")
        if s.get("name") != name or not isinstance(d, Mapping):
            continue
        ret = [as_float(x) for x in d.get("return") or []]
        kl = [as_float(x) for x in d.get("kl") or []]
        if not ret and not kl:
            continue
        n = max(len(ret), len(kl))
        upd = [as_float(x) for x in d.get("update") or range(1, n + 1)]
        curves.append((str(s.get("process")), upd, ret, kl, [as_float(x) for x in d.get("true_return") or []]))
    if not curves:
        return None
    colours = colours or palette(c[0] for c in curves)
    fig = Figure(figsize=(10.0, 3.8))
    ax_r, ax_kl = fig.subplots(1, 2)
    labelled = set()
    for process, upd, ret, kl, true in curves:
        colour = colours.get(process, "#333333")
        label = None if process in labelled else _plain(process)
        labelled.add(process)
        if ret:
            ax_r.plot(upd[: len(ret)], ret, color=colour, lw=1.2, alpha=0.85, label=label)
        if true:
            ax_r.plot(upd[: len(true)], true, color=colour, lw=1.0, ls=":", alpha=0.85)
        if kl:
            ax_kl.plot(upd[: len(kl)], kl, color=colour, lw=1.2, alpha=0.85, label=label)
    ax_r.set_title("return per update (dotted: true return)")
    ax_kl.set_title("KL to the pretrained simulator")
    for ax in (ax_r, ax_kl):
        ax.set_xlabel("update")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    ax_r.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)


def onset_curves(series: Iterable[Mapping], name: str = "onset") -> bytes | None:
    """Left: the event rate against the discount, one line per (process, sweep point) with a 95%
    band over seeds, and the exact optimum's 0/1 curve dashed in the same colour. Right: each
    line's onset — the learned one per seed (points), its mean with a 95% interval, and the exact
    one (a diamond; the continuous critical discount as a cross where it differs).

    Series named `name` with `data = {"gammas", "rate", "onset", "exact", "exact_onset"?,
    "critical_gamma"?, "event"?}` (the onsets as the kind computed them) and the unit's `process`
    and `sweep`."""
    curves: dict[tuple, dict] = {}
    for s in series:
        d = s.get("data")
        if s.get("name") != name or not isinstance(d, Mapping):
            continue
        gammas = [as_float(x) for x in d.get("gammas") or []]
        rate = [as_float(x) for x in d.get("rate") or []]
        if len(gammas) < 2 or len(rate) != len(gammas):
            continue
        label = _series_label(s)
        c = curves.setdefault((label, tuple(gammas)), {"rates": [], "onsets": [], "exact": None, "exact_onset": float("nan"),
                                                       "critical": None, "event": d.get("event")})  # fmt: skip
        c["rates"].append(rate)
        c["onsets"].append(as_float(d.get("onset")))
        if d.get("exact") is not None:
            c["exact"] = [as_float(x) for x in d["exact"]]
        if d.get("exact_onset") is not None:
            c["exact_onset"] = as_float(d["exact_onset"])
        if d.get("critical_gamma") is not None:
            c["critical"] = as_float(d["critical_gamma"])
    if not curves:
        return None
    fig = Figure(figsize=(11.0, 4.2))
    ax, ax_on = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1.0]})
    events = {c["event"] for c in curves.values() if c["event"]}
    event = events.pop() if len(events) == 1 else "the event"
    rows = []
    for i, ((label, gammas), c) in enumerate(sorted(curves.items())):
        colour = _TAB10[i % len(_TAB10)]
        stats = [over_seeds({j: [r[k]] for j, r in enumerate(c["rates"]) if math.isfinite(r[k])}) for k in range(len(gammas))]
        stats = [(m, max(0.0, lo), min(1.0, hi), v) for m, lo, hi, v in stats]  # a share: the band stays in [0, 1]
        n = len(c["rates"])
        _line(ax, list(gammas), stats, "o-", colour, f"{label} (n={n})", 0.18)
        if c["exact"] is not None:
            ax.step(gammas, c["exact"], where="mid", color=colour, ls="--", lw=1.0, alpha=0.9)
        learned = [x for x in c["onsets"] if math.isfinite(x)]
        rows.append((label, colour, learned, c["exact_onset"], c["critical"]))
    ax.set_xlabel("discount γ")
    ax.set_ylabel(f"share of episodes with {_plain(event)}")
    ax.set_ylim(-0.04, 1.04)
    ax.set_title("learned (solid, 95% band) and exact optimum (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    for y, (label, colour, learned, exact, critical) in enumerate(rows):
        ax_on.plot(learned, [y] * len(learned), "o", color=colour, alpha=0.45, ms=4)
        if len(learned) >= 2:
            m, lo, hi = mean_ci(learned)
            ax_on.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt="s", color=colour, capsize=3, ms=6)
        elif learned:
            ax_on.plot(learned, [y], "s", color=colour, ms=6)
        if math.isfinite(exact):
            ax_on.plot([exact], [y], "D", mfc="white", mec="black", ms=7)
        if critical is not None and math.isfinite(critical):
            ax_on.plot([critical], [y], "x", color="black", ms=6)
    ax_on.set_yticks(range(len(rows)))
    ax_on.set_yticklabels([_plain(r[0]) for r in rows], fontsize=7)
    ax_on.invert_yaxis()
    ax_on.set_xlabel("onset γ")
    ax_on.set_title("onset: learned (mean, 95% CI), exact ◇, γ* ×")
    ax_on.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _png(fig)


def lookahead_curves(series: Iterable[Mapping], name: str = "lookahead", colours: Mapping[str, str] | None = None) -> bytes | None:
    """One panel per (target, block): probe accuracy against the offset k, one line per (process,
    sweep point), mean over seeds; dashed the ideal ceiling, dotted the random-init baseline.

    Series named `name` with `data = {"rows": [{"layer", "target", "offset", "score", "ideal"?,
    "baseline"?}, ...]}` and the unit's `process` and `sweep`."""
    acc: dict[tuple, dict[str, list[float]]] = {}
    labels: set[str] = set()
    for s in series:
        d = s.get("data")
        if s.get("name") != name or not isinstance(d, Mapping):
            continue
        label = _series_label(s)
        for r in d.get("rows") or []:
            key = (label, str(r.get("target")), int(r.get("layer", 0)), int(r.get("offset", 0)))
            slot = acc.setdefault(key, {"score": [], "ideal": [], "baseline": []})
            for field in slot:
                v = as_float(r.get(field))
                if math.isfinite(v):
                    slot[field].append(v)
        labels.add(label)
    if not acc:
        return None
    targets = sorted({k[1] for k in acc})
    layers = sorted({k[2] for k in acc})
    labels_sorted = sorted(labels)
    colours = dict(colours or {})
    fig = Figure(figsize=(3.0 * len(layers) + 1.5, 2.6 * len(targets) + 0.6))
    axes = np.atleast_2d(fig.subplots(len(targets), len(layers), squeeze=False, sharey=True))
    for i, target in enumerate(targets):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            for c, label in enumerate(labels_sorted):
                keys = sorted(k for k in acc if k[0] == label and k[1] == target and k[2] == layer)
                if not keys:
                    continue
                colour = colours.get(label.split(" [")[0]) if len(labels_sorted) == 1 else None
                colour = colour or _TAB10[c % len(_TAB10)]
                xs = [k[3] for k in keys]
                mean = lambda f: [float(np.mean(acc[k][f])) if acc[k][f] else float("nan") for k in keys]  # noqa: E731
                ax.plot(xs, mean("score"), "o-", color=colour, label=_plain(label) if i == 0 and j == 0 else None, ms=3)
                ax.plot(xs, mean("ideal"), "--", color=colour, lw=1.0, alpha=0.8)
                ax.plot(xs, mean("baseline"), ":", color=colour, lw=1.0, alpha=0.8)
            ax.set_title(f"{_plain(target)}, {'embedding' if layer == 0 else f'block {layer - 1}'}", fontsize=8)
            ax.grid(alpha=0.3)
            if i == len(targets) - 1:
                ax.set_xlabel("offset k (steps ahead)")
            if j == 0:
                ax.set_ylabel("probe accuracy")
    fig.legend(fontsize=7, frameon=False, loc="upper center", ncol=min(4, len(labels_sorted)))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)


def steering_against_law(rows: Iterable[Mapping], knob: str = "params.steer_k", metric: str = "swear_rate",
                         references: Sequence[tuple[str, str]] = (("ideal_mixture", "the mixture's law"), ("ideal_trait", "a pure-trait posterior")),
                         colours: Mapping[str, str] | None = None) -> bytes | None:  # fmt: skip
    """`metric` against the swept `knob`, one line per process (mean ± 95% interval over seeds),
    with a horizontal line per reference metric (its mean over units): what the exact law gives."""
    rows = metric_rows(rows)
    colours = colours or palette(r.get("process") for r in rows)
    fig = Figure(figsize=(5.4, 3.6))
    ax = fig.subplots()
    if not _knob_panel(ax, rows, knob, metric, colours):
        return None
    for (name, label), style in zip(references, ("--", ":", "-.")):
        vals = [as_float(r.get("value")) for r in rows if r.get("name") == name]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            ax.axhline(float(np.mean(vals)), ls=style, color="#555555", lw=1.0, label=_plain(f"{label} ({np.mean(vals):.3g})"))
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(_plain(f"{metric} vs {knob}, against the exact law"), fontsize=9)
    fig.tight_layout()
    return _png(fig)


def tradeoff(rows: Iterable[Mapping], x: str, y: str, colours: Mapping[str, str] | None = None, xlabel: str | None = None,
             ylabel: str | None = None, title: str | None = None) -> bytes | None:  # fmt: skip
    """One point per (process, sweep point): metric `y` against metric `x`, each the mean over
    seeds with its 95% interval (the seeds as faint points), labelled by the sweep point."""
    rows = metric_rows(rows)
    point = lambda r: (str(r.get("process")), json.dumps(r.get("sweep") or {}, sort_keys=True, default=str))  # noqa: E731
    xs = _seed_means([r for r in rows if r.get("name") == x], point)
    ys = _seed_means([r for r in rows if r.get("name") == y], point)
    keys = sorted(set(xs) & set(ys))
    if not keys:
        return None
    colours = dict(colours or palette(k[0] for k in keys))
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    labelled: set[str] = set()
    for process, sweep in keys:
        sx, sy = over_seeds(xs[process, sweep]), over_seeds(ys[process, sweep])
        colour = colours.get(process, "#333333")
        seeds = sorted(set(xs[process, sweep]) & set(ys[process, sweep]))
        ax.plot([np.mean(xs[process, sweep][s]) for s in seeds], [np.mean(ys[process, sweep][s]) for s in seeds], ".", color=colour, alpha=0.3)
        ax.errorbar([sx[0]], [sy[0]], xerr=[[sx[0] - sx[1]], [sx[2] - sx[0]]], yerr=[[sy[0] - sy[1]], [sy[2] - sy[0]]], fmt="o", color=colour,
                    capsize=2, ms=5, label=None if process in labelled else _plain(process))  # fmt: skip
        labelled.add(process)
        point_label = ", ".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in sorted(json.loads(sweep).items()))
        if point_label and _finite(sx[0], sy[0]):
            ax.annotate(_plain(point_label), (sx[0], sy[0]), textcoords="offset points", xytext=(4, 3), fontsize=6, color=colour)
    ax.set_xlabel(_plain(xlabel or x))
    ax.set_ylabel(_plain(ylabel or y))
    ax.set_title(_plain(title or f"{y} against {x}"), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _png(fig)


def trait_bars(series: Iterable[Mapping], name: str = "trait_probes") -> bytes | None:
    """Per trait: the probe's accuracy per (process, sweep point) (mean over seeds), beside the
    ideal's Bayes accuracy and the majority rate. Series `name` with `data = {"rows": [{"trait",
    "score", "ideal", "chance"}, ...]}`."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    for s in series:
        d = s.get("data")
        if s.get("name") != name or not isinstance(d, Mapping):
            continue
        label = _series_label(s)
        for r in d.get("rows") or []:
            slot = acc.setdefault((label, str(r.get("trait"))), {"score": [], "ideal": [], "chance": []})
            for f in slot:
                v = as_float(r.get(f))
                if math.isfinite(v):
                    slot[f].append(v)
    if not acc:
        return None
    labels = sorted({k[0] for k in acc})
    traits = sorted({k[1] for k in acc})
    fig = Figure(figsize=(min(12.0, 1.4 * len(traits) + 0.25 * len(traits) * len(labels) + 3.0), 3.4))
    ax = fig.subplots()
    width = 0.8 / (len(labels) + 2)
    mean = lambda k, f: float(np.mean(acc[k][f])) if k in acc and acc[k][f] else float("nan")  # noqa: E731
    x = np.arange(len(traits))
    for i, label in enumerate(labels):
        ax.bar(x + i * width, [mean((label, t), "score") for t in traits], width, color=_TAB10[i % len(_TAB10)], label=_plain(label))
    first = labels[0]
    ax.bar(x + len(labels) * width, [mean((first, t), "ideal") for t in traits], width, color="#333333", label="the ideal (Bayes, from the words so far)")
    ax.bar(x + (len(labels) + 1) * width, [mean((first, t), "chance") for t in traits], width, color="#bbbbbb", label="majority rate")
    ax.set_xticks(x + width * (len(labels) + 1) / 2, [_plain(t) for t in traits])
    ax.set_ylabel("probe accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


__all__ = [
    "VERDICT_COLOURS",
    "steering_against_law",
    "trait_bars",
    "conditioning_curves",
    "event_rates",
    "findings_forest",
    "finetune_curves",
    "knob_curves",
    "layer_profiles",
    "lookahead_curves",
    "misgeneralisation_curve",
    "onset_curves",
    "palette",
    "sweep_key",
]
