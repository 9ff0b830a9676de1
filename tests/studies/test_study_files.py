"""Study specs: a valid file loads and resolves per profile; every kind of bad file gives one
`StudyError` line naming the field, the value and what is allowed, and writes nothing."""

from __future__ import annotations

import copy

import pytest
import yaml

import tests.studies.fake_processes  # noqa: F401  (registers the fake kinds)
from simulacra.studies import StudyError, cmd_run, load_study, study_from_dict

BASE = {
    "name": "toy",
    "description": "a toy study",
    "seeds": 3,
    "scale": {"episodes": 50, "steps": 20},
    "profiles": {
        "quick": {"seeds": 2, "scale": {"episodes": 10}, "sweep": {"agent": {"world.reward_delay": [0, 2]}}},
        "agent_only": {"processes": ["agent"]},
    },
    "worlds": {
        "coin": {"task": "coin-7x7", "knobs": {"horizon": 30}},
        "boxed": {"map": "#####\n#A..#\n#...#\n#..c#\n#####"},
    },
    "corpora": {"mixed": {"world": "coin", "mixture": "seeker:1,random:1", "episodes": "scale.episodes", "seed": 1}},
    "lenses": {"fake_lens": {"episodes": 8}},
    "processes": {
        "agent": {
            "kind": "fake",
            "world": "coin",
            "params": {"offset": 1.0, "slope": 0.5, "steps": "scale.steps"},
            "sweep": {"world.reward_delay": [0, 1, 2]},
        },
        "sim": {"kind": "fake_corpus", "corpus": "mixed", "sweep": {"params.offset": [0.0, 0.5]}},
    },
    "hypotheses": [
        {
            "id": "H1",
            "claim": "agents score higher than simulators",
            "seed": {"essay": "Simulators", "sentence": "RL makes agents"},
            "metric": "score",
            "compare": {"a": "agent", "b": {"process": "sim", "where": {"params.offset": 0.0}}},
            "expect": "greater",
        },
        {
            "id": "H2",
            "claim": "score grows with the delay",
            "seed": {"essay": "Simulators", "section": "feedback", "sentence": "the gap drives agency"},
            "metric": "score",
            "trend": {"process": "agent", "knob": "world.reward_delay"},
            "expect": "increasing",
        },
    ],
}


def load(d: dict, profile: str | None = None):
    return study_from_dict(copy.deepcopy(d), profile, source="toy.yaml")


def test_valid_study_resolves_profiles():
    s = load(BASE)
    assert s.seeds == 3 and s.profile is None
    assert s.corpora["mixed"].episodes == 50
    assert s.processes["agent"].params["steps"] == 20
    assert s.scale == {"evals": 4, "episodes": 50, "steps": 20}
    q = load(BASE, "quick")
    assert q.seeds == 2 and q.profile == "quick"
    assert q.corpora["mixed"].episodes == 10
    assert q.processes["agent"].sweep == {"world.reward_delay": [0, 2]}
    only = load(BASE, "agent_only")
    assert list(only.processes) == ["agent"]
    assert [h.id for h in only.hypotheses] == ["H2"]  # H1 needs sim, which this profile does not run


def test_load_study_from_yaml(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(BASE))
    s = load_study(path, "quick")
    assert s.name == "toy" and s.source == str(path) and s.hypotheses[1].seed.section == "feedback"


def mutate(path: str, value, base=BASE) -> dict:
    d = copy.deepcopy(base)
    *parents, last = path.split("/")
    node = d
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return d


class _Delete:
    def __repr__(self) -> str:  # stable test ids across xdist workers
        return "DELETE"


DELETE = _Delete()

