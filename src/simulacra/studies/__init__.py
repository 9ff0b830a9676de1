"""Studies: a YAML grid of worlds × corpora × processes × knobs × seeds, run into a results store
and summarised as findings (docs/studies.md).

    study = load_study("studies/flagship.yaml", profile="quick")   # validated, one-line errors
    summary = run(study)                                            # runs/<name>/results.sqlite
    with Store(store_path(study)) as store:
        for f in findings(study, store):
            print(f.id, f.effect, f.ci_low, f.ci_high, f.verdict, f.verdict_holm)

Process kinds and lenses are registered with `register_process` / `register_lens` by the modules
that implement them (`simulacra.kinds` for the shipped kinds), which must be imported before a
study is loaded (`cmd_*` take `plugins`: module names to import). A kind's run receives a
`Context` and returns one `Result` per seed. `cmd_run`, `cmd_status` and `cmd_list` are what
`simulacra study …` calls.

The package's modules, in the order they build on each other:

* `errors.py`     `StudyError` and the one-line messages of validation errors;
* `artifacts.py`  canonical JSON, content hashes, the cache of shared inputs (`Artifacts`);
* `registry.py`   process kinds and lenses (`register_process`, `register_lens`), `Context`, `Result`, `CorpusRef`;
* `schema.py`     the pydantic models of the study file (`Study`, `Hypothesis` …);
* `resolve.py`    `load_study`: read, validate, resolve a profile;
* `store.py`      the SQLite results store;
* `runner.py`     units and their ids, executors, `run`;
* `pool.py`       the `processes` executor (worker processes on this machine: the CLI's default);
* `workers.py`    what a worker process does (shared by `processes` and `ray`);
* `ray_executor.py` the `ray` executor (the only module that imports Ray, when it is chosen);
* `stats.py`      findings and verdicts.
"""

from __future__ import annotations

import re

import importlib
from pathlib import Path
from typing import Sequence

from rich import box
from rich.console import Console, ConsoleOptions
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from simulacra.studies.artifacts import Artifacts
from simulacra.studies.errors import StudyError
from simulacra.studies.registry import (
    LENSES,
    PROCESSES,
    Context,
    CorpusRef,
    Lens,
    ProcessKind,
    Result,
    register_lens,
    register_process,
)
from simulacra.studies.resolve import load_study, study_from_dict
from simulacra.studies.runner import EXECUTORS, UNIT_SCHEMA, ExecutorOptions, RunSummary, Unit, expand, run, store_path, study_dir
from simulacra.studies.schema import Hypothesis, Study
from simulacra.studies.stats import Finding, findings, verdict
from simulacra.studies.store import Store


def load_plugins(modules: Sequence[str]) -> None:
    """Import the modules that register process kinds and lenses."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise StudyError(f"cannot import plugin module {name!r}: {e}") from None


_VERDICT_STYLE = {"supported": "green", "refuted": "red", "inconclusive": "yellow", "not run": "grey50"}


def _num(x: float) -> str:
    return "–" if x != x else f"{x:.3g}"


class FindingsTable:
    """The findings as a rich table for the terminal, laid out for the console's width: one line
    per finding (id, measure, groups, effect, 95% CI, n, verdict, Holm-adjusted verdict) where that
    fits, else the effect over its CI and the verdict over its Holm verdict, with the measure and
    groups wrapping at spaces in the last column, so no name is cut mid-word at 80 columns. Each
    finding's note (why it has no interval, or what was unusual about it) follows as a line."""

    def __init__(self, items: Sequence[Finding], title: str = "findings"):
        self.items, self.title = list(items), title

    def _table(self) -> Table:
        return Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)

    def flat(self) -> Table:
        """One line per finding."""
        table = self._table()
        for col in ("id", "measure", "groups", "effect", "95% CI", "n", "verdict", "Holm"):
            table.add_column(col, no_wrap=True, justify="right" if col in ("effect", "n") else "left")
        for f in self.items:
            cells = (f.id, f"{f.metric} ({f.aggregate})", f"{f.groups} ({f.expect})", _num(f.effect), self._ci(f), str(f.n_seeds))
            table.add_row(*(Text(c) for c in cells), *self._verdicts(f))  # Text: a `[k=v]` in a name is not markup
        return table

    def stacked(self) -> Table:
        """Effect over CI, verdict over Holm verdict, and the measure and groups wrapping last."""
        table = self._table()
        table.add_column("id", no_wrap=True)
        table.add_column("effect\n95% CI", no_wrap=True)
        table.add_column("n", no_wrap=True, justify="right")
        table.add_column("verdict\nHolm", no_wrap=True)
        table.add_column("measure: groups (expected)", ratio=1, overflow="fold")
        for f in self.items:
            verdict, holm = self._verdicts(f)
            cells = (Text(f.id), Text(f"{_num(f.effect)}\n{self._ci(f)}"), Text(str(f.n_seeds)), Text("\n").join([verdict, holm]))
            # a space before each "[" and after each comma: a long group ("process[corpus.mixture=a:1,b:3]")
            # may break there, not mid-word
            groups = re.sub(r",(?=\S)", ", ", f.groups.replace("[", " ["))
            table.add_row(*cells, Text(f"{f.metric} ({f.aggregate}): {groups} ({f.expect})"))
        return table

    @staticmethod
    def _ci(f: Finding) -> str:
        return f"[{_num(f.ci_low)}, {_num(f.ci_high)}]" if f.ci_low == f.ci_low else "–"

    @staticmethod
    def _verdicts(f: Finding) -> tuple[Text, Text]:
        return tuple(Text(v, style=_VERDICT_STYLE.get(v, "")) for v in (f.verdict, f.verdict_holm))

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        flat = self.flat()
        fits = Measurement.get(console, options.update_width(10_000), flat).maximum <= options.max_width
        yield flat if fits else self.stacked()
        for f in self.items:  # what was unusual about an interval (e.g. all seeds identical), wrapped to the width
            if f.note:
                yield Text(f"{f.id}: {f.note}", style="dim")


