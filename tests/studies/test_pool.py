"""The `processes` executor: a study run in two worker processes stores what the local executor
stores, makes each shared artifact once, and a rerun runs only what is missing; the artifact lock
makes a second maker wait; bad --workers values are one line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulacra.studies.artifacts import Artifacts
from simulacra.studies.pool import ProcessExecutor, auto_workers, parse_workers, spread
from simulacra.studies.runner import Call, ExecutorOptions
from simulacra.studies.workers import error_text
from tests.studies.test_ray import ROOT, STUDY, stored

# the Ray test's study; its `part` profile runs PPO only, so the rest's four fake calls, in three
# workers, ask for their shared corpus at once
SLOW = STUDY.replace("part: {sweep: {fake: {params.offset: [0.0]}}}", "part: {processes: [ppo]}")
assert SLOW != STUDY


def study_run(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("simulacra")
    command = [str(cli), "study", "run", "tiny.yaml", "--no-report", "--plugin", "tests.studies.fake_processes",
               "--compile-cache", "off", *args]  # fmt: skip
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_a_study_in_worker_processes_stores_what_the_local_executor_stores(tmp_path):
    import os

    (tmp_path / "tiny.yaml").write_text(SLOW)
    log = tmp_path / "made.log"
    # the corpus takes 2 s to make: calls asking for it meanwhile stop and run again later
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "FAKE_MADE_LOG": str(log), "FAKE_MAKE_SECONDS": "2"}
    env.pop("SIMULACRA_WORKERS", None)
    study_run(tmp_path, env, "--root", "local", "--executor", "local")
    assert len(log.read_text().splitlines()) == 1
    log.unlink()
    part = study_run(tmp_path, env, "--root", "pool", "--profile", "part", "--workers", "2")
    assert "2 unit(s) run, 0 already stored, 0 failed" in " ".join(part.stdout.split()), part.stdout
    rest = study_run(tmp_path, env, "--root", "pool", "--workers", "3")
    assert "4 unit(s) run, 2 already stored, 0 failed" in " ".join(rest.stdout.split()), rest.stdout
    assert len(log.read_text().splitlines()) == 1  # the shared corpus was made once, by one worker

    local, pool = stored(tmp_path / "local" / "tiny_ray" / "results.sqlite"), stored(tmp_path / "pool" / "tiny_ray" / "results.sqlite")
    assert len(local["units"]) == 6
    for table in local:
        assert pool[table] == local[table], table
    for _, _, path in local["files"]:
        assert (tmp_path / "pool" / "tiny_ray" / path).read_bytes() == (tmp_path / "local" / "tiny_ray" / path).read_bytes()
    cache = tmp_path / "pool" / "tiny_ray" / "cache"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no lock or temporary left


def test_a_second_maker_waits_for_the_first_and_loads_what_it_made(tmp_path):
    """…unless it is deferring: then, in its first seconds, it gives up (`ArtifactBusy`)."""
    from simulacra.studies.artifacts import ArtifactBusy

    a, b = Artifacts(tmp_path), Artifacts(tmp_path)  # two workers' caches of one folder
    key = {"artifact": "model", "seed": 3}
    save = lambda value, path: (path / "v.txt").write_text(value)  # noqa: E731
    load = lambda path: (path / "v.txt").read_text()  # noqa: E731
    making, release, got = threading.Event(), threading.Event(), {}

    def slow() -> str:
        making.set()
        assert release.wait(30)
        return "a"

    first = threading.Thread(target=lambda: got.setdefault("a", a.get_or_make(key, slow, save, load)))
    first.start()
    assert making.wait(30)
    with b.deferring(60), pytest.raises(ArtifactBusy, match="being made by another process"):
        b.get_or_make(key, lambda: "b", save, load)
    assert (tmp_path / f".{a.path(key).name}.lock").exists()  # the maker's lock is left alone

    def waiting() -> None:
        with b.deferring(0):  # past a call's first seconds it waits, as without deferring
            got.setdefault("b", b.get_or_make(key, lambda: "b", save, load))

    second = threading.Thread(target=waiting)
    second.start()
    time.sleep(0.3)
    assert second.is_alive() and "b" not in got  # b waits while a holds the lock
    release.set()
    first.join(30)
    second.join(30)
    assert got == {"a": "a", "b": "a"} and (a.made, b.made, b.loaded) == (1, 0, 1)
    assert [p.name for p in tmp_path.iterdir()] == [a.path(key).name]  # the lock file is gone


def test_calls_sharing_a_corpus_are_spread_apart():
    def call(name: str, corpus: str | None) -> Call:
        return Call("fake", {"process": name, "corpus": None if corpus is None else {"name": corpus}}, (0,), (name,), "cache")

    calls = [call("a1", "A"), call("a2", "A"), call("a3", "A"), call("b1", "B"), call("b2", "B"), call("x", None), call("y", None)]
    # A's three calls at 1/6, 3/6 and 5/6 of the queue, B's two at 1/4 and 3/4, x and y at 1/2
    # (after A's, the larger group, where they tie)
    assert [c.config["process"] for c in spread(calls)] == ["a1", "b1", "a2", "x", "y", "b2", "a3"]
    assert 1 <= auto_workers() <= 4


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], "invalid --workers='0'"),
        (["--workers", "many"], "invalid --workers='many'"),
        (["--workers", "2", "--executor", "local"], "needs --executor processes"),
    ],
)
def test_bad_workers_are_one_line_and_exit_2(tmp_path, args, words):
    from simulacra.cli import app

    (tmp_path / "tiny.yaml").write_text(STUDY)
    base = ["study", "run", str(tmp_path / "tiny.yaml"), "--root", str(tmp_path / "runs"), "--plugin", "tests.studies.fake_processes"]
    r = CliRunner().invoke(app, [*base, *args, "--no-report"])
    assert r.exit_code == 2 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "runs").exists()


def test_a_bad_workers_variable_is_one_line_and_exit_2(tmp_path, monkeypatch):
    from simulacra.cli import app

    monkeypatch.setenv("SIMULACRA_WORKERS", "-1")
    (tmp_path / "tiny.yaml").write_text(STUDY)
    r = CliRunner().invoke(app, ["study", "run", str(tmp_path / "tiny.yaml"), "--root", str(tmp_path / "runs"), "--no-report"])
    assert r.exit_code == 2 and "invalid SIMULACRA_WORKERS='-1'" in r.output, r.output


def test_the_number_of_workers_is_a_positive_count_or_auto():
    assert parse_workers(None) is None and parse_workers("auto") is None and parse_workers(" Auto ") is None
    assert parse_workers("3") == 3 and parse_workers(2) == 2
    for bad in ("0", "-1", "many", "", 0, True, 2.5):
        with pytest.raises(ValueError, match="positive number of worker processes, or auto"):
            parse_workers(bad, "--workers")
    # the Python API takes what the command line takes
    assert ProcessExecutor(ExecutorOptions(workers="auto")).workers == auto_workers()
    assert ProcessExecutor(ExecutorOptions(workers=3)).workers == 3
    with pytest.raises(ValueError, match="invalid ExecutorOptions.workers=0"):
        ProcessExecutor(ExecutorOptions(workers=0))


def test_a_workers_error_ends_with_a_line_naming_it():
    assert error_text(RuntimeError()) == "RuntimeError"
    assert error_text(RuntimeError("boom")) == "RuntimeError: boom"
    assert error_text(RuntimeError("trace\nValueError: bad")) == "trace\nValueError: bad\nRuntimeError: ValueError: bad"
    assert error_text(RuntimeError("trace\nRuntimeError: bad")) == "trace\nRuntimeError: bad"


def test_a_deferred_call_stops_without_an_error_while_its_corpus_is_made_elsewhere(tmp_path):
    import simulacra.kinds  # noqa: F401  registers the built-in kinds (the study's ppo)
    import tests.studies.fake_processes  # noqa: F401  registers fake_corpus
    from simulacra.studies import load_study
    from simulacra.studies.runner import _calls, context, execute, expand

    (tmp_path / "tiny.yaml").write_text(STUDY)
    study = load_study(tmp_path / "tiny.yaml")
    calls, _ = _calls([u for u in expand(study) if u.kind == "fake_corpus"], tmp_path / "cache")
    call = calls[0]
    key = {"artifact": "fake-corpus", **context(call).corpus.key()}
    other = Artifacts(tmp_path / "cache")  # another process's cache of the same folder
    making, release = threading.Event(), threading.Event()

    def slow() -> dict:
        making.set()
        assert release.wait(30)
        return {"episodes": 10}

    save = lambda value, path: (path / "corpus.json").write_text(json.dumps(value))  # noqa: E731
    maker = threading.Thread(target=lambda: other.get_or_make(key, slow, save, lambda path: None))
    maker.start()
    assert making.wait(30)
    try:
        outcome = execute(dataclasses.replace(call, defer=True))
        assert outcome.deferred and outcome.error is None and outcome.results is None
    finally:
        release.set()
        maker.join(30)
    outcome = execute(call)  # run again: the corpus is made, the call finishes
    assert not outcome.deferred and outcome.error is None and [r.metrics["episodes"] for r in outcome.results] == [10.0]
