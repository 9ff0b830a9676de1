"""The instrumentality study's oracle processes (H11-H11b): a tiny study runs end to end with its
report section, the metrics mean what they say, and bad inputs are one clear line with the store
untouched."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.cli import app
from simulacra.kinds.oracle import answered_with, check_oracle, optimal_choices, oracle_metrics
from simulacra.studies import PROCESSES, run
from simulacra.studies.resolve import study_from_dict

from tests.kinds.stored import metrics_by_unit
from simulacra.world import task
from tests.test_bad_input import bad_study_run_fails_cleanly

runner = CliRunner()
STUDY = Path(__file__).resolve().parents[2] / "studies" / "instrumentality.yaml"
PPO = {"total_steps": 2048, "n_envs": 16, "n_steps": 16}
DT = {"steps": 8, "warmup": 2, "d_model": 16, "d_mlp": 32, "batch_size": 8}


def tiny_study() -> dict:
    """The shipped study's oracle part (H11-H11b) at a tiny size."""
    raw = yaml.safe_load(STUDY.read_text())
    raw["seeds"] = 2
    raw["profiles"] = {}
    raw["processes"] = {k: p for k, p in raw["processes"].items() if p["kind"].startswith("oracle")}
    raw["hypotheses"] = [h for h in raw["hypotheses"] if h["id"].startswith("H11")]
    raw["corpora"]["oracle_mix"]["episodes"] = 60
    raw["lenses"] = {"behaviour": {"episodes": 16, "gif_episodes": 1}}
    for p in raw["processes"].values():
        p["params"] = {**p["params"], **(PPO if p["kind"] == "oracle_ppo" else DT)}
    return raw


def test_the_tiny_oracle_study_runs_with_its_report(tmp_path):
    study = study_from_dict(tiny_study(), source="instrumentality.yaml")
    summary = run(study, root=tmp_path / "runs", progress=False)
    assert summary.failed == 0 and summary.units == 2 * (2 + 2 + 1)
    path = tmp_path / "instrumentality.yaml"
    path.write_text(yaml.safe_dump(tiny_study()))
    r = runner.invoke(app, ["study", "report", str(path), "--root", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "runs" / "instrumentality"
    report = (out / "report.md").read_text()
    assert "Prediction as the last step" in report and (out / "figures" / "oracle_choices.png").is_file()
    by = metrics_by_unit(out, "instrumentality")
    for (process, sweep, _), m in by.items():
        kind = "oracle_dt" if process == "oracle_dt" else "oracle_ppo"
        assert set(m) == set(PROCESSES[kind].metrics), process
        for k in ("rate_clue", "rate_fix", "rate_hedge", "rate_answer", "regret"):
            assert m[k] is not None and math.isfinite(m[k]), (process, k)
        fix_value = json.loads(sweep).get("world.fix_value", 1)  # oracle_outside trains where fix_value is 1
        if process != "oracle_outside":  # the exact optimum takes the clue when fix_value is 0, the fixer when 1
            assert (m["optimal_rate_clue"], m["optimal_rate_fix"]) == ((1.0, 0.0) if fix_value == 0 else (0.0, 1.0))
            assert m["regret"] >= -0.02  # no actor beats the optimum by more than the evaluation's noise
        else:  # outside the episode nothing is graded: the optimum takes neither, and nothing is answered
            assert m["rate_answer"] == 0.0 and m["rate_hedge"] == 0.0 and math.isnan(m["rate_unanswered"])


def test_oracle_metrics_read_the_episodes_right():
    from simulacra.characters import parse_mixture
    from simulacra.corpus import make_corpus

    w = task("oracle")
    c = make_corpus(w, parse_mixture("sleuth(0):1,hedger(0):1"), n_episodes=40, seed=1)
    which = answered_with(c.episodes, w)
    who = np.asarray(c.episodes.character)
    assert np.all(which[who == 1] == 2) and np.all(np.isin(which[who == 0], [0, 1]))
    m = oracle_metrics(c.episodes, w)
    assert m["rate_clue"] == pytest.approx(np.mean(who == 0)) and m["rate_hedge"] == pytest.approx(np.mean(who == 1))
    assert m["rate_answer"] == 1.0 and m["rate_unanswered"] == 0.0
    # the sleuth's regret is the noise-free optimum's (0 on average); the hedger's is log 0.99 - log 0.5 plus 8 steps less
    assert m["optimal_value"] == pytest.approx(-0.110, abs=1e-3) and optimal_choices(w)["optimal_rate_clue"] == 1.0
    regret_hedger = -0.110 - (2 * -0.01 + math.log(0.5))
    assert m["regret"] == pytest.approx(np.mean(np.where(who == 1, regret_hedger, 0.0)), abs=0.03)


def test_check_oracle_names_what_a_world_lacks():
    check_oracle(task("oracle"))
    with pytest.raises(ValueError, match="lacks a clue tile 'C'"):
        check_oracle(task("oracle").replace(layout=tuple(r.replace("C", ".") for r in task("oracle").layout)))
    with pytest.raises(ValueError, match="lacks a clue tile 'C' and a fixer tile 'F' and an answer tile"):
        check_oracle(task("coin-7x7"))


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s["worlds"].update(oracle={"task": "oracle", "knobs": {"fix_value": 2}}), "fix_value"),
        (lambda s: s["worlds"].update(oracle={"map": "#######\n#..A.F#\n#.....#\n#0.?.1#\n#######"}), "lacks a clue tile 'C'"),
        (lambda s: s["worlds"].update(oracle={"task": "oracle", "knobs": {"sparse": True}}), "answer tiles"),
        (lambda s: s["processes"]["oracle_ppo"].update(sweep={"world.fix_value": [0, 3]}), "must be 0 or 1"),
        (lambda s: s["worlds"].update(oracle={"task": "oracle", "knobs": {"answer_confidence": 1.0}}), "answer_confidence"),
    ],
)
def test_bad_oracle_studies_are_one_line_and_store_nothing(tmp_path, edit, words):
    raw = copy.deepcopy(tiny_study())
    edit(raw)
    bad_study_run_fails_cleanly(tmp_path, raw, words)
