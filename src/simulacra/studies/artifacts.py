"""Content addressing: canonical JSON, its SHA-256, and the cache of shared inputs.

A unit's id is the hash of its config (`simulacra.studies.runner`), and a shared input — a
corpus, a trained model — is stored under the hash of the JSON key that determines it, in
`runs/<study>/cache/<sha256 of key>/`, written atomically (`simulacra.atomic.write_dir`), so units
that share a corpus generate it once and a rerun reuses it. Calls running at once in several
processes (the `processes` and `ray` executors) make an artifact once: the maker holds a lock
(`fcntl.flock` on `.<hash>.lock` beside the artifact, removed when done) and the others wait for
it, then load what it made. Where the filesystem has no locks, each may make it; then the first
complete directory stays and the others are discarded, so a made artifact's directory never
disappears under a reader. A call that may be run again later (`Artifacts.deferring`: the first
tries of a call in the `processes` and `ray` executors) does not wait: it raises `ArtifactBusy`,
and the executor runs other calls first.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from simulacra.atomic import write_dir

try:
    import fcntl
except ImportError:  # not a POSIX system: no locks, makers may duplicate work (still correct)
    fcntl = None

T = TypeVar("T")


class ArtifactBusy(Exception):
    """Another process is making the artifact, and this call was asked not to wait for it
    (`Artifacts.deferring`)."""


def canonical_json(data: Any) -> str:
    """The canonical JSON of data: sorted keys, no whitespace, no NaN."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(data: Any) -> str:
    """SHA-256 of the canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


class Artifacts:
    """Content-addressed cache of shared inputs: `root/<sha256 of key>/`, written atomically.

    `get_or_make(key, make, save, load)`: if the key's directory exists, `load(dir)`; otherwise
    `value = make()`, `save(value, tmp_dir)` into a temporary directory renamed into place when
    complete (with `key.json` beside what `save` wrote; if another process renamed its own into
    place first, that one is kept), and the value is returned. While it makes the value it holds
    the key's lock (`lock=True`), so another process asking for the same key waits and loads it. The key must
    be JSON data that determines the artifact completely (e.g. `{"artifact": "corpus", **spec}`,
    with the library version). The last few values are also kept in memory.
    """

    KEY_FILE = "key.json"

    def __init__(self, root: str | Path, memory: int = 4, lock: bool = True):
        self.root = Path(root)
        self.memory = memory
        self.lock = lock
        """Whether a maker takes the artifact's lock, so that other processes wait instead of
        making it too."""
        self._memo: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._defer_until: float | None = None
        self.made = 0
        """Artifacts made by this object."""
        self.loaded = 0
        """Artifacts loaded from disk by this object."""

    def path(self, key: dict) -> Path:
        return self.root / content_hash(key)

    def has(self, key: dict) -> bool:
        """Whether the key's artifact is already made (in memory or on disk)."""
        h = content_hash(key)
        return h in self._memo or (self.root / h / self.KEY_FILE).is_file()

    def get_or_make(self, key: dict, make: Callable[[], T], save: Callable[[T, Path], None], load: Callable[[Path], T]) -> T:
        h = content_hash(key)
        if h in self._memo:
            self._memo.move_to_end(h)
            return self._memo[h]
        path = self.root / h
        if (path / self.KEY_FILE).is_file():
            value = self._load(path, load)
        else:
            with self._locked(h):
                if (path / self.KEY_FILE).is_file():  # another process made it while we waited
                    value = self._load(path, load)
                else:
                    broken = path.exists()  # without its key file: replaced; absent: another writer's, renamed into place meanwhile, is kept
                    value = make()

                    def fill(tmp: Path) -> None:
                        save(value, tmp)
                        (tmp / self.KEY_FILE).write_text(json.dumps(key, indent=1, sort_keys=True))

                    write_dir(path, fill, replace=broken)
                    self.made += 1
        self._memo[h] = value
        while len(self._memo) > self.memory:
            self._memo.popitem(last=False)
        return value

    @contextlib.contextmanager
    def deferring(self, seconds: float):
        """Within the block's first `seconds`, a maker that finds another process making the same
        artifact raises `ArtifactBusy` instead of waiting for it (then it waits, as always): a
        call that can be run again later gives its worker back, having lost at most that much
        work."""
        self._defer_until = time.monotonic() + seconds
        try:
            yield self
        finally:
            self._defer_until = None

    def _load(self, path: Path, load: Callable[[Path], T]) -> T:
        self.loaded += 1
        return load(path)

    @contextlib.contextmanager
    def _locked(self, h: str):
        """Hold the artifact's lock (waiting while another process holds it); the lock file is
        removed when done: a waiter that then takes the removed file's lock finds the artifact made
        (or makes it, if its maker failed)."""
        if not self.lock or fcntl is None:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / f".{h}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if self._defer_until is not None and time.monotonic() < self._defer_until:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is making it (its lock file stays)
                os.close(fd)
                raise ArtifactBusy(f"artifact {h[:12]} is being made by another process") from None
            except OSError:  # a filesystem without locks: go on unlocked
                pass
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a filesystem without locks: go on unlocked
                pass
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(fd)  # releases the lock


_ARTIFACTS: dict[str, Artifacts] = {}


def artifacts_at(root: str | Path) -> Artifacts:
    """The process-wide `Artifacts` for a cache directory (its memory survives across calls)."""
    key = str(Path(root).resolve())
    if key not in _ARTIFACTS:
        _ARTIFACTS[key] = Artifacts(root)
    return _ARTIFACTS[key]
