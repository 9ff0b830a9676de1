"""The study report: one self-contained `report.html` and a `report.md` beside its figures.

    html_path, md_path = write_report("runs/flagship", findings, rows, series, files, study_meta)

The report is computed once into plain parts (the findings table, figures as PNG bytes,
rollout GIFs, tables, the reproduction record) and then written twice:

* `report.html` embeds everything: figures and GIFs as base64 `data:` URIs, the CSS inline, no
  script, font or link that leaves the file, so it opens offline, mails as one file and renders
  the same in any browser (a test opens it in headless Chromium);
* `report.md` references the same figures as files under `figures/` beside it (PNG figures,
  copies of the rollout GIFs), by relative paths, so the directory can be moved or committed.

Every file is written to a temporary sibling and renamed into place (`os.replace`), so a reader
never sees half a report. All text from the study (claims, names, configs) is escaped: a claim
containing markup is shown as text, in both formats.

A figure whose inputs hold nothing to draw becomes a "no data" line saying what was missing;
the report never fails for want of a section.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulacra.report import figures as F
from simulacra.report.figures import as_float, attr

FINDING_FIELDS = ("id", "claim", "seed", "metric", "groups", "effect", "ci_low", "ci_high", "n_seeds", "verdict", "group_means")
MAX_ROLLOUTS_PER_PROCESS = 3
_MISGENERALISATION_KNOB = "coin_random_prob"
_LAYER_KNOB = "layer"  # the inside-the-network figure's knob (a block index)


@dataclass
class ReportFigure:
    """One figure of the report: `png` is None when there was nothing to draw (`missing` says why)."""

    stem: str  # file name under figures/, without extension
    title: str
    caption: str
    png: bytes | None
    missing: str = ""


@dataclass
class Section:
    title: str
    figures: list[ReportFigure] = field(default_factory=list)
    empty: str = ""  # shown when the section has no figure at all


@dataclass
class Rollout:
    process: str
    unit_id: str
    path: Path
    data: bytes | None  # None: the file is missing or unreadable


# ---------------------------------------------------------------------------------------------
# inputs


def _findings(findings: Iterable[Any]) -> list[dict]:
    """Findings as dicts of `FINDING_FIELDS`, plus `note`. Also read: `means` for `group_means`,
    `essay` (joined to `seed`), `expect` (joined to `groups`), `note` and `caveats`."""
    out = []
    for f in findings or ():
        d = {k: attr(f, k) for k in FINDING_FIELDS}
        gm = d["group_means"] if d["group_means"] is not None else attr(f, "means")
        d["group_means"] = dict(gm) if isinstance(gm, Mapping) else {}
        seed, essay = _text(d["seed"]), _text(attr(f, "essay"))
        if essay and essay not in seed:
            d["seed"] = f"{seed} ({essay})" if seed else essay
        if attr(f, "expect"):
            d["groups"] = f"{_text(d['groups'])} (expected: {_text(attr(f, 'expect'))})"
        d["note"] = " ".join(_text(attr(f, k)) for k in ("note", "caveats") if attr(f, k))
        out.append(d)
    return out


def _num(x: Any) -> str:
    v = as_float(x)
    return "n/a" if not math.isfinite(v) else f"{v:.3g}"


def _effect(f: Mapping) -> str:
    lo, hi = as_float(f["ci_low"]), as_float(f["ci_high"])
    ci = f"[{_num(lo)}, {_num(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "[n/a]"
    return f"{_num(f['effect'])} {ci}"


def _n(x: Any) -> str:
    v = as_float(x)
    return str(int(v)) if math.isfinite(v) else "n/a"


def _means(f: Mapping) -> str:
    return " · ".join(f"{k}: {_num(v)}" for k, v in f["group_means"].items())


def _text(x: Any) -> str:
    return "" if x is None else str(x)


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._")[:80] or "unit"


def _default_knob_metrics(rows: list[Mapping], findings: list[dict]) -> dict[str, list[str]]:
    """For every swept knob (but the misgeneralisation and layer knobs, which have figures of
    their own): the findings' metrics measured on units that sweep it, else the event rates
    measured there."""
    by_knob: dict[str, set[str]] = defaultdict(set)
    procs_by_knob: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for k in r.get("sweep") or {}:
            by_knob[str(k)].add(str(r.get("name")))
            procs_by_knob[str(k)].add(str(r.get("process")))
    finding_metrics = list(dict.fromkeys(_text(f["metric"]) for f in findings if f["metric"]))
    out = {}
    for knob in sorted(by_knob):
        if F.sweep_key({knob: None}, _MISGENERALISATION_KNOB) or F.sweep_key({knob: None}, _LAYER_KNOB):
            continue  # these have figures of their own
        names = by_knob[knob]
        # the metrics of the findings that test a trend in this knob, with the return for context;
        # else every finding metric measured there; else the event rates
        own = [_text(f["metric"]) for f in findings if f"vs {knob}" in _text(f["groups"])]
        # then the metrics of findings that compare processes sweeping this knob (e.g. the button
        # rate of fine-tuning at two values of beta), then the return for context
        swept = procs_by_knob[knob]
        related = [_text(f["metric"]) for f in findings if any(re.search(rf"\b{re.escape(p)}\b", _text(f["groups"])) for p in swept)]
        metrics = [m for m in dict.fromkeys(own + related + (["return"] if own or related else [])) if m in names]
        metrics = metrics or [m for m in finding_metrics if m in names] or sorted(n for n in names if n.startswith("rate_"))
        if metrics:
            out[knob] = metrics[:6]
    return out


def _sections(findings, rows, series, colours, knob_metrics) -> list[Section]:
    forest = Section(
        "Findings at a glance",
        [ReportFigure("findings", "Effects with 95% intervals", "Each hypothesis's effect and its 95% bootstrap "
                "interval over seeds, coloured by verdict; the dashed line is no effect.",
                F.findings_forest(findings), "no findings")],
    )
    cond = Section(
        "Return conditioning",
        [ReportFigure("return_conditioning", "Target vs achieved return", "Achieved return against the prompted "
                "target return, mean and 95% band over seeds, with the diagonal (achieved = target) and "
                "the corpus's best return.", F.conditioning_curves(series, colours=colours),
                'no series named "return_sweep"')],
    )
    events = Section(
        "Event rates by process",
        [ReportFigure("event_rates", "Event rates", "Per event, the rate per episode for each process: bars are "
                "means over seeds with 95% intervals, points are single seeds (a seed's units averaged).",
                F.event_rates(rows, colours=colours), 'no metric named "rate_*"')],
    )
    knobs = Section("Swept knobs", empty="no swept knob with a finding's metric or an event rate")
    for knob, metrics in (knob_metrics if knob_metrics is not None else _default_knob_metrics(rows, findings)).items():
        knobs.figures.append(
            ReportFigure(f"knob_{_safe_name(knob)}", f"{', '.join(metrics)} vs {knob}", f"Each metric against the swept "
                   f"knob {knob}, one line per process, mean and 95% band over seeds (other swept knobs "
                   "averaged within a seed).", F.knob_curves(rows, knob, metrics, colours=colours),
                   f"no measurement of {', '.join(metrics)} on units sweeping {knob}")
        )
    misgen = Section(
        "Goal misgeneralisation",
        [ReportFigure("misgeneralisation", "Coin moved at test", "With the coin moved at test time: the probability "
                "of going to the coin's training spot (dashed) and of getting the coin (solid), against the "
                f"probability {_MISGENERALISATION_KNOB} that the coin was placed at random in training.",
                F.misgeneralisation_curve(rows, colours=colours),
                f'no "p_old_spot" or "p_coin" measured on units sweeping {_MISGENERALISATION_KNOB}')],
    )
    inside = Section(
        "Inside the network",
        [ReportFigure("layers", "Block by block", "For each probed process: the linear probe's cross-validated "
                "score after each block (accuracy, or R² for return to go), the same probe on a randomly "
                "initialised model of the same architecture (dashed) and on a Hewitt & Liang control task "
                "(dotted; selectivity is score minus control). Then, between a simulator and its RL "
                "fine-tuned self: relative weight change, linear CKA and transplant gain per block. Mean "
                "and 95% band over seeds.", F.layer_profiles(rows, _LAYER_KNOB, colours=colours),
                f"no probe or layer-change metric measured on units sweeping {_LAYER_KNOB}")],
    )
    finetune = Section(
        "Fine-tuning",
        [ReportFigure("finetune", "RL fine-tuning of a simulator", "Per update: the return of the fine-tuned "
                "simulator (dotted: true return) and its KL to the pretrained simulator.",
                F.finetune_curves(series, colours=colours), 'no series named "finetune"')],
    )
    return [forest, cond, events, knobs, misgen, inside, finetune]


def _rollouts(files: Iterable[Mapping], limit: int, base: Path) -> dict[str, list[Rollout]]:
    by_process: dict[str, list[Rollout]] = defaultdict(list)
    for f in files or ():
        if not str(f.get("name", "")).startswith("rollout") or not f.get("path"):
            continue
        process = _text(f.get("process"))
        if len(by_process[process]) >= limit:
            continue
        path = Path(f["path"])
        if not path.is_absolute() and (base / path).exists():  # the store keeps paths relative to the run
            path = base / path
        try:
            data = path.read_bytes()
        except OSError:
            data = None
        by_process[process].append(Rollout(process, _text(f.get("unit_id")), path, data))
    return dict(sorted(by_process.items()))


def _measurements(rows: Iterable[Mapping]) -> list[dict]:
    """Per (process, world, sweep, metric): mean over seeds with a 95% interval."""
    groups: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = as_float(r.get("value"))
        if not math.isfinite(v):
            continue
        sweep = json.dumps(r.get("sweep") or {}, sort_keys=True, default=str)
        key = (_text(r.get("process")), _text(r.get("world")), sweep, _text(r.get("name")))
        groups[key][r.get("seed")].append(v)
    out = []
    for key in sorted(groups):
        m, lo, hi, vals = F.over_seeds(groups[key])
        sweep = json.loads(key[2])
        out.append({
            "process": key[0], "world": key[1], "metric": key[3], "mean": m, "ci_low": lo, "ci_high": hi,
            "seeds": len(vals), "sweep": ", ".join(f"{k}={v}" for k, v in sweep.items()) or "-",
        })  # fmt: skip
    return out


def _configs(meta: Mapping) -> list[tuple[str, str]]:
    configs = meta.get("configs") or {}
    items = configs.items() if isinstance(configs, Mapping) else enumerate(configs)
    out = []
    for uid, cfg in items:
        if isinstance(cfg, str):
            try:
                cfg = json.loads(cfg)
            except ValueError:
                out.append((str(uid), cfg))
                continue
        out.append((str(uid), json.dumps(cfg, indent=2, sort_keys=True, default=str)))
    return out


_META_KNOWN = ("name", "description", "profile", "command", "simulacra_version", "versions", "wall_clock_s", "configs")


def _wall_clock(meta: Mapping) -> str:
    s = as_float(meta.get("wall_clock_s"))
    if not math.isfinite(s):
        return "n/a"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min ({s:.0f} s)"


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.lede { color: #444; } .meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #d8d8d8; padding: 0.35em 0.55em; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.seed { color: #555; font-style: italic; } .notes { color: #555; font-size: 0.9em; } .means { color: #666; font-size: 0.88em; margin-top: 0.2em; }
.verdict { font-weight: 600; color: #fff; text-align: center; white-space: nowrap; }
.v-supported { background: #2e8b57; } .v-refuted { background: #c0392b; }
.v-inconclusive { background: #8c8c8c; } .v-other { background: #5a5a5a; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; max-width: 60em; }
.nodata { color: #8a6d3b; background: #fcf8e3; padding: 0.4em 0.7em; display: inline-block; }
.rollouts { display: flex; flex-wrap: wrap; gap: 1.2em; } .rollouts figure { margin: 0; }
.rollouts img { image-rendering: pixelated; width: auto; min-width: 160px; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
"""


