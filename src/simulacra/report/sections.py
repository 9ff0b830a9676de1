"""Report sections: what every section sees (`ReportInputs`), what it returns (`Section`), and the
two sections the report draws for any study.

A section provider is any callable `(ReportInputs) -> Section | None` (None: it has nothing to
say, and the section is left out). The report knows no study: the sections that belong to a kind
of process (event rates, return conditioning, fine-tuning curves …) live with the kinds
(`simulacra.kinds.sections`) and reach the report through `write_report(..., sections=...)`.
The report itself draws only:

* "Findings at a glance" — the forest plot of the findings;
* "Swept knobs" — for every knob the rows sweep and no provided section claims (`Section.knobs`),
  the metrics the findings tie to that knob against its values (`default_knob_metrics`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from simulacra.report import figures as F
from simulacra.report.document import Figure, Table, safe_name

EVENT_RATE_PREFIX = "rate_"
"""Event metrics are named `rate_<event>` (a convention of every kind that counts events)."""
CONTEXT_METRIC = "return"
"""Drawn beside a knob's finding metrics, for context."""
MAX_KNOB_METRICS = 6


@dataclass(frozen=True)
class ReportInputs:
    """What every section sees: the study's results as plain data (see `simulacra.report`).

    `findings` are normalised dicts with the keys `id`, `claim`, `seed`, `metric`, `groups`,
    `effect`, `ci_low`, `ci_high`, `n_seeds`, `verdict`, `group_means`, `note`, `knob` (a trend's
    swept knob, else None), `processes` (the processes its groups name), and `verdict_holm`,
    `seeds_needed`, `method`, `paired` (None when the finding has none); `rows` name their
    metric under `name`; `colours` is one colour per process, shared by every figure."""

    findings: list[dict]
    rows: list[Mapping]
    series: list[Mapping]
    files: list[Mapping]
    colours: Mapping[str, str]


@dataclass(frozen=True)
class Section:
    """A titled section of figures, then `tables` (e.g. samples of what the models wrote);
    `empty` is shown when it has neither. `knobs` are the sweep knobs it draws itself, which the
    generic "Swept knobs" figures then skip (a knob matches a sweep key equal to it or ending in
    `.knob`)."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    empty: str = ""
    knobs: tuple[str, ...] = ()
    tables: list[Table] = field(default_factory=list)


SectionProvider = Callable[[ReportInputs], Section | None]


def findings_at_a_glance(inputs: ReportInputs) -> Section:
    caption = "Each hypothesis's effect and its 95% interval over seeds, coloured by verdict; the dashed line is no effect."
    figure = Figure("findings", "Effects with 95% intervals", caption, F.findings_forest(inputs.findings), "no findings")
    return Section("Findings at a glance", [figure])


def default_knob_metrics(rows: Sequence[Mapping], findings: Sequence[Mapping], claimed: Sequence[str] = ()) -> dict[str, list[str]]:
    """For every knob the rows sweep (but those `claimed` by a section), the metrics to draw
    against it, measured on units that sweep it: the metrics of the findings whose `knob` is it
    (a trend in it), then those of findings whose `processes` include a process sweeping it, then
    the return for context; else every finding's metric measured there; else its event rates.
    A finding without `knob` and `processes` counts only in the second fallback."""
    names: dict[str, set[str]] = defaultdict(set)
    processes: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for k in r.get("sweep") or {}:
            names[str(k)].add(str(r.get("name")))
            processes[str(k)].add(str(r.get("process")))
    finding_metrics = list(dict.fromkeys(str(f["metric"]) for f in findings if f["metric"]))
    out = {}
    for knob in sorted(names):
        if any(F.sweep_key({knob: None}, c) for c in claimed):
            continue
        trends = [str(f["metric"]) for f in findings if f.get("knob") and F.sweep_key({knob: None}, f["knob"])]
        related = [str(f["metric"]) for f in findings if processes[knob] & set(f.get("processes") or ())]
        context = [CONTEXT_METRIC] if trends or related else []
        metrics = [m for m in dict.fromkeys(trends + related + context) if m in names[knob]]
        metrics = (
            metrics or [m for m in finding_metrics if m in names[knob]] or sorted(n for n in names[knob] if n.startswith(EVENT_RATE_PREFIX))
        )
        if metrics:
            out[knob] = metrics[:MAX_KNOB_METRICS]
    return out


def swept_knobs(inputs: ReportInputs, metrics_by_knob: Mapping[str, Sequence[str]]) -> Section:
    """One figure per knob: its metrics against its values, one line per process."""
    figures = []
    for knob, metrics in metrics_by_knob.items():
        names = ", ".join(metrics)
        caption = (
            f"Each metric against the swept knob {knob}, one line per process, mean and 95% band over seeds "
            "(other swept knobs averaged within a seed)."
        )
        png = F.knob_curves(inputs.rows, knob, metrics, colours=inputs.colours)
        figures.append(
            Figure(f"knob_{safe_name(knob)}", f"{names} vs {knob}", caption, png, f"no measurement of {names} on units sweeping {knob}")
        )
    return Section("Swept knobs", figures, empty="no swept knob with a finding's metric or an event rate")


__all__ = ["ReportInputs", "Section", "SectionProvider", "default_knob_metrics", "findings_at_a_glance", "swept_knobs"]
