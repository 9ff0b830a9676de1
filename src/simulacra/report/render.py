"""The study report: one self-contained `report.html` and a `report.md` beside its figures.

    html_path, md_path = write_report("runs/flagship", findings, rows, series, files, study_meta, sections=[...])

The report is built once as a `Document` (`report_document`: the findings table, the sections'
figures, rollout GIFs, the measurements, the reproduction record) and rendered twice
(`simulacra.report.document`): `report.html` embeds everything; `report.md` references the
figures as files under `figures/` beside it (PNG figures, copies of the rollout GIFs), by
relative paths, so the directory can be moved or committed.

In order: the title, the study's description and a line of meta data; "Findings"; "Findings at
a glance"; every provided section (`sections`, in the order given); "Swept knobs"; "Rollouts";
"Measurements"; "Reproduce". What a section shows is the provider's business
(`simulacra.report.sections`): this module names no study, process kind, metric or knob.

Every file is written to a temporary sibling and renamed into place (`os.replace`), so a reader
never sees half a report; figures of an earlier report that this one no longer has are removed.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulacra.report import figures as F
from simulacra.report.document import (
    Block,
    Bullets,
    Cell,
    Code,
    Details,
    Document,
    Gallery,
    GalleryItem,
    Heading,
    Table,
    Text,
    assets,
    safe_name,
    to_html,
    to_markdown,
)
from simulacra.report.figures import as_float, attr
from simulacra.report.sections import ReportInputs, Section, SectionProvider, default_knob_metrics, findings_at_a_glance, swept_knobs

FINDING_FIELDS = (
    "id", "claim", "seed", "metric", "groups", "effect", "ci_low", "ci_high", "n_seeds", "verdict", "group_means", "knob",
    "verdict_holm", "seeds_needed", "method", "paired",
)  # fmt: skip
FINDINGS_COLUMNS = ("hypothesis", "claim", "seed claim", "measure", "groups", "effect [95% CI]", "n seeds", "verdict")
HOLM_COLUMN = "verdict (Holm)"
MEASUREMENT_COLUMNS = ("process", "world", "sweep", "metric", "mean", "95% CI", "seeds")
MAX_ROLLOUTS_PER_PROCESS = 3
_META_KNOWN = ("name", "description", "profile", "command", "simulacra_version", "versions", "wall_clock_s", "configs")


# ---------------------------------------------------------------------------------------------
# inputs


def _text(x: Any) -> str:
    return "" if x is None else str(x)


def _findings(findings: Iterable[Any]) -> list[dict]:
    """Findings as dicts of `FINDING_FIELDS` (the last four optional: None when absent), plus
    `note` and `processes`. Also read: `means` for `group_means`, `essay` (joined to `seed`),
    `expect` (joined to `groups`), `note` and `caveats`."""
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
        d["knob"] = _text(d["knob"]) or None
        d["processes"] = tuple(str(p) for p in attr(f, "processes") or ())
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


def _wall_clock(meta: Mapping) -> str:
    s = as_float(meta.get("wall_clock_s"))
    if not math.isfinite(s):
        return "n/a"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min ({s:.0f} s)"


# ---------------------------------------------------------------------------------------------
# the document's parts


def _verdict_cell(verdict: Any) -> Cell:
    """The verdict, coloured by its CSS class (`v-supported`, `v-not-run` …)."""
    verdict = _text(verdict) or "inconclusive"
    css = verdict.replace(" ", "-") if verdict in F.VERDICT_COLOURS else "other"
    return Cell(verdict, f"verdict v-{css}", "bold")


def _finding_row(f: Mapping, holm: bool) -> tuple[str | Cell, ...]:
    means = " · ".join(f"{k}: {_num(v)}" for k, v in f["group_means"].items())
    seed = Cell(_text(f["seed"]), css="seed", stress="italic")
    groups = Cell(_text(f["groups"]), detail=means)
    row = (_text(f["id"]), _text(f["claim"]), seed, _text(f["metric"]), groups, _effect(f), _n(f["n_seeds"]), _verdict_cell(f["verdict"]))
    return (*row, _verdict_cell(f["verdict_holm"])) if holm else row


def _method_line(findings: list[dict], holm: bool) -> str:
    """How the intervals and the Holm verdicts were obtained, from the findings' `method`s."""
    ran = [f for f in findings if f["verdict"] != "not run"]
    methods: dict[str, list[str]] = {}
    for f in ran:
        if f["method"]:
            methods.setdefault(_text(f["method"]), []).append(_text(f["id"]))
    parts = []
    if methods:
        parts.append("95% intervals over seeds: " + "; ".join(f"{m} ({', '.join(ids)})" for m, ids in methods.items()) + ".")
    if holm:
        run = f"{len(ran)} run {'hypothesis' if len(ran) == 1 else 'hypotheses'}"
        parts.append(f"Holm-adjusted verdicts across the study's {run} (family-wise 5%).")
    return " ".join(parts)


