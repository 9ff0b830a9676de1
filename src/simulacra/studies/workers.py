"""The worker side of the executors that run calls in other processes (`processes`, `ray`).

A worker prepares itself once, before its first call (`prepare`): it puts the plugin modules'
folders on `sys.path`, imports the modules that register the calls' process kinds, and uses the
driver's JAX compilation cache (a directory, or none), so workers and the local executor run the
same programs and store the same results. `run_call` is what a worker does with one `Call`; its
`Outcome` is plain data (arrays on the host, files as bytes), so the driver, which alone writes
the results store, can take it on any machine.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax

from simulacra.compilation import enable_cache
from simulacra.studies.registry import PROCESSES, Result
from simulacra.studies.runner import Call, Outcome, execute


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


def kind_module(kind: str) -> str | None:
    """The module whose import registers process kind `kind` ("__main__" for a script's own kind,
    which no worker can import; None when unknown)."""
    return getattr(PROCESSES[kind].run, "__module__", None)


def worker_setup(plugins: Sequence[str], calls: Sequence[Call]) -> WorkerSetup:
    """The workers' setup: the plugins, the modules of the calls' kinds, the driver's compile cache."""
    modules = list(plugins)
    for kind in sorted({c.kind for c in calls}):
        module = kind_module(kind)
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


_prepared: set[WorkerSetup] = set()


def prepare(setup: WorkerSetup) -> None:
    """Prepare this worker process for calls (once per setup)."""
    if setup in _prepared:
        return
    # Workers are kept alive between calls, several may share a GPU: a JAX process that took 75%
    # of a GPU's memory up front (JAX's default) would starve the others
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


def run_call(setup: WorkerSetup, call: Call) -> Outcome:
    """In a worker: prepare it, run the call, return the outcome in plain data."""
    start = time.perf_counter()
    try:
        prepare(setup)
    except Exception:
        return Outcome(call, None, time.perf_counter() - start, traceback.format_exc())
    outcome = execute(call)
    if isinstance(outcome.results, list):
        outcome = dataclasses.replace(outcome, results=[portable(r) for r in outcome.results])
    return outcome


def error_text(e: BaseException) -> str:
    """The text of an error raised where a call ran (a worker that died, a Ray task's error), its
    last line naming it: the runner reports that line."""
    name, lines = type(e).__name__, str(e).strip().splitlines()
    if not lines:
        return name
    if len(lines) == 1:
        return f"{name}: {lines[0]}"
    return "\n".join(lines) if lines[-1].startswith(name) else "\n".join([*lines, f"{name}: {lines[-1]}"])


def portable(result: Any) -> Any:
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
