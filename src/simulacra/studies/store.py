"""The results store: one SQLite file per study, `runs/<study>/results.sqlite`.

Tables (all keyed by `unit_id`, the SHA-256 of the unit's canonical config):

* `units(unit_id PK, study, profile, process, kind, world, seed, sweep, config, seconds, finished, version,
  compile_seconds)` — one row per finished unit; `sweep` and `config` are JSON (the config is the
  canonical JSON the id hashes, so every stored number can be reproduced from its row); `version`
  is the schema of that config (`runner.UNIT_SCHEMA`); `seconds` is the unit's share of its call's
  wall-clock time and `compile_seconds` the part of it spent compiling (a store written before
  that column existed gains it, NULL for its old rows);
* `metrics(unit_id, name, value, PK(unit_id, name))` — the unit's scalar metrics (NaN is stored as
  NULL, SQLite's only representation of it, and read back as NaN);
* `series(unit_id, name, data, PK(unit_id, name))` — curves and tables as JSON (non-finite numbers
  written as null);
* `files(unit_id, name, path, PK(unit_id, name))` — files a unit produced (rollout GIFs …), paths
  relative to the study's run directory.

`put` writes a unit's rows in one transaction (`BEGIN IMMEDIATE … COMMIT`), replacing any rows of
the same unit: a unit is either wholly in the store or absent, and can never appear twice. The
database runs in WAL mode with a busy timeout, so readers (`study status`, the report) can look
while a run writes. A unit's presence in `units` is the runner's only test of "already done".

A file that is not a whole SQLite database (overwritten, truncated) is refused with one
`StudyError` line saying how to recover, before anything is written to it; so is any other
SQLite error (a locked or read-only file).
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from simulacra.studies.errors import StudyError

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    profile TEXT,
    process TEXT NOT NULL,
    kind TEXT NOT NULL,
    world TEXT NOT NULL,
    seed INTEGER NOT NULL,
    sweep TEXT NOT NULL,
    config TEXT NOT NULL,
    seconds REAL,
    finished TEXT NOT NULL,
    version TEXT NOT NULL,
    compile_seconds REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    unit_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (unit_id, name)
);
CREATE TABLE IF NOT EXISTS series (
    unit_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (unit_id, name)
);
CREATE TABLE IF NOT EXISTS files (
    unit_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (unit_id, name)
);
CREATE INDEX IF NOT EXISTS units_study ON units (study);
"""

