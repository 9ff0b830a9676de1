"""Atomic directory writes, shared by corpora and checkpoints.

`write_dir(path, fill)` lets `fill` write into a temporary sibling directory and renames it into
place only when `fill` returns. An interrupted write leaves only a hidden temporary directory
(removed on any exception), and an existing directory is replaced only by a complete new one.
Callers decide beforehand whether `path` may be replaced.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def write_dir(path: str | Path, fill: Callable[[Path], None]) -> Path:
    """Create (or replace) the directory `path` with what `fill(tmp_dir)` writes, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
