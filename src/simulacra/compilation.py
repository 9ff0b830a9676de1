"""Compiling once: JAX's persistent compilation cache, and how long a piece of work spent compiling.

Small studies are compile-bound (a d32 model trained for 150 steps compiles for longer than it
trains), and the same programs compile again in every new process. With the persistent cache on,
a second `simulacra study run` — or a run of another study whose programs have the same shapes —
loads them from disk instead.

    enable_cache()                  # where `cache_dir()` says; the CLI does this for `study run`
    with CompileTimer() as timer:   # seconds spent tracing, lowering and compiling (or loading)
        ...
    timer.seconds

The cache lives in `$SIMULACRA_COMPILE_CACHE` if set, else `$XDG_CACHE_HOME/simulacra/jax`
(`~/.cache/simulacra/jax`); the value `off` turns it off. `simulacra study run --compile-cache
DIR|off` overrides both. Entries are keyed by JAX on the program, the backend and the JAX
version, so a stale entry is never used; deleting the directory is always safe.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import jax

ENV = "SIMULACRA_COMPILE_CACHE"
"""The environment variable that moves the cache (a directory) or turns it off (`off`)."""
OFF = ("off", "0", "false", "no", "")
MIN_COMPILE_SECONDS = 0.2
"""Programs that compile faster than this are not written to the cache (JAX's default is 1 s,
which leaves out most of a small study's programs)."""


def cache_dir(override: str | None = None) -> Path | None:
    """The cache directory: `override`, else `$SIMULACRA_COMPILE_CACHE`, else the user cache
    directory; None when the chosen value is `off`."""
    value = override if override is not None else os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simulacra" / "jax"


def enable_cache(override: str | None = None) -> Path | None:
    """Turn JAX's persistent compilation cache on at `cache_dir(override)` (or leave it off);
    returns the directory used. Raises ValueError naming the path if it cannot be created."""
    path = cache_dir(override)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot use {path} as the compilation cache ({e.strerror}); give another with --compile-cache DIR, or off") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


_COMPILE_EVENTS = "/jax/core/compile/"  # tracing, lowering to MLIR, backend compile (or a cache load)
_local = threading.local()
_registered = False
_lock = threading.Lock()


def _listen(event: str, duration: float, **_) -> None:
    if event.startswith(_COMPILE_EVENTS):
        for timer in getattr(_local, "timers", ()):
            timer.seconds += duration


class CompileTimer:
    """A context manager summing the seconds this thread spends compiling inside it (JAX's own
    monitoring events: tracing, lowering and backend compilation or loading from the cache).
    Timers nest; each sees the compilations made while it is open."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "CompileTimer":
        global _registered
        with _lock:
            if not _registered:
                jax.monitoring.register_event_duration_secs_listener(_listen)
                _registered = True
        _local.timers = (*getattr(_local, "timers", ()), self)
        return self

    def __exit__(self, *exc) -> None:
        _local.timers = tuple(t for t in _local.timers if t is not self)


__all__ = ["ENV", "CompileTimer", "cache_dir", "enable_cache"]