def _e(x: Any) -> str:
    return html.escape(_text(x), quote=True)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _verdict_class(v: str) -> str:
    return f"v-{v}" if v in F.VERDICT_COLOURS else "v-other"


def _html(title, meta, findings, sections, rollouts, measurements, configs) -> str:
    h: list[str] = []
    w = h.append
    w("<!DOCTYPE html>")
    w('<html lang="en"><head><meta charset="utf-8">')
    w('<meta name="viewport" content="width=device-width, initial-scale=1">')
    w('<link rel="icon" href="data:,">')  # no favicon request
    w(f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>")
    w(f"<h1>{_e(title)}</h1>")
    if meta.get("description"):
        w(f'<p class="lede">{_e(meta["description"])}</p>')
    w(f'<p class="meta">profile {_e(meta.get("profile") or "n/a")} · wall-clock {_e(_wall_clock(meta))} · '
      f'simulacra {_e(meta.get("simulacra_version") or "n/a")}</p>')  # fmt: skip

    w("<h2>Findings</h2>")
    if findings:
        w("<table class=\"findings\"><thead><tr>")
        for col in ("hypothesis", "claim", "seed claim", "measure", "groups", "effect [95% CI]", "n seeds", "verdict"):
            w(f"<th>{col}</th>")
        w("</tr></thead><tbody>")
        for f in findings:
            verdict = _text(f["verdict"]) or "inconclusive"
            means = f'<div class="means">{_e(_means(f))}</div>' if f["group_means"] else ""
            w(f"<tr><td>{_e(f['id'])}</td><td>{_e(f['claim'])}</td><td class=\"seed\">{_e(f['seed'])}</td>"
              f"<td>{_e(f['metric'])}</td><td>{_e(f['groups'])}{means}</td><td class=\"num\">{_e(_effect(f))}</td>"
              f"<td class=\"num\">{_e(_n(f['n_seeds']))}</td>"
              f"<td class=\"verdict {_verdict_class(verdict)}\">{_e(verdict)}</td></tr>")  # fmt: skip
        w("</tbody></table>")
        notes = [f for f in findings if f["note"]]
        if notes:
            w('<ul class="notes">' + "".join(f"<li><b>{_e(f['id'])}</b>: {_e(f['note'])}</li>" for f in notes) + "</ul>")
    else:
        w('<p class="nodata">No findings.</p>')

    for s in sections:
        w(f"<h2>{_e(s.title)}</h2>")
        if not s.figures:
            w(f'<p class="nodata">No data: {_e(s.empty)}.</p>')
        for fig in s.figures:
            if fig.png is None:
                w(f'<p class="nodata">No data for “{_e(fig.title)}”: {_e(fig.missing)}.</p>')
                continue
            w(f'<figure><img src="{_data_uri(fig.png, "image/png")}" alt="{_e(fig.title)}">'
              f"<figcaption>{_e(fig.caption)}</figcaption></figure>")  # fmt: skip

    w("<h2>Rollouts</h2>")
    if not rollouts:
        w('<p class="nodata">No data: no file named "rollout*".</p>')
    for process, rs in rollouts.items():
        w(f"<h3>{_e(process)}</h3><div class=\"rollouts\">")
        for r in rs:
            if r.data is None:
                w(f'<p class="nodata">{_e(r.unit_id)}: missing file {_e(r.path)}</p>')
                continue
            w(f'<figure><img src="{_data_uri(r.data, "image/gif")}" alt="{_e(process)} rollout ({_e(r.unit_id)})">'
              f"<figcaption>{_e(r.unit_id)}</figcaption></figure>")  # fmt: skip
        w("</div>")

    w("<h2>Measurements</h2>")
    if measurements:
        w(f"<details><summary>{len(measurements)} rows: mean over seeds with a 95% interval, per process, "
          "world, swept knobs and metric</summary><table><thead><tr>")  # fmt: skip
        for col in ("process", "world", "sweep", "metric", "mean", "95% CI", "seeds"):
            w(f"<th>{col}</th>")
        w("</tr></thead><tbody>")
        for m in measurements:
            w(f"<tr><td>{_e(m['process'])}</td><td>{_e(m['world'])}</td><td>{_e(m['sweep'])}</td><td>{_e(m['metric'])}</td>"
              f"<td class=\"num\">{_num(m['mean'])}</td><td class=\"num\">[{_num(m['ci_low'])}, {_num(m['ci_high'])}]</td>"
              f"<td class=\"num\">{m['seeds']}</td></tr>")  # fmt: skip
        w("</tbody></table></details>")
    else:
        w('<p class="nodata">No data: the results store is empty.</p>')

    w("<h2>Reproduce</h2>")
    w(f"<p>Command:</p><pre>{_e(meta.get('command') or 'n/a')}</pre>")
    versions = dict(meta.get("versions") or {})
    if meta.get("simulacra_version"):
        versions = {"simulacra": meta["simulacra_version"], **versions}
    if versions:
        w("<table><thead><tr><th>package</th><th>version</th></tr></thead><tbody>")
        for k, v in versions.items():
            w(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
        w("</tbody></table>")
    extra = {k: v for k, v in meta.items() if k not in _META_KNOWN}
    if extra:
        w("<table><tbody>")
        for k, v in extra.items():
            w(f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>")
        w("</tbody></table>")
    w(f"<p>Configuration of every unit ({len(configs)}):</p>")
    for uid, cfg in configs:
        w(f"<details><summary>{_e(uid)}</summary><pre>{_e(cfg)}</pre></details>")
    w("</body></html>")
    return "\n".join(h) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown


def _m(x: Any) -> str:
    """Text made inert in Markdown: no raw HTML."""
    return html.escape(_text(x), quote=False)


def _cell(x: Any) -> str:
    return _m(x).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, 1 + max((len(t) for t in re.findall(r"`+", text)), default=0))
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _markdown(title, meta, findings, sections, rollouts, rollout_names, measurements, configs) -> str:
    h: list[str] = []
    w = h.append
    w(f"# {_m(title)}\n")
    if meta.get("description"):
        w(f"{_m(meta['description'])}\n")
    w(f"profile {_m(meta.get('profile') or 'n/a')} · wall-clock {_m(_wall_clock(meta))} · "
      f"simulacra {_m(meta.get('simulacra_version') or 'n/a')}\n")  # fmt: skip

    w("## Findings\n")
    if findings:
        w("| hypothesis | claim | seed claim | measure | groups | effect [95% CI] | n seeds | verdict |")
        w("|---|---|---|---|---|---|---:|---|")
        for f in findings:
            groups = _cell(f["groups"]) + (f" ({_cell(_means(f))})" if f["group_means"] else "")
            verdict = _text(f["verdict"]) or "inconclusive"
            seed = f"*{_cell(f['seed'])}*" if _text(f["seed"]).strip() else ""
            w(f"| {_cell(f['id'])} | {_cell(f['claim'])} | {seed} | {_cell(f['metric'])} | {groups} | "
              f"{_cell(_effect(f))} | {_cell(_n(f['n_seeds']))} | **{_cell(verdict)}** |")  # fmt: skip
        w("")
        for f in findings:
            if f["note"]:
                w(f"- **{_m(f['id'])}**: {_m(f['note'])}")
        if any(f["note"] for f in findings):
            w("")
    else:
        w("_No findings._\n")

    for s in sections:
        w(f"## {_m(s.title)}\n")
        if not s.figures:
            w(f"_No data: {_m(s.empty)}._\n")
        for fig in s.figures:
            if fig.png is None:
                w(f"_No data for “{_m(fig.title)}”: {_m(fig.missing)}._\n")
                continue
            w(f"![{_cell(fig.title)}](figures/{fig.stem}.png)\n")
            w(f"{_m(fig.caption)}\n")

    w("## Rollouts\n")
    if not rollouts:
        w('_No data: no file named "rollout\\*"._\n')
    for process, rs in rollouts.items():
        w(f"### {_m(process)}\n")
        for r in rs:
            name = rollout_names.get(id(r))
            if name is None:
                w(f"- {_m(r.unit_id)}: missing file `{_text(r.path).replace('`', '')}`")
            else:
                w(f"- [{_cell(r.unit_id)}](figures/{name}): ![{_cell(process)} rollout](figures/{name})")
        w("")

    w("## Measurements\n")
    if measurements:
        w("Mean over seeds with a 95% interval, per process, world, swept knobs and metric.\n")
        w("| process | world | sweep | metric | mean | 95% CI | seeds |")
        w("|---|---|---|---|---:|---:|---:|")
        for m in measurements:
            w(f"| {_cell(m['process'])} | {_cell(m['world'])} | {_cell(m['sweep'])} | {_cell(m['metric'])} | "
              f"{_num(m['mean'])} | [{_num(m['ci_low'])}, {_num(m['ci_high'])}] | {m['seeds']} |")  # fmt: skip
        w("")
    else:
        w("_No data: the results store is empty._\n")

    w("## Reproduce\n")
    w(_fence(_text(meta.get("command") or "n/a"), "bash") + "\n")
    versions = dict(meta.get("versions") or {})
    if meta.get("simulacra_version"):
        versions = {"simulacra": meta["simulacra_version"], **versions}
    if versions:
        w("| package | version |\n|---|---|")
        for k, v in versions.items():
            w(f"| {_cell(k)} | {_cell(v)} |")
        w("")
    extra = {k: v for k, v in meta.items() if k not in _META_KNOWN}
    for k, v in extra.items():
        w(f"- {_m(k)}: {_m(v if isinstance(v, str) else json.dumps(v, default=str))}")
    if extra:
        w("")
    w(f"Configuration of every unit ({len(configs)}):\n")
    for uid, cfg in configs:
        w(f"**{_m(uid)}**\n")
        w(_fence(cfg, "json") + "\n")
    return "\n".join(h)


# ---------------------------------------------------------------------------------------------
# writing


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(
    out_dir: str | Path,
    findings: Iterable[Any] = (),
    rows: Iterable[Mapping] = (),
    series: Iterable[Mapping] = (),
    files: Iterable[Mapping] = (),
    study_meta: Mapping | None = None,
    *,
    knob_metrics: Mapping[str, Sequence[str]] | None = None,
    max_rollouts_per_process: int = MAX_ROLLOUTS_PER_PROCESS,
    base_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write `report.html` (self-contained) and `report.md` (+ `figures/`) into `out_dir`; return
    their paths. `knob_metrics` ({knob: [metric, ...]}) chooses the "vs feedback gap" figures;
    by default every swept knob gets the findings' metrics measured on units sweeping it (else
    its event rates). Relative file paths are read from `base_dir` (default `out_dir`, the
    study's run directory) when they exist there. See `simulacra.report` for the input shapes."""
    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(study_meta or {})
    findings = _findings(findings)
    rows, series, files = F.metric_rows(rows), list(series or ()), list(files or ())
    colours = F.palette([r.get("process") for r in rows] + [s.get("process") for s in series])
    if knob_metrics is not None:
        knob_metrics = {str(k): list(v) for k, v in knob_metrics.items()}
    sections = _sections(findings, rows, series, colours, knob_metrics)
    rollouts = _rollouts(files, max_rollouts_per_process, Path(base_dir) if base_dir is not None else out)
    measurements = _measurements(rows)
    configs = _configs(meta)
    title = f"Study: {meta['name']}" if meta.get("name") else "Study report"

    written: set[str] = set()
    for s in sections:
        for fig in s.figures:
            if fig.png is not None:
                _write_atomic(fig_dir / f"{fig.stem}.png", fig.png)
                written.add(f"{fig.stem}.png")
    rollout_names: dict[int, str] = {}
    for rs in rollouts.values():
        for r in rs:
            if r.data is None:
                continue
            name = f"rollout-{_safe_name(r.process)}-{_safe_name(r.unit_id)}.gif"
            while name in written:  # two units whose ids differ only in unsafe characters
                name = name[:-4] + "_.gif"
            _write_atomic(fig_dir / name, r.data)
            written.add(name)
            rollout_names[id(r)] = name
    for stale in fig_dir.iterdir():  # figures of an earlier report that this one no longer has
        if stale.is_file() and stale.suffix in (".png", ".gif") and stale.name not in written:
            stale.unlink()

    html_path, md_path = out / "report.html", out / "report.md"
    _write_atomic(html_path, _html(title, meta, findings, sections, rollouts, measurements, configs).encode("utf-8"))
    _write_atomic(
        md_path, _markdown(title, meta, findings, sections, rollouts, rollout_names, measurements, configs).encode("utf-8")
    )
    return html_path, md_path


__all__ = ["write_report"]
