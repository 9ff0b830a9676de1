"""Atomic directory writes, shared by corpora, checkpoints and a study's files.

`write_dir(path, fill)` lets `fill` write into a temporary sibling directory and renames it into
place only when `fill` returns. An interrupted write leaves only a hidden temporary directory
(removed on any exception), and an existing directory is replaced only by a complete new one.
Callers decide beforehand whether `path` may be replaced. Content-addressed directories, which
several processes may write at once with the same content (a study's artifacts cache on Ray),
use `replace=False`: the first complete write stays, a later one is discarded, so a reader never
sees the directory missing.

A write killed outright (SIGKILL, a power cut) cannot clean up after itself: it leaves its
temporary directory `.<name>.tmp-<pid>@<host>-<hex>` (or, killed between the two renames of a
replacement, the replaced directory as `.<name>.old-<pid>@<host>-<hex>`) beside the target. The
next write to the same target removes such leftovers of that target once they are abandoned: the
process that wrote them is gone from this machine, or they are older than `STALE_AFTER_S` (the
only test for a leftover of another machine sharing the folder, or a reused pid). Leftovers of
other targets are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Callable

STALE_AFTER_S = 3600.0
"""A leftover this old is abandoned whatever its pid says (a write takes seconds to minutes)."""


HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "localhost"
"""This machine, as the names of temporary directories give it (a pid means something only here)."""


def write_dir(path: str | Path, fill: Callable[[Path], None], replace: bool = True) -> Path:
    """Create (or replace) the directory `path` with what `fill(tmp_dir)` writes, atomically.

    With `replace=False` an existing `path` is kept: if one exists when `fill` returns (another
    process wrote it meanwhile), what `fill` wrote is discarded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()
    try:
        fill(tmp)
        if not replace:
            try:
                os.rename(tmp, path)  # atomic, and refused where `path` is a non-empty directory or a file
            except OSError:
                if not path.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another writer got there first
        elif path.exists():
            old = _sibling(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _sibling(path: Path, role: str) -> Path:
    """A hidden sibling of `path` for a write in progress ("tmp") or a replaced directory ("old")."""
    return path.parent / f".{path.name}.{role}-{os.getpid()}@{HOST}-{uuid.uuid4().hex[:8]}"


def remove_abandoned(path: str | Path) -> None:
    """Remove the abandoned leftovers of killed writes to `path` (see the module docstring)."""
    path = Path(path)
    # earlier versions named leftovers `.<name>.tmp-<pid>-<hex>` (taken as this machine's) and
    # `.<name>.tmp-<hex>` (judged by age alone)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:tmp|old)-(?:(\d+)(?:@([A-Za-z0-9._-]+))?-)?[0-9a-f]{{8}}")
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        here = match.group(2) in (None, HOST)
        pid = int(match.group(1)) if match.group(1) and here else None
        if (pid is not None and not _running(pid)) or _age_s(entry) > STALE_AFTER_S:
            shutil.rmtree(entry, ignore_errors=True)


def _age_s(entry: Path) -> float:
    """Seconds since `entry` was last modified (0 if it is gone: a live write renamed it into place)."""
    try:
        return time.time() - entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _running(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # not a pid at all
        return False
    return True