def _seeds_line(f: Mapping) -> str:
    per = " per group" if f["paired"] is False else ""
    return f"about {_n(f['seeds_needed'])} seeds{per} would resolve an effect of this size"


def _findings_blocks(findings: list[dict]) -> list[Block]:
    if not findings:
        return [Text("No findings.", "nodata")]
    holm = any(f["verdict_holm"] for f in findings)
    columns = (*FINDINGS_COLUMNS, HOLM_COLUMN) if holm else FINDINGS_COLUMNS
    blocks: list[Block] = [Table(columns, tuple(_finding_row(f, holm) for f in findings), numeric=("effect [95% CI]", "n seeds"))]
    method = _method_line(findings, holm)
    if method:
        blocks.append(Text(method, "meta"))
    seeds = tuple((_text(f["id"]), _seeds_line(f)) for f in findings if math.isfinite(as_float(f["seeds_needed"])))
    if seeds:
        blocks.append(Bullets(seeds, "notes"))
    notes = tuple((_text(f["id"]), f["note"]) for f in findings if f["note"])
    if notes:
        blocks.append(Bullets(notes, "notes"))
    return blocks


def _section_blocks(section: Section) -> list[Block]:
    if not section.figures and not section.tables:
        return [Heading(section.title), Text(f"No data: {section.empty}.", "nodata")]
    return [Heading(section.title), *section.figures, *section.tables]


def _rollout_blocks(files: Iterable[Mapping], limit: int, base: Path) -> list[Block]:
    """Per process (by name), up to `limit` of its files named "rollout*", as GIFs."""
    by_process: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for f in files:
        if not str(f.get("name", "")).startswith("rollout") or not f.get("path"):
            continue
        process = _text(f.get("process"))
        if len(by_process[process]) >= limit:
            continue
        path = Path(f["path"])
        if not path.is_absolute() and (base / path).exists():  # the store keeps paths relative to the run
            path = base / path
        by_process[process].append((_text(f.get("unit_id")), path))
    if not by_process:
        return [Text('No data: no file named "rollout*".', "nodata")]
    blocks: list[Block] = []
    names: set[str] = set()
    for process, entries in sorted(by_process.items()):
        items = []
        for unit_id, path in entries:
            try:
                gif = path.read_bytes()
            except OSError:
                gif = None
            name = f"rollout-{safe_name(process)}-{safe_name(unit_id)}.gif"
            while name in names:  # two units whose ids differ only in unsafe characters
                name = name[:-4] + "_.gif"
            names.add(name)
            items.append(GalleryItem(unit_id, f"{process} rollout ({unit_id})", name, gif, f"missing file {path}"))
        blocks += [Heading(process, 3), Gallery(tuple(items))]
    return blocks


def _measurement_blocks(rows: Iterable[Mapping]) -> list[Block]:
    """Per (process, world, sweep, metric): mean over seeds with a 95% interval."""
    groups: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = as_float(r.get("value"))
        if not math.isfinite(v):
            continue
        sweep = json.dumps(r.get("sweep") or {}, sort_keys=True, default=str)
        groups[(_text(r.get("process")), _text(r.get("world")), sweep, _text(r.get("name")))][r.get("seed")].append(v)
    if not groups:
        return [Text("No data: the results store is empty.", "nodata")]
    table = []
    for process, world, sweep, metric in sorted(groups):
        m, lo, hi, vals = F.over_seeds(groups[(process, world, sweep, metric)])
        knobs = ", ".join(f"{k}={v}" for k, v in json.loads(sweep).items()) or "-"
        table.append((process, world, knobs, metric, _num(m), f"[{_num(lo)}, {_num(hi)}]", str(len(vals))))
    summary = f"{len(table)} rows: mean over seeds with a 95% interval, per process, world, swept knobs and metric"
    return [Details(summary, (Table(MEASUREMENT_COLUMNS, tuple(table), numeric=("mean", "95% CI", "seeds")),))]


def _configs(meta: Mapping) -> list[tuple[str, str]]:
    """(unit id, canonical JSON) per unit; text that is not JSON is kept as it is."""
    configs = meta.get("configs") or {}
    out = []
    for uid, cfg in configs.items() if isinstance(configs, Mapping) else enumerate(configs):
        if isinstance(cfg, str):
            try:
                cfg = json.loads(cfg)
            except ValueError:
                out.append((str(uid), cfg))
                continue
        out.append((str(uid), json.dumps(cfg, indent=2, sort_keys=True, default=str)))
    return out


