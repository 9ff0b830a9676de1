"""The runner: a study becomes units, units become rows in the results store.

`expand(study)` makes one `Unit` per (process, sweep point, seed). A unit's `config` holds
everything that decides its result, as JSON data:

    process, kind          the process's name and kind
    kind_version           the kind's `version` (bumped when a default or a meaning changes)
    params                 the kind's parameters that differ from the kind's defaults
    world, eval_world      the resolved `WorldParams` of its world and eval world (or null)
    corpus                 its corpus (`CorpusRef.key()`: world, mixture, episodes, seed; top if set) or null
    lenses                 per lens the kind reads, the settings that differ from the lens's defaults
    scale                  the scale values the kind reads that differ from the kind's defaults
    sweep                  the sweep point
    schema                 `UNIT_SCHEMA`, the layout of this config
    seed                   the seed

and `unit_id` is the SHA-256 of its canonical JSON (sorted keys, no whitespace). The id does not
depend on the study's name, its profile or its other processes, so editing one process leaves
every other unit's results valid; and because defaults are left out, adding an optional field
to a kind's params (or a lens's settings) leaves every stored unit's id as it was. Changing a
default therefore changes no id: the kind's `version` must be bumped instead.

`run(study, …)` skips units already in the store and runs the rest through an executor. A call
of a process kind is `kind.run(ctx, seeds)`: the `Context` (`simulacra.studies.registry`) built
from the units' config without its seed, and one seed — or, for a kind registered with
`batch_seeds=True`, every pending seed of the sweep point, so it can `vmap` them. It returns one
`Result` per seed. The main process writes each unit in one transaction as soon as its call
returns, so a killed run loses only the call in flight (one unit, or one batch of seeds) and a
rerun continues where it stopped: the store's primary keys make duplicates impossible.

Shared inputs (corpora, trained models) go through `ctx.artifacts` (`simulacra.studies.artifacts`).
A run holds an exclusive lock on `runs/<study>/.lock` (released by the OS when the process dies),
which makes it safe to clear temporary directories a killed run left behind.

Executors: `local` runs calls one after another in this process; `processes` runs them at once in
a pool of worker processes on this machine (`simulacra.studies.pool`); `ray` runs each call as a
Ray task (`simulacra.studies.ray_executor`, imported only when chosen). An executor is a class with
`map(calls) -> iterator of Outcome`, made by a factory registered in `EXECUTORS` that receives the
run's `ExecutorOptions`; its workers call `execute(call)` after importing the modules that
register the process kinds (a `Call` is plain data, so it can be sent to another process or
machine). Only the main process writes to the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from simulacra.atomic import write_dir
from simulacra.compilation import CompileTimer
from simulacra.studies.artifacts import ArtifactBusy, artifacts_at, canonical_json, content_hash
from simulacra.studies.errors import StudyError
from simulacra.studies.registry import LENSES, PROCESSES, Context, CorpusRef, Result
from simulacra.studies.schema import Study
from simulacra.studies.store import Store
from simulacra.world.params import WorldParams

UNIT_SCHEMA = 2
"""The layout of a unit's config (part of every id). 2: params, lens settings and scale values
only where they differ from the defaults, plus the kind's version (1 held every default and the
library version)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Unit:
    """One process at one sweep point with one seed: the smallest thing the store holds."""

    unit_id: str
    """SHA-256 of `canonical`."""
    study: str
    """The study's name (not part of the id)."""
    profile: str | None
    """The profile that expanded it (not part of the id)."""
    process: str
    """The process's name in the study."""
    kind: str
    """The process kind."""
    world: str
    """The name of the world the process trains or acts in ("" for a world-less kind)."""
    seed: int
    """The seed."""
    sweep: dict[str, Any]
    """The sweep point: knob path -> value."""
    config: dict[str, Any]
    """Everything that decides the result (see the module docstring)."""
    canonical: str
    """`config` as canonical JSON."""

    @property
    def label(self) -> str:
        point = " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in self.sweep.items())
        return " ".join(x for x in (self.process, point, f"seed={self.seed}") if x)


