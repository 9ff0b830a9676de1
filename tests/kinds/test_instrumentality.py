"""The instrumentality study's critic processes (H10-H10cj): a tiny study runs end to end with its
report section, the shipped study loads at both profiles, and bad inputs are one clear line with
the store untouched."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.cli import app
from simulacra.studies import PROCESSES, load_study, run
from simulacra.studies.resolve import study_from_dict

from tests.kinds.stored import metrics_by_unit
from tests.test_bad_input import bad_study_run_fails_cleanly

runner = CliRunner()
STUDY = Path(__file__).resolve().parents[2] / "studies" / "instrumentality.yaml"
TINY = {"documents": 120, "heldout": 40, "steps": 8, "warmup": 2, "d_model": 16, "d_mlp": 32, "batch_size": 8, "updates": 2,
        "ft_documents": 8, "generated": 16}  # fmt: skip


def tiny_study() -> dict:
    """The shipped study's critic part (H10-H10lj) at a tiny size; the oracle part (H11) is
    tests/kinds/test_oracle.py's."""
    raw = yaml.safe_load(STUDY.read_text())
    raw["seeds"] = 2
    raw["profiles"] = {}
    raw["processes"] = {k: p for k, p in raw["processes"].items() if not p["kind"].startswith("oracle")}
    raw["hypotheses"] = [h for h in raw["hypotheses"] if not h["id"].startswith("H11")]
    for key in ("worlds", "corpora", "lenses"):
        raw.pop(key, None)
    for p in raw["processes"].values():
        p["params"] = {**p["params"], **TINY}
        if "sweep" in p:
            p["sweep"] = {"params.gamma": [0.0, 1.0]}
    return raw


def test_the_tiny_instrumentality_study_runs_with_its_report(tmp_path):
    study = study_from_dict(tiny_study(), source="instrumentality.yaml")
    summary = run(study, root=tmp_path / "runs", progress=False)
    assert summary.failed == 0 and summary.units == 2 * (2 + 2 + 2 + 2 + 2 + 1 + 1)
    path = tmp_path / "instrumentality.yaml"
    path.write_text(yaml.safe_dump(tiny_study()))
    r = runner.invoke(app, ["study", "report", str(path), "--root", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "runs" / "instrumentality"
    report = (out / "report.md").read_text()
    assert "Critics and the feedback gap" in report and "Drift from the exact ideal against γ" in report
    assert (out / "figures" / "critic_drift.png").is_file() and (out / "figures" / "critic_tradeoff.png").is_file()
    samples = report[report.index("fine-tuned model writes") :].split("\n\n")[0]  # the samples table: a row per process and point
    assert samples.count("| critic_") == 6 and samples.count("| leash_") == 4 and samples.count("| mona_") == 2, samples
    by = metrics_by_unit(out, "instrumentality")
    # a tiny model's documents may all leave the grammar: then no persona shares to compare
    empty = {"persona_tv_before", "persona_tv_after", "persona_entropy_before", "persona_entropy_after"}
    for (process, _, _), m in by.items():
        assert set(m) == set(PROCESSES["text_critic"].metrics), process
        assert all(v is not None and math.isfinite(v) for k, v in m.items() if k not in empty), (process, m)
        assert m["drift"] == pytest.approx(m["excess_nats_after"] - m["excess_nats_before"])
        assert m["critic_gain"] == pytest.approx(m["critic_after"] - m["critic_before"])
    # every process fine-tunes the same pretrained simulator: one reference per seed
    assert len({(m["excess_nats_before"], seed) for (_, _, seed), m in by.items()}) == 2


def test_the_shipped_study_loads_at_both_profiles():
    quick, full = load_study(STUDY, "quick"), load_study(STUDY, "full")
    ids = ["H10", "H10j", "H10b", "H10bj", "H10c", "H10cj", "H10e", "H10ej", "H10et", "H10l", "H10lj", "H11", "H11s", "H11r", "H11b"]
    assert [h.id for h in quick.hypotheses] == [h.id for h in full.hypotheses] == ids
    assert quick.processes["critic_self"].sweep == {"params.gamma": [0.0, 1.0]} and quick.seeds == 3
    assert full.processes["critic_truth"].sweep == {"params.gamma": [0.0, 0.5, 0.9, 1.0]} and full.seeds >= 5
    assert quick.processes["mona_self"].params["gamma"] == 0.0 and quick.processes["mona_self"].params["approval"] == 1.0


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s["processes"]["critic_self"]["params"].update(critic="oracle"), "unknown critic 'oracle'"),
        (lambda s: s["processes"]["critic_self"].update(sweep={"params.gamma": [0.0, 1.5]}), "less than or equal to 1"),
        (lambda s: s["processes"]["mona_self"]["params"].update(gamma=-0.5), "greater than or equal to 0"),
        (lambda s: s["processes"]["critic_judge"]["params"].update(judge="pirate"), "unknown trait 'pirate'"),
        (lambda s: s["hypotheses"][2]["trend"].update(versus="mona_self"), "'params.gamma' is not swept by process 'mona_self'"),
        (lambda s: s["hypotheses"][2].update(expect="increasing"), "not allowed with trend with versus"),
        (lambda s: s["hypotheses"][2]["trend"].update(versus="critic_truth"), "versus names the trend's own process"),
    ],
)
def test_bad_instrumentality_studies_are_one_line_and_store_nothing(tmp_path, edit, words):
    raw = copy.deepcopy(tiny_study())
    edit(raw)
    bad_study_run_fails_cleanly(tmp_path, raw, words)