def _reproduce_blocks(meta: Mapping) -> list[Block]:
    blocks: list[Block] = [Text("Command:"), Code(_text(meta.get("command") or "n/a"), "bash")]
    versions = dict(meta.get("versions") or {})
    if meta.get("simulacra_version"):
        versions = {"simulacra": meta["simulacra_version"], **versions}
    if versions:
        blocks.append(Table(("package", "version"), tuple((str(k), _text(v)) for k, v in versions.items())))
    extra = tuple((str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in meta.items() if k not in _META_KNOWN)
    if extra:
        blocks.append(Bullets(extra))
    configs = _configs(meta)
    blocks.append(Text(f"Configuration of every unit ({len(configs)}):"))
    blocks += [Details(uid, (Code(cfg, "json"),)) for uid, cfg in configs]
    return blocks


def report_document(
    findings: Iterable[Any] = (),
    rows: Iterable[Mapping] = (),
    series: Iterable[Mapping] = (),
    files: Iterable[Mapping] = (),
    study_meta: Mapping | None = None,
    *,
    sections: Sequence[SectionProvider] = (),
    knob_metrics: Mapping[str, Sequence[str]] | None = None,
    max_rollouts_per_process: int = MAX_ROLLOUTS_PER_PROCESS,
    base_dir: str | Path = ".",
) -> Document:
    """The whole report as one `Document` (see `write_report` for the arguments)."""
    meta = dict(study_meta or {})
    rows, series = F.metric_rows(rows), list(series or ())
    colours = F.palette([r.get("process") for r in rows] + [s.get("process") for s in series])
    inputs = ReportInputs(_findings(findings), rows, series, list(files or ()), colours)
    provided = [s for s in (provider(inputs) for provider in sections) if s is not None]
    if knob_metrics is None:
        knob_metrics = default_knob_metrics(rows, inputs.findings, claimed=[k for s in provided for k in s.knobs])
    else:
        knob_metrics = {str(k): list(v) for k, v in knob_metrics.items()}
    blocks: list[Block] = []
    if meta.get("description"):
        blocks.append(Text(_text(meta["description"]), "lede"))
    profile, version = meta.get("profile") or "n/a", meta.get("simulacra_version") or "n/a"
    blocks += [
        Text(f"profile {profile} · wall-clock {_wall_clock(meta)} · simulacra {version}", "meta"),
        Heading("Findings"),
        *_findings_blocks(inputs.findings),
    ]
    for section in (findings_at_a_glance(inputs), *provided, swept_knobs(inputs, knob_metrics)):
        blocks += _section_blocks(section)
    blocks += [Heading("Rollouts"), *_rollout_blocks(inputs.files, max_rollouts_per_process, Path(base_dir))]
    blocks += [Heading("Measurements"), *_measurement_blocks(rows)]
    blocks += [Heading("Reproduce"), *_reproduce_blocks(meta)]
    return Document(f"Study: {meta['name']}" if meta.get("name") else "Study report", tuple(blocks))


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
    sections: Sequence[SectionProvider] = (),
    knob_metrics: Mapping[str, Sequence[str]] | None = None,
    max_rollouts_per_process: int = MAX_ROLLOUTS_PER_PROCESS,
    base_dir: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write `report.html` (self-contained) and `report.md` (+ `figures/`) into `out_dir`; return
    their paths.

    `sections`: section providers, `(ReportInputs) -> Section | None`, drawn in this order after
    the findings (e.g. the sections of the study's process kinds, `simulacra.kinds.sections`).
    `knob_metrics` ({knob: [metric, ...]}) chooses the "Swept knobs" figures by hand; by default
    every knob that no section claims gets the metrics its findings tie to it
    (`simulacra.report.sections.default_knob_metrics`). Relative file paths are read from
    `base_dir` (default `out_dir`, the study's run directory) when they exist there. See
    `simulacra.report` for the input shapes."""
    out = Path(out_dir)
    doc = report_document(
        findings,
        rows,
        series,
        files,
        study_meta,
        sections=sections,
        knob_metrics=knob_metrics,
        max_rollouts_per_process=max_rollouts_per_process,
        base_dir=base_dir if base_dir is not None else out,
    )
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = assets(doc)
    for name, data in figures.items():
        _write_atomic(fig_dir / name, data)
    for stale in fig_dir.iterdir():  # figures of an earlier report that this one no longer has
        if stale.is_file() and stale.suffix in (".png", ".gif") and stale.name not in figures:
            stale.unlink()
    html_path, md_path = out / "report.html", out / "report.md"
    _write_atomic(html_path, to_html(doc).encode("utf-8"))
    _write_atomic(md_path, to_markdown(doc, fig_dir.name).encode("utf-8"))
    return html_path, md_path


__all__ = ["report_document", "write_report"]