def _differing(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values, validated by `model`, that differ from its defaults (JSON)."""
    return model.model_validate(values).model_dump(mode="json", exclude_defaults=True)


def expand(study: Study) -> list[Unit]:
    """One unit per (process, sweep point, seed), in the study's order."""
    units = []
    for name, p in study.processes.items():
        kind = PROCESSES[p.kind]
        world_name = study.world_of(name)
        keys = list(p.sweep)
        for combo in itertools.product(*(p.sweep[k] for k in keys)):
            point = dict(zip(keys, combo))
            part = {r: {k.split(".", 1)[1]: v for k, v in point.items() if k.startswith(r + ".")} for r in ("world", "corpus", "params")}

            def world(ref: str) -> WorldParams:
                # a world.<knob> sweep changes the process's world wherever the unit uses it
                return study.worlds[ref].build(**(part["world"] if ref == world_name else {}))

            corpus = None
            if p.corpus is not None:
                c = study.corpora[p.corpus].model_copy(update=part["corpus"])
                corpus = CorpusRef(world(c.world), c.mixture, c.episodes, c.seed, c.top).key()
            base = {
                "process": name,
                "kind": p.kind,
                "kind_version": kind.version,
                "params": _differing(kind.params, {**p.params, **part["params"]}),
                "world": world(world_name).to_dict() if world_name is not None else None,
                "eval_world": world(p.eval_world).to_dict() if p.eval_world is not None else None,
                "corpus": corpus,
                "lenses": {lens: _differing(LENSES[lens].settings, study.lenses.get(lens, {})) for lens in kind.lenses},
                "scale": {k: study.scale[k] for k in kind.scale if study.scale[k] != kind.scale[k]},
                "sweep": point,
                "schema": UNIT_SCHEMA,
            }
            for seed in range(study.seeds):
                config = {**base, "seed": seed}
                text = canonical_json(config)
                units.append(
                    Unit(
                        unit_id=content_hash(config),
                        study=study.name,
                        profile=study.profile,
                        process=name,
                        kind=p.kind,
                        world=world_name or "",
                        seed=seed,
                        sweep=point,
                        config=config,
                        canonical=text,
                    )
                )
    return units


# ------------------------------------------------------------------------------------------------
# calls and executors


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a process kind (plain data, so it can cross to another process)."""

    kind: str
    """The process kind."""
    config: dict[str, Any]
    """The units' config without `seed`."""
    seeds: tuple[int, ...]
    """The seeds it runs (one unless the kind batches seeds)."""
    unit_ids: tuple[str, ...]
    """The unit of each seed."""
    cache: str
    """The artifacts directory."""
    defer: bool = False
    """Whether the call may stop early, to be run again later, instead of waiting for an artifact
    another process is making (`Outcome.deferred`; the first tries in the `processes` and `ray`
    executors, `pool.CallQueue`)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a call returned: one `Result` per seed, or the error that stopped it."""

    call: Call
    results: list[Result] | None
    seconds: float
    error: str | None = None
    """The formatted traceback if the call raised."""
    compile_seconds: float = 0.0
    """Of `seconds`, the time spent tracing and compiling (or loading compiled programs from the
    persistent cache: `simulacra.compilation`)."""
    deferred: bool = False
    """The call (with `Call.defer`) stopped early, within `DEFER_SECONDS`, because another process
    was making an artifact it needs: run it again later (it then waits for the artifact)."""


def context(call: Call) -> Context:
    """The `Context` of a call, built from its plain-data config: the kind's params and each lens's
    settings validated with their defaults filled in, the worlds and the corpus typed."""
    kind = PROCESSES[call.kind]
    config = call.config
    eval_world = config["eval_world"]
    return Context(
        process=config["process"],
        kind=call.kind,
        params=kind.params.model_validate(config["params"]),
        world=WorldParams.from_dict(config["world"]) if config["world"] is not None else None,
        eval_world=WorldParams.from_dict(eval_world) if eval_world is not None else None,
        corpus=CorpusRef.from_key(config["corpus"]) if config["corpus"] is not None else None,
        lenses={lens: LENSES[lens].settings.model_validate(config["lenses"].get(lens, {})) for lens in kind.lenses},
        scale={**kind.scale, **config["scale"]},
        artifacts=artifacts_at(call.cache),
        config=config,
    )


DEFER_SECONDS = 10.0
"""A call with `Call.defer` stops (`Outcome.deferred`) only when it meets an artifact another
process is making within its first this many seconds: it loses at most that much work."""


def execute(call: Call) -> Outcome:
    """Run one call (in this process) and time it; an exception becomes `Outcome.error`."""
    start = time.perf_counter()
    deferred = False
    with CompileTimer() as timer:
        try:
            ctx = context(call)
            with ctx.artifacts.deferring(DEFER_SECONDS) if call.defer else contextlib.nullcontext():
                results = PROCESSES[call.kind].run(ctx, list(call.seeds))
            error = None
        except ArtifactBusy:
            results, error, deferred = None, None, True
        except Exception:
            results, error = None, traceback.format_exc()
    return Outcome(call, results, time.perf_counter() - start, error, timer.seconds, deferred)


class Executor(Protocol):
    def map(self, calls: Sequence[Call]) -> Iterator[Outcome]:
        """Run the calls (in any order), yielding each outcome as soon as it is known."""
        ...


class LocalExecutor:
    """Calls one after another, in this process."""

    def map(self, calls: Sequence[Call]) -> Iterator[Outcome]:
        for call in calls:
            yield execute(call)


@dataclasses.dataclass(frozen=True)
class ExecutorOptions:
    """What an executor needs besides the calls (plain data)."""

    plugins: tuple[str, ...] = ()
    """The modules that register process kinds and lenses, which workers in other processes
    import before their first call (the modules defining the calls' kinds are added to them)."""
    address: str | None = None
    """The cluster to run on (ray: `HOST:PORT` of its head, or `auto`); None starts a local one."""
    workers: int | str | None = None
    """processes: how many worker processes; None or "auto": this machine's cores, at most 4 (`pool.auto_workers`)."""


def _ray(options: ExecutorOptions) -> Executor:
    from simulacra.studies.ray_executor import RayExecutor  # imports ray only now

    return RayExecutor(options)


def _processes(options: ExecutorOptions) -> Executor:
    from simulacra.studies.pool import ProcessExecutor

    return ProcessExecutor(options)


EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {"local": lambda options: LocalExecutor(), "processes": _processes, "ray": _ray}
"""Executor factories by name (`study run --executor NAME`), each called with the run's options."""


def _calls(pending: list[Unit], cache: Path) -> tuple[list[Call], dict[str, Unit]]:
    by_point: dict[str, list[Unit]] = {}
    for u in pending:
        if PROCESSES[u.kind].batch_seeds:
            key = canonical_json({k: v for k, v in u.config.items() if k != "seed"})
        else:
            key = u.unit_id
        by_point.setdefault(key, []).append(u)
    calls = []
    for units in by_point.values():
        config = {k: v for k, v in units[0].config.items() if k != "seed"}
        calls.append(Call(units[0].kind, config, tuple(u.seed for u in units), tuple(u.unit_id for u in units), str(cache)))
    return calls, {u.unit_id: u for u in pending}


def _check_result(kind: str, unit: Unit, result: Any) -> Result:
    """The result with its metrics as floats, or a one-line StudyError saying what is wrong."""
    where = f"process kind {kind!r} ({unit.label})"
    if not isinstance(result, Result) or not isinstance(result.metrics, Mapping):
        raise StudyError(f"{where} returned {type(result).__name__}; each seed's result must be a Result with a 'metrics' mapping")
    declared = PROCESSES[kind].metrics
    undeclared = [m for m in result.metrics if m not in declared]
    if undeclared:
        raise StudyError(f"{where} returned undeclared metric(s) {undeclared}; it declares {', '.join(declared)}")
    try:
        metrics = {k: float(v) for k, v in result.metrics.items()}
    except (TypeError, ValueError) as e:
        raise StudyError(f"{where} returned a metric that is not a number ({e})") from None
    return Result(metrics, dict(result.series or {}), dict(result.files or {}))


def _write_files(study_dir: Path, unit: Unit, files: dict[str, Any]) -> dict[str, str]:
    """Write a unit's files to runs/<study>/files/<unit_id>/ (atomically); relative paths by name."""
    if not files:
        return {}
    for name in files:
        if Path(name).name != name or name in (".", ".."):
            raise StudyError(f"process kind {unit.kind!r} ({unit.label}): file name {name!r} must be a plain file name")
    rel = Path("files") / unit.unit_id

    def fill(tmp: Path) -> None:
        for name, content in files.items():
            if isinstance(content, (bytes, bytearray)):
                (tmp / name).write_bytes(content)
            else:
                shutil.copyfile(content, tmp / name)

    write_dir(study_dir / rel, fill)
    return {name: str(rel / name) for name in files}


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What a run did."""

    units: int
    """Units in the study (this profile)."""
    skipped: int
    """Units already in the store."""
    ran: int
    """Units run and stored now."""
    failed: int
    """Units whose call raised (with `keep_going`)."""
    seconds: float
    """Wall-clock time of the run."""
    compile_seconds: float = 0.0
    """Of it, the time the calls spent compiling (or loading compiled programs from the cache)."""


class _Lock:
    """An exclusive lock on runs/<study>/.lock for the duration of a run."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "_Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            raise StudyError(f"another run of this study is in progress (it holds {self.path}); wait for it or stop it") from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(f"{os.getpid()}\n")
        self._f.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._f, fcntl.LOCK_UN)
        self._f.close()


