"""The `ray` executor: each call of a process kind runs as one Ray task (`simulacra study run
--executor ray [--address HOST:PORT]`).

Ray is an optional extra (`pip install 'simulacra[ray]'`), imported only when this executor is
made. Without an address, `map` starts a local Ray instance (this machine's CPUs and GPUs) and
stops it when done; with one (`HOST:PORT` of a running cluster's head, or `auto` for the cluster
started on this machine with `ray start`), it joins that cluster as a driver. A program that
has called `ray.init` itself keeps its connection.

A task is one `Call` (a sweep point's seeds stay packed in one call for kinds with
`batch_seeds=True`) and requests one CPU, and one GPU where the cluster has GPUs. The driver
keeps a few tasks per slot in flight, yields each `Outcome` as its task finishes (`ray.wait`),
and alone writes the results store. Its queue is the `processes` executor's (`pool.CallQueue`):
calls sharing a corpus spread apart, and a call that would wait for an artifact another task is
making goes back in the queue first; a task whose worker dies becomes an `Outcome` with the
error's text. A worker prepares itself once before its first call (`simulacra.studies.workers`,
shared with the `processes` executor), so workers and the local executor run the same programs
and store the same results. Paths reach the workers absolute (the cache of artifacts, files a kind
returns as paths are sent back as bytes); on a cluster of several machines, `runs/<study>/cache`
must be on a filesystem every worker sees.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Iterator, Sequence

from simulacra.studies.errors import StudyError, one_line
from simulacra.studies.pool import CallQueue, Queued
from simulacra.studies.runner import Call, ExecutorOptions, Outcome
from simulacra.studies.workers import WorkerSetup, error_text, run_call, worker_setup

INSTALL = "pip install 'simulacra[ray]'"
TASKS_PER_SLOT = 2
"""Tasks in flight per CPU (or GPU) of the cluster: one running, one queued behind it."""


class RayExecutor:
    """Runs each call as a Ray task (see the module docstring)."""

    def __init__(self, options: ExecutorOptions | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise StudyError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None
        self.options = options or ExecutorOptions()

    def setup(self, calls: Sequence[Call]) -> WorkerSetup:
        """The workers' setup (`workers.worker_setup`)."""
        return worker_setup(self.options.plugins, calls)

    def map(self, calls: Sequence[Call]) -> Iterator[Outcome]:
        if not calls:
            return
        import ray

        own = not ray.is_initialized()
        if own:
            _connect(self.options.address)
        pending: dict[Any, tuple[Queued, float]] = {}
        try:
            resources = ray.cluster_resources()
            gpus = 1 if resources.get("GPU", 0) >= 1 else 0
            slots = max(1, int(resources.get("GPU", 0) if gpus else resources.get("CPU", 1)))
            task = ray.remote(run_call).options(num_cpus=1, num_gpus=gpus, max_retries=0)
            setup = ray.put(self.setup(calls))
            queue = CallQueue(calls, ahead=slots)
            while True:
                while queue and len(pending) < TASKS_PER_SLOT * slots:
                    item, call = queue.pop()
                    pending[task.remote(setup, call)] = (item, time.perf_counter())
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                item, started = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # the worker died, the task was cancelled, …
                    outcome = Outcome(item.call, None, time.perf_counter() - started, error_text(e))
                outcome = queue.settle(item, outcome)
                if outcome is not None:
                    yield outcome
        finally:
            for ref in pending:  # the run stopped early: its other calls are not wanted
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            if own:
                ray.shutdown()


def _connect(address: str | None) -> None:
    """Start a local Ray instance (no address) or join a cluster, quietly."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # unless the user asked for them
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except Exception as e:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise StudyError(f"cannot {where}: {one_line(str(e)) or type(e).__name__}") from None
