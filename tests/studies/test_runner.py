"""The runner and the store: units and their ids, skipping what is stored, shared artifacts,
batched seeds, and a real killed run that resumes with no duplicated or missing results."""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import tests.studies.fake_processes as fake
from simulacra.studies import LENSES, PROCESSES, Result, Store, StudyError, expand, findings, run, store_path, study_from_dict
from simulacra.studies.runner import UNIT_SCHEMA, Call, context
from tests.studies.test_study_files import BASE

ROOT = Path(__file__).resolve().parents[2]


def load(d: dict, profile: str | None = None):
    return study_from_dict(copy.deepcopy(d), profile, source="toy.yaml")


def test_expand_units_and_stable_ids():
    s = load(BASE)
    units = expand(s)
    # agent: 3 delays x 3 seeds; sim: 2 offsets x 3 seeds
    assert [(u.process, u.seed) for u in units[:4]] == [("agent", 0), ("agent", 1), ("agent", 2), ("agent", 0)]
    assert len(units) == 9 + 6 and len({u.unit_id for u in units}) == 15
    u = units[3]
    assert u.sweep == {"world.reward_delay": 1} and u.config["world"]["reward_delay"] == 1 and u.config["world"]["horizon"] == 30
    assert u.config["params"] == {"offset": 1.0, "slope": 0.5, "steps": 20}  # only what differs from the defaults
    assert u.config["lenses"] == {"fake_lens": {"episodes": 8}} and u.config["scale"] == {}
    assert u.config["kind_version"] == 1 and u.config["schema"] == UNIT_SCHEMA
    assert u.label == "agent reward_delay=1 seed=0"
    sim = units[9]
    assert sim.config["corpus"]["episodes"] == 50 and sim.config["corpus"]["world"]["horizon"] == 30
    assert sim.config["lenses"] == {} and sim.config["scale"] == {}
    # same config -> same ids; ids do not depend on the study's name or other processes
    again = expand(load({**BASE, "name": "renamed", "description": "other"}))
    assert [x.unit_id for x in again] == [x.unit_id for x in units]
    only_agent = expand(load(BASE, "agent_only"))
    assert [x.unit_id for x in only_agent] == [x.unit_id for x in units[:9]]
    # a changed parameter, knob or scale value changes exactly the units it reaches
    d = copy.deepcopy(BASE)
    d["processes"]["agent"]["params"]["offset"] = 2.0
    changed = expand(load(d))
    assert all(a.unit_id != b.unit_id for a, b in zip(changed[:9], units[:9]))
    assert [x.unit_id for x in changed[9:]] == [x.unit_id for x in units[9:]]
    d = copy.deepcopy(BASE)
    d["scale"]["episodes"] = 60  # reaches the sim's corpus only
    changed = expand(load(d))
    assert [x.unit_id for x in changed[:9]] == [x.unit_id for x in units[:9]]
    assert all(a.unit_id != b.unit_id for a, b in zip(changed[9:], units[9:]))


class ExtendedParams(fake.FakeParams):
    """FakeParams with a new optional field, as a later version of a kind might add."""

    warmup: int = 5


class ExtendedLens(fake.FakeLens):
    threshold: float = 0.5


def test_ids_survive_new_optional_fields(monkeypatch):
    before = [u.unit_id for u in expand(load(BASE))]
    monkeypatch.setitem(PROCESSES, "fake", dataclasses.replace(PROCESSES["fake"], params=ExtendedParams))
    monkeypatch.setitem(PROCESSES, "fake_corpus", dataclasses.replace(PROCESSES["fake_corpus"], params=ExtendedParams))
    monkeypatch.setitem(LENSES, "fake_lens", dataclasses.replace(LENSES["fake_lens"], settings=ExtendedLens))
    assert [u.unit_id for u in expand(load(BASE))] == before
    d = copy.deepcopy(BASE)
    d["processes"]["agent"]["params"]["warmup"] = 6  # a value other than the new default: new ids
    after = expand(load(d))
    assert all(a.unit_id != b for a, b in zip(after[:9], before[:9])) and [u.unit_id for u in after[9:]] == before[9:]


def test_a_param_set_to_its_default_gives_the_id_of_omitting_it():
    units = expand(load(BASE))
    d = copy.deepcopy(BASE)
    d["processes"]["agent"]["params"].update(noise=0.1, sleep=0)  # the defaults, one written as an int
    d["processes"]["sim"]["params"] = {"noise": 0.1}
    d["lenses"]["fake_lens"] = {"episodes": 8}
    assert [u.unit_id for u in expand(load(d))] == [u.unit_id for u in units]
    d["scale"]["evals"] = 4  # the kind's default scale value, set by the study
    assert [u.unit_id for u in expand(load(d))] == [u.unit_id for u in units]


