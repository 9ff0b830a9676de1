"""The text world's process kinds in a study: a tiny study runs end to end (world-less
processes), and bad inputs are one clear line at load time with nothing stored."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.cli import app
from simulacra.studies import PROCESSES, load_study, run
from simulacra.studies.resolve import study_from_dict
from simulacra.studies.store import Store
from tests.test_bad_input import bad_study_run_fails_cleanly

runner = CliRunner()
STUDY = Path(__file__).resolve().parents[2] / "studies" / "text.yaml"
TINY = {"documents": 120, "heldout": 40, "steps": 8, "warmup": 2, "d_model": 16, "d_mlp": 32, "batch_size": 8}


def tiny_study() -> dict:
    raw = yaml.safe_load(STUDY.read_text())
    raw["seeds"] = 2
    raw["profiles"] = {}
    for name, p in raw["processes"].items():
        p["params"] = {**p["params"], **TINY}
        if p["kind"] == "text_finetune":
            p["params"].update(updates=2, ft_documents=8)
        if p["kind"] == "text_steer":
            p["params"].update(generated=8)
            p["sweep"] = {"params.steer_k": [0, 4]}
    return raw


def test_the_tiny_text_study_runs_and_every_metric_is_stored(tmp_path):
    study = study_from_dict(tiny_study(), source="text.yaml")
    summary = run(study, root=tmp_path / "runs", progress=False)
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(tiny_study()))
    r = runner.invoke(app, ["study", "report", str(path), "--root", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "runs" / "text" / "report.md").read_text()
    assert "Text personas" in report and "Steering against the exact law" in report and "Traits read from the last block" in report
    assert (tmp_path / "runs" / "text" / "figures" / "trait_probes.png").is_file()
    assert (tmp_path / "runs" / "text" / "figures" / "steering_law.png").is_file()
    assert summary.failed == 0
    store = Store(tmp_path / "runs" / "text" / "results.sqlite")
    by: dict = {}
    for r in store.metrics_frame("text"):
        by.setdefault((r["process"], json.dumps(r["sweep"], sort_keys=True), r["seed"]), {})[r["metric"]] = r["value"]
    assert len(by) == summary.units == 2 * (2 + 2 + 2 + 2 + 2)
    for (process, sweep, _), m in by.items():
        assert set(m) == set(PROCESSES[study.processes[process].kind].metrics), process
        # a tiny model's own documents may all leave the grammar: then there is no posterior to take the entropy of
        empty = {"persona_entropy_before", "persona_entropy_after"}
        assert all(v is not None and math.isfinite(v) for k, v in m.items() if k not in empty), (process, m)
        if process.startswith("rl_") and m["dream_valid_after"] > 0:
            assert math.isfinite(m["persona_entropy_after"]), (process, m)
        if process == "steer" and '"params.steer_k": 0' in sweep:
            assert m["steer_shift"] == 0.0
        if process == "traits":
            assert m["trait_chance"] <= m["trait_ideal"] <= 1
    # the fine-tuned model is trained once for its four units: the same reference numbers everywhere
    tuned = [m for (process, _, seed), m in by.items() if process.startswith("rl_") and seed == 0]
    assert len({m["swear_rate_after"] for m in tuned}) == 1


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s["processes"]["traits"]["params"].update(personas="pirate:1"), "unknown trait 'pirate'"),
        (lambda s: s["processes"]["traits"]["params"].update(personas="sailor:-1"), "not a probability weight"),
        (lambda s: s["processes"]["traits"]["params"].update(grammar=["tail.damn=3"]), "must look like state.word.term=value"),
        (lambda s: s["processes"]["steer"]["params"].update(trait="pirate"), "unknown trait 'pirate'"),
        (lambda s: s["processes"]["traits"]["params"].update(grid=True), "no grid embedding"),
        (lambda s: s.update(worlds={"w": {"task": "coin-7x7"}}) or s["processes"]["traits"].update(world="w"), "takes no world"),
        (lambda s: s["processes"]["traits"]["sweep"].update({"world.horizon": [10]}), "has no world to sweep"),
        (lambda s: s["processes"]["additive"]["params"].update(personas="sailor:1,friendly:1"), "needs a persona with neither"),
        (lambda s: s["processes"]["steer"]["params"].update(personas="sailor:1,friendly+sailor:1"), "with and without 'sailor'"),
        (lambda s: s["processes"]["rl_layers"]["params"].update(personas="sailor:1,plain:1"), "with and without 'friendly'"),
    ],
)
def test_bad_text_studies_are_one_line_and_store_nothing(tmp_path, edit, words):
    raw = copy.deepcopy(tiny_study())
    edit(raw)
    bad_study_run_fails_cleanly(tmp_path, raw, words)


def test_the_shipped_study_loads_at_both_profiles():
    for profile in ("quick", "full"):
        study = load_study(STUDY, profile)
        assert {h.id for h in study.hypotheses} == {"H14", "H14b", "H15", "H16", "H16b"}
