"""Corpus storage: a directory of `.npy` arrays (never pickled) and a `manifest.json` with the
world, the mixture, the seed, counts, the schema version and the SHA-256 of every array file.

Writes are atomic: everything goes to a temporary sibling directory, the manifest last, and the
directory is renamed into place only when complete. An interrupted write therefore leaves no
directory that loads, and an existing corpus is replaced only after the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from simulacra.atomic import write_dir

SCHEMA = "simulacra.corpus"
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"


class CorpusError(ValueError):
    """A corpus directory that cannot be loaded (the message names the problem)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_corpus_dir(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def check_writable(path: str | Path, overwrite: bool = False) -> Path:
    """Raise `CorpusError` unless a corpus may be written at `path` (checked before any work)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise CorpusError(f"{path} already exists; choose another directory or overwrite it explicitly")
        if not path.is_dir() or not _is_corpus_dir(path):
            raise CorpusError(f"{path} exists and is not a simulacra corpus; refusing to replace it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CorpusError(f"cannot write {path}: {parent} is not a directory")
            break
    return path


def write_corpus_dir(path: str | Path, arrays: dict[str, np.ndarray], meta: dict, overwrite: bool = False) -> Path:
    """Write `arrays` and a manifest (`meta` plus schema and checksums) to `path`, atomically.
    Overwriting replaces the whole directory (only a simulacra corpus is ever replaced)."""
    path = check_writable(path, overwrite)

    def fill(tmp: Path) -> None:
        entries = {}
        for name, arr in arrays.items():
            file = f"{name}.npy"
            np.save(tmp / file, np.ascontiguousarray(arr), allow_pickle=False)
            entries[name] = {
                "file": file,
                "sha256": sha256_file(tmp / file),
                "shape": list(arr.shape),
                "dtype": str(arr.dtype),
            }
        manifest = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **meta, "arrays": entries}
        with open(tmp / MANIFEST, "w") as f:  # written last: a directory without it is no corpus
            json.dump(manifest, f, indent=2)
            f.flush()
            os.fsync(f.fileno())

    return write_dir(path, fill)


def read_corpus_dir(path: str | Path, verify: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, arrays) of a corpus directory; every problem raises one `CorpusError`."""
    path = Path(path)
    if not path.is_dir():
        raise CorpusError(f"{path} is not a directory")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CorpusError(f"{path} is not a corpus: no {MANIFEST} (an interrupted write leaves none)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{mpath} is not valid JSON ({e.__class__.__name__}: {e})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise CorpusError(f"{mpath} is not a simulacra corpus manifest (schema {manifest.get('schema') if isinstance(manifest, dict) else None!r})")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CorpusError(
            f"{path} has corpus schema version {manifest.get('schema_version')!r}; this simulacra reads version {SCHEMA_VERSION}"
        )
    entries = manifest.get("arrays")
    if not isinstance(entries, dict):
        raise CorpusError(f"{mpath} lists no arrays")
    arrays = {}
    for name, e in entries.items():
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise CorpusError(f"{mpath}: the entry for array {name!r} is malformed")
        if Path(e["file"]).name != e["file"] or e["file"] in ("", ".", ".."):
            raise CorpusError(f"{mpath}: array file {e['file']!r} is not a plain file name inside the corpus directory")
        file = path / e["file"]
        if not file.is_file():
            raise CorpusError(f"{path}: array file {e.get('file')!r} ({name}) is missing")
        if verify and sha256_file(file) != e.get("sha256"):
            raise CorpusError(f"{path}: checksum mismatch for {e.get('file')!r}; the file was changed or corrupted")
        try:
            arr = np.load(file, allow_pickle=False)
        except ValueError as ex:
            raise CorpusError(f"{path}: cannot read {e.get('file')!r} as a plain numpy array ({ex})") from None
        if list(arr.shape) != e.get("shape") or str(arr.dtype) != e.get("dtype"):
            raise CorpusError(
                f"{path}: {e.get('file')!r} has shape {list(arr.shape)} {arr.dtype}, the manifest says {e.get('shape')} {e.get('dtype')}"
            )
        arrays[name] = arr
    return manifest, arrays