def test_a_new_kind_version_changes_its_ids(monkeypatch):
    units = expand(load(BASE))
    monkeypatch.setitem(PROCESSES, "fake", dataclasses.replace(PROCESSES["fake"], version=2))
    bumped = expand(load(BASE))
    assert all(a.unit_id != b.unit_id for a, b in zip(bumped[:9], units[:9]))
    assert [u.unit_id for u in bumped[9:]] == [u.unit_id for u in units[9:]]  # the other kind's units keep theirs
    assert bumped[0].config["kind_version"] == 2


def test_context_has_typed_params_and_settings_with_defaults(tmp_path):
    u = expand(load(BASE))[9]  # sim: a corpus, offset 0.0 (the default), no lens
    ctx = context(Call(u.kind, {k: v for k, v in u.config.items() if k != "seed"}, (u.seed,), (u.unit_id,), str(tmp_path)))
    assert ctx.params == fake.FakeParams() and ctx.lenses == {} and ctx.scale == {}
    assert ctx.world.horizon == 30 and ctx.eval_world is None and ctx.measured_in == ctx.world
    assert ctx.corpus.episodes == 50 and ctx.corpus.world == ctx.world and ctx.corpus.key() == u.config["corpus"]
    a = expand(load(BASE))[0]
    ctx = context(Call(a.kind, {k: v for k, v in a.config.items() if k != "seed"}, (0,), (a.unit_id,), str(tmp_path)))
    assert ctx.params == fake.FakeParams(offset=1.0, slope=0.5, steps=20) and ctx.corpus is None
    assert ctx.lenses == {"fake_lens": fake.FakeLens(episodes=8)} and ctx.scale == {"evals": 4}


def test_world_sweep_reaches_the_corpus_world():
    d = copy.deepcopy(BASE)
    d["processes"]["sim"]["sweep"]["world.reward_delay"] = [0, 3]
    units = [u for u in expand(load(d)) if u.process == "sim"]
    assert {u.config["corpus"]["world"]["reward_delay"] for u in units} == {0, 3}
    assert all(u.config["corpus"]["world"] == u.config["world"] for u in units)


def test_run_stores_everything_and_never_recomputes(tmp_path):
    s = load(BASE, "quick")  # agent: 2 delays x 2 seeds, sim: 2 offsets x 2 seeds
    fake.CALLS.clear()
    fake.MADE.clear()
    summary = run(s, root=tmp_path, progress=False)
    assert (summary.units, summary.ran, summary.skipped) == (8, 8, 0)
    assert len(fake.CALLS) == 8
    assert len(fake.MADE) == 1  # the sim units share one corpus
    cache = tmp_path / "toy" / "cache"
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
    with Store(store_path(s, tmp_path)) as store:
        rows = store.metrics_frame("toy")
        assert len(rows) == 4 * 2 + 4 * 3  # agent: score, other; sim: + episodes
        for r in rows:
            if r["metric"] == "score" and r["process"] == "agent":
                params = fake.FakeParams(offset=1.0, slope=0.5)
                assert r["value"] == pytest.approx(fake.expected_score(params, r["sweep"]["world.reward_delay"], r["seed"]))
        assert {r["value"] for r in rows if r["metric"] == "episodes"} == {10.0}
        series = store.series_frame("toy")
        assert len(series) == 8 and series[0]["data"][2] is None  # NaN stored as null
        files = store.files_frame("toy")
        assert len(files) == 8 and (tmp_path / "toy" / files[0]["path"]).read_bytes() == f"seed {files[0]['seed']}".encode()
        assert store.status("toy", expand(s)) == {"units": 8, "done": 8, "pending": 0, "other": 0}
        configs = store.units_frame("toy")
        assert {c["unit_id"] for c in configs} == {u.unit_id for u in expand(s)} and all(c["profile"] == "quick" for c in configs)
        assert all(c["version"] == str(UNIT_SCHEMA) for c in configs)  # the store records the config's schema
    # again: nothing recomputed
    fake.CALLS.clear()
    summary = run(s, root=tmp_path, progress=False)
    assert (summary.ran, summary.skipped) == (0, 8) and fake.CALLS == []
    # the full profile adds seeds and delays; the shared units are not run again
    full = load(BASE)
    with Store(store_path(full, tmp_path)) as store:
        before = store.status("toy", expand(full))
    summary = run(full, root=tmp_path, progress=False)
    assert summary.skipped == before["done"] > 0 and summary.ran == 15 - summary.skipped
    assert len(fake.MADE) == 2  # the full profile's corpus is bigger: a new artifact


