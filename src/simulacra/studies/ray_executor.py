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
and alone writes the results store; a task whose worker dies becomes an `Outcome` with the
error's text. A worker prepares itself once before its first call: it puts the plugin modules'
folders on `sys.path`, imports the modules that register the calls' process kinds, and uses the
driver's JAX compilation cache (a directory, or none), so workers and the local executor run
the same programs. Paths reach the workers absolute (the cache of artifacts, files a kind
returns as paths are sent back as bytes); on a cluster of several machines, `runs/<study>/cache`
must be on a filesystem every worker sees.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import jax

from simulacra.compilation import enable_cache
from simulacra.studies.errors import StudyError, one_line
from simulacra.studies.registry import PROCESSES, Result
from simulacra.studies.runner import Call, ExecutorOptions, Outcome, execute

INSTALL = "pip install 'simulacra[ray]'"
TASKS_PER_SLOT = 2
"""Tasks in flight per CPU (or GPU) of the cluster: one running, one queued behind it."""


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What a worker does before its first call (plain data)."""

    paths: tuple[str, ...]
    """Folders to put on `sys.path` (where the driver found the plugin modules)."""
    modules: tuple[str, ...]
    """Modules to import: they register the process kinds and lenses."""
    compile_cache: str | None
    """JAX's persistent compilation cache directory, or None for none."""
    min_compile_seconds: float
    """Programs compiling faster than this are not cached."""


class RayExecutor:
    """Runs each call as a Ray task (see the module docstring)."""

    def __init__(self, options: ExecutorOptions | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise StudyError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None
        self.options = options or ExecutorOptions()

    def setup(self, calls: Sequence[Call]) -> WorkerSetup:
        """The workers' setup: the plugins, the modules of the calls' kinds, the driver's compile cache."""
        modules = list(self.options.plugins)
        for kind in sorted({c.kind for c in calls}):
            module = getattr(PROCESSES[kind].run, "__module__", None)
            if module and module != "__main__" and module not in modules:
                modules.append(module)
        paths = []
        for name in modules:
            root = _import_root(name)
            if root is not None and root not in paths:
                paths.append(root)
        cache = jax.config.jax_compilation_cache_dir
        if cache is not None and "://" not in str(cache):
            cache = str(Path(cache).expanduser().resolve())
        return WorkerSetup(tuple(paths), tuple(modules), cache, float(jax.config.jax_persistent_cache_min_compile_time_secs))

    def map(self, calls: Sequence[Call]) -> Iterator[Outcome]:
        if not calls:
            return
        import ray

        own = not ray.is_initialized()
        if own:
            _connect(self.options.address)
        pending: dict[Any, tuple[Call, float]] = {}
        try:
            resources = ray.cluster_resources()
            gpus = 1 if resources.get("GPU", 0) >= 1 else 0
            slots = max(1, int(resources.get("GPU", 0) if gpus else resources.get("CPU", 1)))
            task = ray.remote(_run).options(num_cpus=1, num_gpus=gpus, max_retries=0)
            setup = ray.put(self.setup(calls))
            queue = iter(calls)
            while True:
                while len(pending) < TASKS_PER_SLOT * slots:
                    call = next(queue, None)
                    if call is None:
                        break
                    portable = dataclasses.replace(call, cache=os.path.abspath(call.cache))
                    pending[task.remote(setup, portable)] = (call, time.perf_counter())
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                call, started = pending.pop(ref)
                try:
                    outcome = dataclasses.replace(ray.get(ref), call=call)
                except Exception as e:  # the worker died, the task was cancelled, …
                    outcome = Outcome(call, None, time.perf_counter() - started, _error_text(e))
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


def _import_root(module: str) -> str | None:
    """The folder from which the driver imported `module` (what goes on a worker's `sys.path`)."""
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if file is None:
        return None
    root = Path(file).resolve().parent
    for _ in range(module.count(".") + (Path(file).name == "__init__.py")):
        root = root.parent
    return str(root)


def _error_text(e: BaseException) -> str:
    """The text of an error from Ray, its last line naming it (the runner reports that line)."""
    name, lines = type(e).__name__, str(e).strip().splitlines()
    if not lines:
        return name
    if len(lines) == 1:
        return f"{name}: {lines[0]}"
    return "\n".join(lines) if lines[-1].startswith(name) else "\n".join([*lines, f"{name}: {lines[-1]}"])


# ------------------------------------------------------------------------------------------------
# in the worker

_prepared: set[WorkerSetup] = set()


def _prepare(setup: WorkerSetup) -> None:
    if setup in _prepared:
        return
    # Ray keeps idle workers alive: a JAX worker that took 75% of a GPU's memory up front (JAX's
    # default) would starve the next task's worker on the same GPU
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    for path in setup.paths:
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    for module in setup.modules:
        importlib.import_module(module)
    if setup.compile_cache is None:
        jax.config.update("jax_compilation_cache_dir", None)
    else:
        enable_cache(setup.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", setup.min_compile_seconds)
    _prepared.add(setup)


def _run(setup: WorkerSetup, call: Call) -> Outcome:
    """A Ray task: prepare the worker, run the call, return the outcome in plain data."""
    start = time.perf_counter()
    try:
        _prepare(setup)
    except Exception:
        return Outcome(call, None, time.perf_counter() - start, traceback.format_exc())
    outcome = execute(call)
    if isinstance(outcome.results, list):
        outcome = dataclasses.replace(outcome, results=[_portable(r) for r in outcome.results])
    return outcome


def _portable(result: Any) -> Any:
    """A result the driver can take on any machine: arrays on the host, files as bytes."""
    if not isinstance(result, Result):
        return result  # the driver reports what is wrong with it
    files = {}
    for name, content in dict(result.files or {}).items():
        if not isinstance(content, (bytes, bytearray)):
            try:
                content = Path(content).read_bytes()
            except (OSError, TypeError):
                pass  # the driver reports it as the local executor would
        files[name] = content
    return Result(_on_host(result.metrics), _on_host(result.series), files)


def _on_host(data: Any) -> Any:
    """`data` with JAX arrays as NumPy arrays (mappings and sequences keep their order)."""
    if isinstance(data, jax.Array):
        return jax.device_get(data)
    if isinstance(data, Mapping):
        return {k: _on_host(v) for k, v in data.items()}
    if type(data) in (list, tuple):
        return type(data)(_on_host(v) for v in data)
    return data
