"""Reading a test study's results store back, for the kinds' end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

from simulacra.studies.store import Store


def metrics_by_unit(out: Path, study: str) -> dict[tuple[str, str, int], dict[str, float | None]]:
    """{(process, sweep as sorted JSON, seed): {metric: value}} of `out/results.sqlite`."""
    by: dict = {}
    for row in Store(out / "results.sqlite").metrics_frame(study):
        by.setdefault((row["process"], json.dumps(row["sweep"], sort_keys=True), row["seed"]), {})[row["metric"]] = row["value"]
    return by
