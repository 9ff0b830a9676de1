"""The `processes` executor: calls run at once in a pool of worker processes on this machine
(`simulacra study run --workers N`; the command's default on a machine with several cores).

Small studies spend about half their time compiling, and XLA compiles a program on one core:
two calls compiling at once in two processes use two cores. Each worker is a fresh Python
process (the `spawn` start method: no forked JAX runtime) that prepares itself once, as a Ray
worker does (`simulacra.studies.workers`), and then runs call after call; the driver yields each
`Outcome` as it finishes and alone writes the results store. The results are those of the local
executor, whatever the number of workers (a test checks it).

Calls that share a corpus are spread apart in the queue (`spread`), so that calls running at once
rarely need the same artifact; when they do, the artifact cache makes it once
(`simulacra.studies.artifacts`). A call does not at first wait for an artifact another worker is
making (within its first `runner.DEFER_SECONDS`): it stops, its worker takes the next call, and it
goes back in the queue behind the next call of each worker; after `MAX_DEFERRALS` such stops it
waits. The driver keeps the queue and hands each worker one call at a time. Several workers on one GPU share
it: they do not preallocate its memory. A worker that dies fails its call and the calls still
queued (rerun the study to continue); workers die with the driver (Linux). Kinds registered in `__main__` (a script's own kinds)
cannot be imported by a worker: calls of such kinds run in this process.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Iterator, Sequence

from simulacra.studies.artifacts import canonical_json
from simulacra.studies.runner import Call, ExecutorOptions, Outcome, execute
from simulacra.studies.workers import error_text, kind_module, run_call, worker_setup

MAX_DEFERRALS = 3
"""How often a call may stop, rather than wait for an artifact another worker is making, before it
waits (each time it goes back in the queue behind the next call of each worker)."""

MAX_AUTO_WORKERS = 4
"""`workers=None` (auto) uses this machine's cores, at most this many (each worker holds its own
JAX runtime and compiled programs: about 1-2 GB of memory)."""


def auto_workers() -> int:
    """The number of workers `auto` means here: the cores this process may use, at most `MAX_AUTO_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_WORKERS))


def parse_workers(value: int | str | None, source: str = "workers") -> int | None:
    """A number of workers as given (`--workers`, `$SIMULACRA_WORKERS`, `ExecutorOptions.workers`):
    a positive count, or None for auto (`None` or "auto"). Anything else: a `ValueError` naming
    `source`."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        n = int(value) if not isinstance(value, (bool, float)) else 0
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"invalid {source}={value!r}: a positive number of worker processes, or auto")
    return n


def spread(calls: Sequence[Call]) -> list[Call]:
    """The calls reordered so that calls sharing a corpus are apart: each corpus's calls evenly
    spaced over the queue, in their order (the i-th of a corpus's k calls at (i + ½)/k of the
    way), the corpora with the most calls first where positions tie; calls without a corpus are
    their own group."""
    groups: dict[str, list[Call]] = {}
    for i, call in enumerate(calls):
        corpus = call.config.get("corpus")
        key = canonical_json(corpus) if corpus is not None else f"#{i}"
        groups.setdefault(key, []).append(call)
    ranked = sorted(groups.values(), key=len, reverse=True)  # stable: ties keep their first appearance
    placed = [((j + 0.5) / len(group), g, j) for g, group in enumerate(ranked) for j in range(len(group))]
    return [ranked[g][j] for _, g, j in sorted(placed)]


@dataclasses.dataclass(frozen=True)
class Queued:
    """A call in a `CallQueue`: how often it has stopped to let others go first, and the time its
    stopped tries took."""

    call: Call
    tries: int = 0
    earlier: Outcome | None = None


class CallQueue:
    """The driver's queue of calls, for executors that run calls elsewhere (`processes`, `ray`):
    the calls `spread`; a call that stopped rather than wait for an artifact another worker is
    making (`Outcome.deferred`) goes back behind the next `ahead` calls (one per worker), and
    after `MAX_DEFERRALS` stops it is sent to wait for the artifact (`Call.defer` false)."""

    def __init__(self, calls: Sequence[Call], ahead: int):
        self._queue = collections.deque(Queued(call) for call in spread(calls))
        self.ahead = ahead

    def __len__(self) -> int:
        return len(self._queue)

    def pop(self) -> tuple[Queued, Call]:
        """The next call, and the call to send (absolute paths, `defer` set)."""
        item = self._queue.popleft()
        call = item.call
        return item, dataclasses.replace(call, cache=os.path.abspath(call.cache), defer=item.tries < MAX_DEFERRALS)

    def settle(self, item: Queued, outcome: Outcome) -> Outcome | None:
        """The call's outcome (its stopped tries' time added), or None when it stopped and went
        back in the queue."""
        outcome = dataclasses.replace(outcome, call=item.call)
        if item.earlier is not None:
            outcome = dataclasses.replace(outcome, seconds=outcome.seconds + item.earlier.seconds,
                                          compile_seconds=outcome.compile_seconds + item.earlier.compile_seconds)  # fmt: skip
        if not outcome.deferred:
            return outcome
        self._queue.insert(min(self.ahead, len(self._queue)), Queued(item.call, item.tries + 1, outcome))
        return None


def _die_with_the_driver() -> None:
    """In a worker, first: on Linux, ask for SIGTERM when the driver dies (a driver killed with
    SIGKILL would otherwise leave its workers running their calls to the end)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


def _in_main(call: Call) -> bool:
    return kind_module(call.kind) == "__main__"


class ProcessExecutor:
    """Runs calls in `options.workers` worker processes (see the module docstring); with one
    worker, or one call, it runs them here, one after another, as the local executor does."""

    def __init__(self, options: ExecutorOptions | None = None):
        self.options = options or ExecutorOptions()
        n = parse_workers(self.options.workers, "ExecutorOptions.workers")
        self.workers = n if n is not None else auto_workers()

    def map(self, calls: Sequence[Call]) -> Iterator[Outcome]:
        remote = [c for c in calls if not _in_main(c)]
        here = [c for c in calls if _in_main(c)]
        n = min(self.workers, len(remote))
        if n <= 1:
            here, remote = list(calls), []
        if remote:
            yield from self._pool(remote, n)
        for call in here:
            yield execute(call)

    def _pool(self, calls: list[Call], n: int) -> Iterator[Outcome]:
        setup = worker_setup(self.options.plugins, calls)
        # several JAX processes on one GPU: none may take most of its memory up front (the workers
        # inherit this; the driver has run no JAX computation of its own by now, or has its memory)
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_the_driver)
        queue = CallQueue(calls, ahead=n)
        futures: dict[Future, tuple[Queued, float]] = {}

        def submit() -> None:
            item, call = queue.pop()
            futures[pool.submit(run_call, setup, call)] = (item, time.perf_counter())

        try:
            while queue and len(futures) < n:  # one call per worker: the rest stay here, so a deferred call can cut in
                submit()
            while futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in done:
                    item, submitted = futures.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as e:  # the worker died (BrokenProcessPool), …
                        outcome = Outcome(item.call, None, time.perf_counter() - submitted, error_text(e))
                    outcome = queue.settle(item, outcome)
                    if outcome is not None:
                        yield outcome
                while queue and len(futures) < n:
                    submit()
        finally:
            for future in futures:
                future.cancel()
            if futures:  # stopped early (a failed unit, Ctrl-C): stop the calls still running
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