def test_batched_seeds_are_one_call_per_point_and_one_row_per_seed(tmp_path):
    d = copy.deepcopy(BASE)
    d["processes"] = {"agent": {**d["processes"]["agent"], "kind": "fake_batch"}}
    d["lenses"] = {}
    d["hypotheses"] = [BASE["hypotheses"][1]]
    s = load(d)
    fake.CALLS.clear()
    run(s, root=tmp_path, progress=False)
    assert fake.CALLS == [("fake_batch", (0, 1, 2))] * 3
    with Store(store_path(s, tmp_path)) as store:
        rows = [r for r in store.metrics_frame("toy") if r["metric"] == "score"]
        assert sorted((r["sweep"]["world.reward_delay"], r["seed"]) for r in rows) == [(k, s) for k in (0, 1, 2) for s in (0, 1, 2)]
        (f,) = findings(s, store)
    assert f.effect == pytest.approx(0.5, abs=0.15)


def test_failing_process_stops_or_is_skipped(tmp_path):
    @fake.register_process("fake_fails", params=fake.FakeParams, metrics=("score",))
    def fails(ctx, seeds):
        if seeds[0] == 1:
            raise RuntimeError("boom")
        return [Result({"score": 1.0})]

    d = {
        **copy.deepcopy(BASE),
        "processes": {"agent": {"kind": "fake_fails", "world": "coin"}},
        "hypotheses": [],
        "profiles": {},
        "lenses": {},
    }
    s = load(d)
    with pytest.raises(StudyError, match="agent seed=1: the process failed: RuntimeError: boom"):
        run(s, root=tmp_path, progress=False)
    summary = run(s, root=tmp_path, progress=False, keep_going=True)
    assert (summary.ran, summary.failed, summary.skipped) == (1, 1, 1)


@pytest.mark.parametrize(
    "returned,message",
    [
        ({"metrics": {"score": 1.0}}, "returned dict; each seed's result must be a Result"),
        (Result({"score": 1.0, "scor": 2.0}), r"returned undeclared metric\(s\) \['scor'\]; it declares score"),
        (Result({"score": "high"}), "returned a metric that is not a number"),
    ],
    ids=["dict", "undeclared", "not-a-number"],
)
def test_a_bad_result_stops_the_run_with_one_line(tmp_path, returned, message):
    @fake.register_process("fake_bad", params=fake.FakeParams, metrics=("score",))
    def bad(ctx, seeds):
        return [returned]

    d = {**copy.deepcopy(BASE), "processes": {"agent": {"kind": "fake_bad", "world": "coin"}}, "hypotheses": [], "profiles": {}}
    with pytest.raises(StudyError, match=r"process kind 'fake_bad' \(agent seed=0\) " + message) as e:
        run(load(d), root=tmp_path, progress=False)
    assert "\n" not in str(e.value)


CHILD = """
import sys
from simulacra.studies import cmd_run
cmd_run(sys.argv[1], root=sys.argv[2], plugins=["tests.studies.fake_processes"])
"""


def test_killed_run_resumes_without_duplicates_or_gaps(tmp_path):
    d = copy.deepcopy(BASE)
    d["seeds"] = 5
    d["processes"] = {
        "agent": {
            "kind": "fake",
            "world": "coin",
            "params": {"offset": 1.0, "slope": 0.5, "sleep": 0.3},
            "sweep": {"world.reward_delay": [0, 4]},
        }
    }
    d["hypotheses"] = [BASE["hypotheses"][1]]
    d["profiles"] = {}
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(d))
    runs = tmp_path / "runs"
    db = runs / "toy" / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}

    def stored() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db, timeout=10) as c:
                return c.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(runs)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while stored() < 3 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, child.stderr.read().decode()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()
    partial = stored()
    assert 3 <= partial < 10

    rerun = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(runs)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    s = load(d)
    units = expand(s)
    with sqlite3.connect(db) as c:
        ids = [r[0] for r in c.execute("SELECT unit_id FROM units")]
        metric_rows = c.execute("SELECT unit_id, name, value FROM metrics WHERE name = 'score'").fetchall()
    assert sorted(ids) == sorted(u.unit_id for u in units)  # every unit exactly once
    assert len(metric_rows) == 10
    by_id = {u.unit_id: u for u in units}
    for uid, _, value in metric_rows:
        u = by_id[uid]
        assert value == pytest.approx(fake.expected_score(fake.FakeParams(**u.config["params"]), u.config["world"]["reward_delay"], u.seed))
    assert f"{10 - partial} unit(s) run, {partial} already stored" in " ".join(rerun.stdout.split())


def test_one_run_at_a_time_and_status_creates_nothing(tmp_path):
    from simulacra.studies import cmd_status
    from simulacra.studies.runner import _Lock

    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(BASE))
    status = cmd_status(path, "quick", root=tmp_path / "runs")
    assert (status["done"], status["pending"]) == (0, 8) and not (tmp_path / "runs").exists()
    s = load(BASE, "quick")
    with _Lock(tmp_path / "runs" / "toy" / ".lock"):
        with pytest.raises(StudyError, match="another run of this study is in progress"):
            run(s, root=tmp_path / "runs", progress=False)
    assert run(s, root=tmp_path / "runs", progress=False).ran == 8