def _check_creatable(sdir: Path) -> None:
    """A one-line StudyError unless runs/<study>/ exists as a directory or can be made."""
    existing = next(p for p in (sdir, *sdir.parents) if p.exists())  # the last parent, "." or "/", exists
    if not existing.is_dir():
        raise StudyError(f"cannot keep the study's results in {sdir}: {existing} is not a directory")


def study_dir(study: Study, root: str | Path = "runs") -> Path:
    """runs/<study>/: the store, the cache, the files."""
    return Path(root) / study.name


def store_path(study: Study, root: str | Path = "runs") -> Path:
    return study_dir(study, root) / "results.sqlite"


def run(
    study: Study,
    store: Store | None = None,
    executor: str | Executor = "local",
    progress: bool = True,
    root: str | Path = "runs",
    keep_going: bool = False,
    console: Console | None = None,
    executor_options: ExecutorOptions | None = None,
) -> RunSummary:
    """Run every unit of `study` that is not in the store yet, storing each as it finishes.

    `store` defaults to runs/<study>/results.sqlite under `root`. With `keep_going`, a unit whose
    process raises is reported and left out (a rerun retries it); otherwise the run stops with a
    `StudyError` naming it (units finished before stay stored). `executor` is a name in
    `EXECUTORS` (made with `executor_options`) or an executor."""
    start = time.perf_counter()
    console = console or Console(stderr=True)
    errors = Console(stderr=True)
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise StudyError(f"executor {executor!r} is not known; known: {', '.join(EXECUTORS)}")
        executor = EXECUTORS[executor](executor_options or ExecutorOptions())
    units = expand(study)
    sdir = study_dir(study, root)
    _check_creatable(sdir)
    own_store = store is None
    with _Lock(sdir / ".lock"):
        store = store if store is not None else Store(store_path(study, root))
        try:
            for leftover in itertools.chain(sdir.glob("cache/.*.tmp-*"), sdir.glob("files/.*.tmp-*")):
                shutil.rmtree(leftover, ignore_errors=True)  # from a killed run; we hold the lock
            done = store.done((u.unit_id for u in units), study=study.name)
            pending = [u for u in units if u.unit_id not in done]
            calls, by_id = _calls(pending, sdir / "cache")
            ran = failed = 0
            compiling_total = 0.0
            if progress:
                head = f"study [bold]{study.name}[/bold] ({study.profile or 'default'})"
                console.print(f"{head}: {len(units)} units, {len(done)} stored, {len(pending)} to run")
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=console, disable=not progress) as bar:
                task = bar.add_task(study.name, total=len(pending))
                for outcome in executor.map(calls):
                    call_units = [by_id[i] for i in outcome.call.unit_ids]
                    if outcome.error is not None:
                        failed += len(call_units)
                        names = ", ".join(u.label for u in call_units)
                        last = outcome.error.strip().splitlines()[-1]
                        if not keep_going:
                            errors.print(outcome.error, markup=False, highlight=False)
                            raise StudyError(f"{names}: the process failed: {last}")
                        errors.print(f"[red]failed[/red] {escape(names)}: {escape(last)}", soft_wrap=True)
                        bar.advance(task, len(call_units))
                        continue
                    results = outcome.results
                    if not isinstance(results, list) or len(results) != len(call_units):
                        n = len(results) if isinstance(results, list) else type(results).__name__
                        raise StudyError(
                            f"process kind {outcome.call.kind!r} returned {n} results for {len(call_units)} seed(s); "
                            "it must return a list with one per seed"
                        )
                    each = outcome.seconds / len(call_units)
                    compiling = outcome.compile_seconds / len(call_units)
                    compiling_total += outcome.compile_seconds
                    for unit, result in zip(call_units, results):
                        result = _check_result(unit.kind, unit, result)
                        files = _write_files(sdir, unit, result.files)
                        store.put(unit, result.metrics, result.series, files, each, compiling)
                        ran += 1
                        bar.advance(task)
                        if progress:
                            shown = "  ".join(f"{k}={v:.3g}" for k, v in list(result.metrics.items())[:4])
                            timing = f"{each:.1f}s, compiling {compiling:.1f}s"
                            bar.console.print(f"[green]✓[/green] {unit.label}  [dim]{timing}[/dim]  {shown}")
        finally:
            if own_store:
                store.close()
    return RunSummary(len(units), len(done), ran, failed, time.perf_counter() - start, compiling_total)