def findings_table(items: Sequence[Finding], title: str = "findings") -> FindingsTable:
    """The findings as a table for the terminal (`FindingsTable`; the claims and seed sentences are
    in the report, where there is room for them)."""
    return FindingsTable(items, title)


def cmd_run(
    path: str | Path,
    profile: str | None = None,
    executor: str = "local",
    root: str | Path = "runs",
    plugins: Sequence[str] = (),
    keep_going: bool = False,
    console: Console | None = None,
    only: Sequence[str] | None = None,
    address: str | None = None,
    workers: int | str | None = None,
) -> list[Finding]:
    """`simulacra study run PATH [--profile P] [--only H1,H2] [--executor processes [--workers N] |
    local | ray [--address HOST:PORT]]`: validate, run what is missing, print the findings."""
    console = console or Console()
    load_plugins(plugins)
    study = load_study(path, profile, only)  # before anything is created on disk
    options = ExecutorOptions(plugins=tuple(plugins), address=address, workers=workers)
    summary = run(study, executor=executor, root=root, keep_going=keep_going, console=console, executor_options=options)
    with Store(store_path(study, root)) as store:
        found = findings(study, store)
    console.print(
        f"{summary.ran} unit(s) run, {summary.skipped} already stored, {summary.failed} failed, "
        f"{summary.seconds:.1f}s ({summary.compile_seconds:.1f}s compiling)"
    )
    if found:
        console.print(findings_table(found, f"findings: {study.name} ({study.profile or 'default'})"))
    return found


def cmd_status(
    path: str | Path,
    profile: str | None = None,
    root: str | Path = "runs",
    plugins: Sequence[str] = (),
    console: Console | None = None,
    only: Sequence[str] | None = None,
) -> dict:
    """`simulacra study status PATH [--profile P]`: units done and pending per process, and the
    findings so far. Creates nothing: without a store, every unit is pending."""
    console = console or Console()
    load_plugins(plugins)
    study = load_study(path, profile, only)
    units = expand(study)
    spath = store_path(study, root)
    store = Store(spath) if spath.exists() else None
    try:
        done = store.done((u.unit_id for u in units), study=study.name) if store else set()
        total = store.status(study.name, units) if store else {"units": len(units), "done": 0, "pending": len(units), "other": 0}
        found = findings(study, store) if store and done else []
    finally:
        if store:
            store.close()
    table = Table(title=f"{study.name} ({study.profile or 'default'}): {spath}", title_justify="left")
    for col in ("process", "kind", "units", "done", "pending"):
        table.add_column(col, justify="left" if col in ("process", "kind") else "right")
    per: dict[str, dict] = {}
    for u in units:
        row = per.setdefault(u.process, {"kind": u.kind, "units": 0, "done": 0})
        row["units"] += 1
        row["done"] += u.unit_id in done
    for name, row in per.items():
        table.add_row(name, row["kind"], str(row["units"]), str(row["done"]), str(row["units"] - row["done"]))
    console.print(table)
    other = f"; {total['other']} other unit(s) stored (other profiles or earlier versions)" if total["other"] else ""
    console.print(f"{total['done']}/{total['units']} units done, {total['pending']} pending{other}")
    if found:
        console.print(findings_table(found, "findings so far"))
    return {**total, "processes": per, "findings": found}


def cmd_list(root: str | Path = "studies", plugins: Sequence[str] = (), console: Console | None = None) -> list[dict]:
    """`simulacra study list`: the study files under `root`, with their names, descriptions,
    profiles and hypotheses (or the one-line error of a file that does not load)."""
    console = console or Console()
    load_plugins(plugins)
    items = []
    for path in sorted([*Path(root).glob("*.yaml"), *Path(root).glob("*.yml")]):
        try:
            s = load_study(path)
            items.append(
                {
                    "path": str(path),
                    "name": s.name,
                    "description": s.description,
                    "profiles": list(s.profiles),
                    "hypotheses": [(h.id, h.claim) for h in s.hypotheses],
                }
            )
        except StudyError as e:
            items.append({"path": str(path), "error": str(e)})
    if not items:
        console.print(f"no study files (*.yaml) under {root}")
    for it in items:
        if "error" in it:
            console.print(f"[bold]{it['path']}[/bold]  [red]invalid[/red]: {it['error']}")
            continue
        profiles = f"  profiles: {', '.join(it['profiles'])}" if it["profiles"] else ""
        console.print(f"[bold]{it['name']}[/bold]  {it['path']}{profiles}")
        if it["description"]:
            console.print(f"  {' '.join(it['description'].split())}")
        for hid, claim in it["hypotheses"]:
            console.print(f"  {hid}: {claim}")
    return items


__all__ = [
    "EXECUTORS",
    "LENSES",
    "PROCESSES",
    "UNIT_SCHEMA",
    "Artifacts",
    "Context",
    "CorpusRef",
    "ExecutorOptions",
    "Finding",
    "Hypothesis",
    "Lens",
    "ProcessKind",
    "Result",
    "RunSummary",
    "Store",
    "Study",
    "StudyError",
    "Unit",
    "cmd_list",
    "cmd_run",
    "cmd_status",
    "expand",
    "findings",
    "findings_table",
    "load_plugins",
    "load_study",
    "register_lens",
    "register_process",
    "run",
    "store_path",
    "study_dir",
    "study_from_dict",
    "verdict",
]