UNIT_FIELDS = ("unit_id", "study", "profile", "process", "kind", "world", "seed", "sweep")
SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def to_json(data: Any) -> str:
    """JSON of plain data, numpy arrays and scalars included; NaN and infinities become null."""

    def clean(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        if isinstance(x, np.generic):
            return clean(x.item())
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if x is None or isinstance(x, (str, int, bool)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} {x!r} as JSON")

    return json.dumps(clean(data), allow_nan=False)


class Store:
    """A study's results (see the module docstring). Opening creates the file and its tables."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_file()
        with self._reported():
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE in `put`)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            try:
                self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a commit survives a killed process
                self._db.executescript(SCHEMA)
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(units)")}
                if "compile_seconds" not in columns:  # a store written before compile times were kept
                    self._db.execute("ALTER TABLE units ADD COLUMN compile_seconds REAL")
            except BaseException:
                self._db.close()
                raise

    def _corrupt(self, what: str) -> StudyError:
        return StudyError(f"{self.path} {what}; it was left as it is: move it away to start the study afresh (its units will run again)")

    def _check_file(self) -> None:
        """Refuse a file that is not a whole SQLite database, reading only its header (SQLite itself
        would report it only at the first query that reaches a missing page)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            header = f.read(100)
        if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
            raise self._corrupt("is not a SQLite database (corrupt or truncated)")
        # the header's page count is valid when its change counter (offset 24) equals offset 92; while a
        # run writes (a -wal file exists) a checkpoint may write the header before the pages it counts
        page_size = int.from_bytes(header[16:18], "big")
        pages = int.from_bytes(header[28:32], "big")
        wal = self.path.with_name(self.path.name + "-wal")
        if header[24:28] == header[92:96] and not wal.exists():
            if self.path.stat().st_size < pages * (65536 if page_size == 1 else page_size):
                raise self._corrupt("is truncated (shorter than the pages its header counts)")

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        """SQLite errors as one StudyError line: a damaged file with how to recover, others as they are."""
        try:
            yield
        except sqlite3.Error as e:
            if getattr(e, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise self._corrupt(f"is corrupt ({e})") from None
            raise StudyError(f"{self.path}: {e}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self,
        unit,
        metrics: dict[str, float],
        series: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
        seconds: float | None = None,
        compile_seconds: float | None = None,
    ) -> None:
        """Write one finished unit (a `runner.Unit`) and its results in one transaction."""
        values = [(unit.unit_id, str(k), _real(v)) for k, v in metrics.items()]
        curves = [(unit.unit_id, str(k), to_json(v)) for k, v in (series or {}).items()]
        paths = [(unit.unit_id, str(k), str(v)) for k, v in (files or {}).items()]
        row = (
            unit.unit_id,
            unit.study,
            unit.profile,
            unit.process,
            unit.kind,
            unit.world,
            int(unit.seed),
            to_json(unit.sweep),
            unit.canonical,
            None if seconds is None else float(seconds),
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
            str(unit.config["schema"]),
            None if compile_seconds is None else float(compile_seconds),
        )
        db = self._db
        with self._reported():
            db.execute("BEGIN IMMEDIATE")
            try:
                for table in ("units", "metrics", "series", "files"):
                    db.execute(f"DELETE FROM {table} WHERE unit_id = ?", (unit.unit_id,))
                db.execute(
                    "INSERT INTO units (unit_id, study, profile, process, kind, world, seed, sweep, config, seconds, finished, version, "
                    "compile_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                db.executemany("INSERT INTO metrics VALUES (?, ?, ?)", values)
                db.executemany("INSERT INTO series VALUES (?, ?, ?)", curves)
                db.executemany("INSERT INTO files VALUES (?, ?, ?)", paths)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------------

    def _rows(self, query: str, args: tuple = ()) -> list[tuple]:
        """Every row of a query (SQLite errors reported as one StudyError line)."""
        with self._reported():
            return self._db.execute(query, args).fetchall()

    def has(self, unit_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM units WHERE unit_id = ?", (unit_id,)))

    def done(self, unit_ids: Iterable[str] | None = None, study: str | None = None) -> set[str]:
        """The ids among `unit_ids` (default: all of `study`, or all) that are in the store."""
        if unit_ids is None:
            q, args = ("SELECT unit_id FROM units", ()) if study is None else ("SELECT unit_id FROM units WHERE study = ?", (study,))
            return {r[0] for r in self._rows(q, args)}
        return set(unit_ids) & self.done(study=study)

    def status(self, study: str, units: list | None = None) -> dict[str, int]:
        """{"units", "done", "pending", "other"}: of the expansion `units` (a list of `runner.Unit`),
        how many are stored and how many are not; `other` counts stored units of `study` outside the
        expansion (another profile's, or an earlier version's; the findings ignore them)."""
        stored = self.done(study=study)
        ids = {u.unit_id for u in units or []}
        done = len(ids & stored)
        return {"units": len(ids), "done": done, "pending": len(ids) - done, "other": len(stored - ids)}

    def metrics_frame(self, study: str, unit_ids: Iterable[str] | None = None) -> list[dict]:
        """One row per (unit, metric): the unit's fields (`sweep` parsed), `metric` and `value`
        (NaN where undefined). Restricted to `unit_ids` when given (the findings pass the current
        expansion so that results of an earlier version of the study are not mixed in)."""
        return self._joined(study, unit_ids, "metrics", "value", lambda v: math.nan if v is None else float(v), name_key="metric")

    def series_frame(self, study: str, unit_ids: Iterable[str] | None = None) -> list[dict]:
        """One row per (unit, series): the unit's fields, `name` and `data` (parsed JSON)."""
        return self._joined(study, unit_ids, "series", "data", json.loads)

    def files_frame(self, study: str, unit_ids: Iterable[str] | None = None) -> list[dict]:
        """One row per (unit, file): the unit's fields, `name` and `path` (relative to runs/<study>/)."""
        return self._joined(study, unit_ids, "files", "path", str)

    def units_frame(self, study: str, unit_ids: Iterable[str] | None = None) -> list[dict]:
        """One row per stored unit: its fields, `config` (parsed), `seconds`, `finished`, `version`,
        `compile_seconds`."""
        keep = None if unit_ids is None else set(unit_ids)
        q = (
            "SELECT unit_id, study, profile, process, kind, world, seed, sweep, config, seconds, finished, version, compile_seconds "
            "FROM units WHERE study = ? ORDER BY process, seed, unit_id"
        )
        rows = []
        for r in self._rows(q, (study,)):
            if keep is not None and r[0] not in keep:
                continue
            row = dict(zip(UNIT_FIELDS, r[:8]))
            row["sweep"] = json.loads(row["sweep"])
            row.update(config=json.loads(r[8]), seconds=r[9], finished=r[10], version=r[11], compile_seconds=r[12])
            rows.append(row)
        return rows

    def _joined(self, study: str, unit_ids, table: str, column: str, parse, name_key: str = "name") -> list[dict]:
        """Rows of `table` joined with their units: the unit's fields, `name_key` and `column`."""
        keep = None if unit_ids is None else set(unit_ids)
        q = (
            f"SELECT u.unit_id, u.study, u.profile, u.process, u.kind, u.world, u.seed, u.sweep, t.name, t.{column} "
            f"FROM units u JOIN {table} t ON u.unit_id = t.unit_id WHERE u.study = ? ORDER BY u.process, u.seed, u.unit_id, t.name"
        )
        rows = []
        for r in self._rows(q, (study,)):
            if keep is not None and r[0] not in keep:
                continue
            row = dict(zip(UNIT_FIELDS, r[:8]))
            row["sweep"] = json.loads(row["sweep"])
            row[name_key] = r[8]
            row[column] = parse(r[9])
            rows.append(row)
        return rows


def _real(v: Any) -> float | None:
    x = float(v)
    return None if math.isnan(x) else x
