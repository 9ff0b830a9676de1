"""The report of a study: read its results store and write `runs/<study>/report.html` and
`report.md` (what `simulacra study report` and `simulacra study run` call), with the report
sections of the process kinds the study runs."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

import simulacra
from simulacra.report.render import write_report
from simulacra.report.sections import SectionProvider
from simulacra.studies import PROCESSES, Store, Study, StudyError, expand, findings, store_path, study_dir

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "pydantic", "matplotlib")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def section_providers(study: Study) -> list[SectionProvider]:
    """The report sections of the kinds the study runs (`ProcessKind.sections`), in the order of
    its processes, each once."""
    providers: list[SectionProvider] = []
    for process in study.processes.values():
        for provider in PROCESSES[process.kind].sections:
            if provider not in providers:
                providers.append(provider)
    return providers


def report_study(
    study: Study, root: str | Path = "runs", command: str | None = None, wall_clock_s: float | None = None
) -> tuple[Path, Path]:
    """Write the study's report from its store (units of the current expansion only)."""
    path = store_path(study, root)
    if not path.exists():
        raise StudyError(f"no results for study {study.name!r} yet ({path} does not exist): run `simulacra study run` first")
    units = expand(study)
    ids = [u.unit_id for u in units]
    with Store(path) as store:
        found = findings(study, store)
        rows = store.metrics_frame(study.name, ids)
        series = store.series_frame(study.name, ids)
        files = store.files_frame(study.name, ids)
        stored = store.units_frame(study.name, ids)
    meta = {
        "name": study.name,
        "description": getattr(study, "description", ""),
        "profile": study.profile or "default",
        "command": command or "simulacra study run " + " ".join(sys.argv[3:]),
        "simulacra_version": simulacra.__version__,
        "versions": versions(),
        "wall_clock_s": wall_clock_s if wall_clock_s is not None else sum(float(u.get("seconds") or 0) for u in stored),
        "units": f"{len(stored)} of {len(units)} stored",
        "configs": {u.unit_id: u.config for u in units},
    }
    out = study_dir(study, root)
    return write_report(out, found, rows, series, files, meta, sections=section_providers(study), base_dir=out)
