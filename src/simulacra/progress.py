"""Progress of long commands (`model train`, `corpus make`, `study run`): a rich bar on a terminal;
where the output is not a terminal (a log file, a pipe, a batch job), plain lines instead of
nothing, one at most every tenth of the work or every `EVERY_SECONDS`, whichever comes first.

    with progress("training", total=2000, unit="steps", fields={"loss": "-"}) as bar:
        bar.advance(100, loss="1.234")
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich import get_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

EVERY_SECONDS = 60.0
"""The longest a log goes without a progress line while work is being done."""


class Lines:
    """A progress meter that prints plain lines: `label: done/total unit (p%), elapsed, left, fields`."""

    def __init__(self, console: Console, label: str, total: int, unit: str, fields: dict, every_s: float = EVERY_SECONDS):
        self.console, self.label, self.total, self.unit, self.fields, self.every_s = console, label, total, unit, dict(fields), every_s
        self.done, self.t0 = 0, time.perf_counter()
        self.shown_tenth, self.shown_at = 0, self.t0

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)
        now = time.perf_counter()
        tenth = 10 * self.done // max(self.total, 1)
        if tenth > self.shown_tenth or now - self.shown_at >= self.every_s:
            self.shown_tenth, self.shown_at = tenth, now
            self.console.print(self.line(now), markup=False, highlight=False, soft_wrap=True)

    def line(self, now: float) -> str:
        elapsed = now - self.t0
        left = elapsed * (self.total - self.done) / self.done if self.done else float("nan")
        extra = "".join(f", {k} {v}" for k, v in self.fields.items())
        pct = 100 * self.done / max(self.total, 1)
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {elapsed:.0f} s elapsed, about {left:.0f} s left{extra}"


class _Bar:
    """A rich bar with the same `advance` as `Lines`."""

    def __init__(self, bar: Progress, task) -> None:
        self.bar, self.task = bar, task

    def advance(self, n: int = 1, **fields) -> None:
        self.bar.update(self.task, advance=n, **fields)


class _Off:
    def advance(self, n: int = 1, **fields) -> None:
        pass


@contextlib.contextmanager
def progress(label: str, total: int, unit: str = "", console: Console | None = None, enabled: bool = True,
             fields: dict | None = None, columns: tuple[ProgressColumn, ...] | None = None,
             transient: bool = True) -> Iterator[Lines | _Bar | _Off]:  # fmt: skip
    """A meter of `total` units of work: a rich bar (`columns`, default label, bar, count, times)
    on a terminal, `Lines` elsewhere, nothing when not `enabled`. `fields` are shown beside the
    count and updated by `advance(n, **fields)`."""
    console = console or get_console()
    fields = dict(fields or {})
    if not enabled:
        yield _Off()
    elif console.is_terminal:
        columns = columns or (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=transient) as bar:
            yield _Bar(bar, bar.add_task(label, total=total, **fields))
    else:
        yield Lines(console, label, total, unit, fields)