BAD = [
    # (mutation path, value, substrings the one-line message must contain)
    ("worlds/coin/colour", "red", ["worlds.coin.colour", "unknown key 'colour'", "allowed: task, map, knobs"]),
    ("seeds", "three", ["seeds", "'three'", "integer"]),
    ("seeds", 0, ["seeds", "greater than or equal to 1"]),
    ("processes/agent/kind", "reinfroce", ["processes.agent.kind", "'reinfroce' is not a process kind", "known:", "fake_batch"]),
    ("processes/agent/sweep", {"world.reward_delay": []}, ["processes.agent.sweep", "empty list", "world.reward_delay"]),
    ("processes/agent/sweep", {"world.reward_dely": [1]}, ["processes.agent.sweep.world.reward_dely", "not a world knob", "reward_delay"]),
    ("processes/agent/sweep", {"world.reward_delay": [0, 99]}, ["processes.agent.sweep", "reward_delay=99"]),
    ("processes/agent/sweep", {"speed": [1]}, ["sweep key 'speed'", "world.<knob>"]),
    ("processes/agent/sweep", {"params.gama": [0.9]}, ["params.gama", "not a parameter of kind 'fake'", "offset"]),
    ("processes/agent/params", {"offset": "high"}, ["processes.agent.params.offset", "'high'", "number"]),
    ("processes/agent/params", {"ofset": 1.0}, ["processes.agent.params.ofset", "unknown key", "offset"]),
    ("processes/agent/params", {"steps": "scale.stepz"}, ["processes.agent.params.steps", "scale.stepz", "known: evals, episodes, steps"]),
    ("processes/agent/world", "nowhere", ["processes.agent.world", "'nowhere' is not a world", "coin, boxed"]),
    ("processes/sim", {"kind": "fake_corpus", "world": "coin"}, ["processes.sim.corpus", "trains on a corpus"]),
    ("processes/sim", {"kind": "fake"}, ["processes.sim", "neither a world nor a corpus"]),
    ("hypotheses/0/metric", "scor", ["hypotheses.0.metric", "'scor' is not a metric", "known: score, other, episodes"]),
    ("hypotheses/0/expect", "increasing", ["hypotheses.0", "'increasing' is not allowed with compare", "greater, less, different"]),
    ("hypotheses/0/expect", "bigger", ["hypotheses.0.expect", "'bigger'", "greater"]),
    ("hypotheses/0/compare", {"a": "agent", "b": "ghost"}, ["hypotheses.0.compare", "'ghost' is not a process"]),
    ("hypotheses/1/trend", {"process": "agent", "knob": "world.horizon"}, ["hypotheses.1.trend.knob", "not swept"]),
    (
        "hypotheses/0/compare",
        {"a": {"process": "agent", "where": {"world.reward_delay": 7}}, "b": "sim"},
        ["where.world.reward_delay", "7", "allowed: 0, 1, 2"],
    ),
    ("worlds/coin/knobs", {"reward_dely": 2}, ["worlds.coin.knobs", "'reward_dely' is not a world knob"]),
    ("worlds/coin/knobs", {"reward_delay": -1}, ["worlds.coin", "reward_delay=-1"]),
    ("worlds/coin/task", "coin-77", ["worlds.coin", "'coin-77' is not a task", "coin-7x7"]),
    ("corpora/mixed/mixture", "seeker:1,runner:1", ["corpora.mixed.mixture", "unknown character 'runner'"]),
    ("corpora/mixed/episodes", "lots", ["corpora.mixed.episodes", "'lots'", "scale.<name>"]),
    ("lenses", {"microscope": {}}, ["lenses.microscope", "not a lens", "fake_lens"]),
    ("lenses", {"fake_lens": {"episodes": "x"}}, ["lenses.fake_lens.episodes", "'x'", "integer"]),
    ("profiles/quick/scale", {"stepz": 1}, ["profiles.quick.scale.stepz", "not a scale value"]),
    ("profiles/quick/sweep", {"agent": {"world.reward_delay": []}}, ["profiles.quick.sweep.agent", "empty list"]),
    ("profiles/quick/hypotheses", ["H9"], ["profiles.quick.hypotheses.0", "'H9' is not a hypothesis"]),
    ("name", "../escape", ["name", "'../escape'", "directory"]),
    ("worlds", DELETE, ["is not a world", "the study has no worlds: section"]),  # worlds: is optional (world-less kinds)
]


@pytest.mark.parametrize("path,value,parts", BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in BAD])
def test_bad_study_gives_one_line_error(tmp_path, path, value, parts):
    d = mutate(path, value)
    with pytest.raises(StudyError) as e:
        load(d)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("toy.yaml: "), msg
    for p in parts:
        assert p in msg, (p, msg)
    # the CLI entry point validates before touching the disk: nothing is written
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(d))
    with pytest.raises(StudyError):
        cmd_run(file, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_yaml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: toy\nworlds: {coin: [task: coin-7x7\nseeds: 2\n")
    with pytest.raises(StudyError) as e:
        load_study(bad)
    msg = str(e.value)
    assert "\n" not in msg and "not valid YAML" in msg and "line" in msg, msg
    with pytest.raises(StudyError, match="no such study file"):
        load_study(tmp_path / "missing.yaml")
    with pytest.raises(StudyError, match="must be a mapping"):
        (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
        load_study(tmp_path / "list.yaml")
    with pytest.raises(StudyError, match="profile 'slow' is not in the study; known: quick, agent_only"):
        load(BASE, "slow")
    for p in ("bad.yaml", "missing.yaml"):
        with pytest.raises(StudyError):
            cmd_run(tmp_path / p, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_more_problems_are_counted():
    d = mutate("seeds", "x", mutate("worlds/coin/colour", "red"))
    with pytest.raises(StudyError, match=r"\(and 1 more problem\)"):
        load(d)


def test_only_keeps_the_named_hypotheses_and_their_processes(tmp_path):
    from simulacra.studies import Store, expand, store_path

    whole = load(BASE)
    cut = whole.only(["H2"])
    assert [h.id for h in cut.hypotheses] == ["H2"] and list(cut.processes) == ["agent"]
    # the cut-down run's units are exactly the whole study's units of those processes
    assert {u.unit_id for u in expand(cut)} == {u.unit_id for u in expand(whole) if u.process == "agent"}
    with pytest.raises(StudyError, match="--only 'H9' is not a hypothesis of this study; known: H1, H2") as e:
        whole.only(["H9"])
    assert "\n" not in str(e.value)
    with pytest.raises(StudyError, match="under profile 'agent_only'; known: H2"):
        load(BASE, "agent_only").only(["H1"])

    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(BASE))
    found = cmd_run(path, "quick", root=tmp_path / "runs", only=["H2"])
    assert [f.id for f in found] == ["H2"]
    quick = load_study(path, "quick")
    with Store(store_path(quick, tmp_path / "runs")) as store:
        done = store.done((u.unit_id for u in expand(quick)), study="toy")
    assert done == {u.unit_id for u in expand(quick) if u.process == "agent"}  # a later whole run finds them stored
