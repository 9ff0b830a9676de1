"""The myopia and look-ahead kinds end to end at toy scale, the model options in other kinds, and
their bad input (tests/corpus/test_precaching.py checks the corpus pair itself)."""

from __future__ import annotations

import copy
import json
import math

import pytest

import simulacra.kinds  # noqa: F401  (registers the kinds)
from simulacra.studies import PROCESSES, Store, StudyError, run, study_from_dict

TINY_MODEL = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_mlp": 32, "steps": 6, "batch_size": 4, "warmup": 1}
MIX = "committed(0,0.1):1,committed(1,0.1):1"
TINY = {
    "name": "foresight",
    "description": "myopia and look-ahead at toy scale",
    "seeds": 2,
    "worlds": {"fork": {"task": "fork"}, "shown": {"task": "fork-visible"}, "switch": {"task": "offswitch", "knobs": {"horizon": 12}}},
    "corpora": {
        "hidden": {"world": "fork", "mixture": MIX, "episodes": 40, "seed": 0},
        "shown": {"world": "shown", "mixture": MIX, "episodes": 40, "seed": 0},
        "mix": {"world": "switch", "mixture": "seeker:1,presser:1,random:1", "episodes": 40, "seed": 0},
    },
    "lenses": {"behaviour": {"episodes": 16, "gif_episodes": 0}},
    "processes": {
        "my_hidden": {"kind": "myopia", "corpus": "hidden", "params": {**TINY_MODEL, "heldout": 40}},
        "my_shown": {"kind": "myopia", "corpus": "shown", "params": {**TINY_MODEL, "heldout": 40}},
        "look": {"kind": "lookahead", "corpus": "hidden", "params": {**TINY_MODEL, "heldout": 40, "offsets": [0, 2]},
                 "sweep": {"params.future_heads": [1, 2]}},
        "dt_heads": {"kind": "condition", "corpus": "mix", "params": {**TINY_MODEL, "future_heads": 2}},
        "ft_myopic": {"kind": "finetune", "corpus": "mix", "params": {**TINY_MODEL, "myopic": True, "updates": 2, "episodes": 8}},
    },
    "hypotheses": [
        {
            "id": "H12",
            "claim": "myopia costs more where pre-caching is needed",
            "seed": {"essay": "Emergence of Simulators and Agents", "sentence": "not fully myopic"},
            "metric": "myopia_gap",
            "compare": {"a": "my_hidden", "b": "my_shown"},
            "expect": "greater",
        },
    ],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study = study_from_dict(copy.deepcopy(TINY), source="foresight.yaml")
    summary = run(study, root=root, progress=False)
    return study, root, summary


def _by_unit(root):
    store = Store(root / "foresight" / "results.sqlite")
    by = {}
    for r in store.metrics_frame("foresight"):
        by.setdefault((r["process"], json.dumps(r["sweep"], sort_keys=True), r["seed"]), {})[r["metric"]] = r["value"]
    return store, by


def test_the_kinds_run_and_measure_what_they_declare(tiny_run):
    study, root, _ = tiny_run
    store, by = _by_unit(root)
    assert len(by) == 2 * 6
    for (process, _, _), metrics in by.items():
        assert set(metrics) == set(PROCESSES[study.processes[process].kind].metrics), process
    for (process, _, _), m in by.items():
        if process.startswith("my_"):
            assert m["myopia_gap"] == pytest.approx(m["excess_nats_myopic"] - m["excess_nats"], abs=1e-5)
            assert 0 <= m["hidden_steps"] <= 1
        if process == "my_hidden":  # the fork corpus hides the choice at about half its steps: ln 2 there
            assert 0.1 < m["hidden_information"] < 0.7 and m["hidden_steps"] > 0.2
            assert 0 <= m["choice_probe"] <= 1 and 0 <= m["choice_probe_myopic"] <= 1
            assert math.isfinite(m["myopia_gap_hidden"])
        if process == "my_shown":  # nothing hidden on the twin: no hidden steps to score or probe
            assert m["hidden_information"] == pytest.approx(0.0, abs=1e-9) and m["hidden_steps"] == 0
            assert math.isnan(m["choice_probe"]) and math.isnan(m["myopia_gap_hidden"])
        if process == "look":
            for k in ("lookahead", "lookahead_baseline", "lookahead_ideal", "lookahead_k1"):
                assert 0 <= m[k] <= 1 or (k == "lookahead_k1" and math.isnan(m[k])), (k, m[k])
            assert math.isnan(m["lookahead_k1"])  # offsets [0, 2]: nothing one step ahead
    series = [s for s in store.series_frame("foresight") if s["name"] == "lookahead"]
    assert len(series) == 4
    rows = series[0]["data"]["rows"]
    assert {(r["target"], r["offset"]) for r in rows} == {(t, k) for t in ("action", "cell", "event") for k in (0, 2)}
    assert {r["layer"] for r in rows} == {0, 1}  # the embedding and the one block


def test_the_myopic_and_the_ordinary_model_are_two_models(tiny_run):
    _, root, _ = tiny_run
    _, by = _by_unit(root)
    m = [v for (p, _, _), v in by.items() if p == "my_hidden"]
    assert all(x["excess_nats"] != x["excess_nats_myopic"] for x in m)  # myopic descent changed the weights


def _bad(change) -> str:
    spec = copy.deepcopy(TINY)
    change(spec)
    with pytest.raises(StudyError) as e:
        study_from_dict(spec, source="bad.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_model_options_get_one_clear_line():
    msg = _bad(lambda s: s["processes"].update(ppo={"kind": "reinforce", "world": "switch", "params": {"myopic": True}}))
    assert "processes.ppo.params.myopic" in msg and "cannot train myopically" in msg and "myopia" in msg
    msg = _bad(lambda s: s["processes"]["look"]["sweep"].update({"params.future_heads": [0, 2]}))
    assert "future_heads" in msg and "greater than or equal to 1" in msg
    msg = _bad(lambda s: s["processes"].update(ppo={"kind": "onset", "world": "switch", "params": {"future_heads": 2}}))
    assert "cannot give a model more output heads" in msg
    msg = _bad(lambda s: s["processes"]["ft_myopic"]["params"].update(pretrained=False))
    assert "with pretrained: false there is none" in msg
    msg = _bad(lambda s: s["processes"]["my_hidden"]["params"].update(myopic=True))
    assert "leave myopic unset" in msg
    msg = _bad(lambda s: s["processes"]["look"]["params"].update(offsets=[0, -1]))
    assert "offsets must be steps ahead" in msg
    msg = _bad(lambda s: s["processes"]["look"]["params"].update(offsets=[0]))
    assert "at least one step ahead" in msg


def test_an_offset_beyond_the_context_is_refused(tmp_path):
    spec = copy.deepcopy(TINY)
    spec["processes"] = {"look": {"kind": "lookahead", "corpus": "hidden", "params": {**TINY_MODEL, "offsets": [0, 16]}}}
    spec["hypotheses"] = []
    study = study_from_dict(spec, source="far.yaml")
    with pytest.raises(ValueError, match="offset 16 is beyond the context: episodes of this world have at most 16 steps"):
        run(study, root=tmp_path, progress=False)


def test_the_myopia_study_loads_for_both_profiles():
    from pathlib import Path

    from simulacra.studies import load_study

    path = Path(__file__).resolve().parents[2] / "studies" / "myopia.yaml"
    quick, full = load_study(path, "quick"), load_study(path, "full")
    assert [h.id for h in quick.hypotheses] == [h.id for h in full.hypotheses] == ["H12", "H13", "H13b"]
    assert quick.processes["heads_sim"].sweep == {"params.future_heads": [1, 2]}
    assert full.processes["heads_rl"].sweep == {"params.future_heads": [1, 2, 4]} and full.seeds >= 5
    assert quick.corpora["fork_hidden"].world == "fork" and quick.corpora["fork_shown"].world == "fork_visible"
    assert quick.corpora["fork_hidden"].mixture == quick.corpora["fork_shown"].mixture  # the twins differ in the world only
