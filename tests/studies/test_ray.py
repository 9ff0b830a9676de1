"""The Ray executor: a study run as Ray tasks on a local two-worker cluster stores what the local
executor stores, and a rerun runs only what is missing; artifacts made by two writers at once;
leftovers of another machine's writes; Ray stays an optional extra."""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulacra.atomic import HOST, STALE_AFTER_S, write_dir
from simulacra.studies.artifacts import Artifacts

ROOT = Path(__file__).resolve().parents[2]
HAS_RAY = importlib.util.find_spec("ray") is not None

# The tiniest real process (PPO as in tests/test_compilation.py, two seeds in one call) beside a
# fake kind from a plugin module the workers must import, whose four calls share a fake corpus
# made through the artifacts cache. The `part` profile runs half of the fake points.
STUDY = """
name: tiny_ray
seeds: 2
profiles:
  part: {sweep: {fake: {params.offset: [0.0]}}}
lenses:
  behaviour: {episodes: 8, gif_episodes: 1}
worlds:
  coin: {task: coin-7x7, knobs: {horizon: 8}}
corpora:
  mix: {world: coin, mixture: "seeker:1,random:1", episodes: 10, seed: 0}
processes:
  ppo:
    kind: reinforce
    world: coin
    params: {total_steps: 512, n_envs: 8, n_steps: 8}
  fake:
    kind: fake_corpus
    corpus: mix
    sweep: {params.offset: [0.0, 0.5]}
"""


# -- a local Ray cluster ---------------------------------------------------------------------------


@pytest.fixture
def ray_cluster(tmp_path):
    """A Ray head on 127.0.0.1 with 2 CPUs (two worker processes), no dashboard, no usage stats;
    yields (address, the environment to reach it) and stops it, also when the test fails."""
    if not HAS_RAY:
        pytest.skip("ray is not installed (pip install 'simulacra[ray]')")
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray would otherwise replace 127.0.0.1 by the address of the machine's default route
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # a token for this cluster alone (Ray would otherwise write one to ~/.ray)
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "JAX_PLATFORMS": "cpu",
        "FAKE_MAKE_SECONDS": "2",  # the fake corpus is slow to make: calls asking for it meanwhile stop and run again later
    }
    env.pop("PYTHONPATH", None)  # the workers find the plugin module through the executor
    env.pop("RAY_ADDRESS", None)
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    cwd = tmp_path / "cluster"
    cwd.mkdir()
    port = free_port()
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in head.stdout:
            lines.append(line)
            if "Ray runtime started" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not started.wait(0.2):
            assert head.poll() is None and time.monotonic() < deadline, "ray start failed:\n" + "".join(lines)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        reader.join(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)


RAY_FIXED_PORTS = {6379, 8076, 8265, 10001, 52365}
"""Ports Ray's components take by default (GCS, object manager, dashboard, client server, the
dashboard agent's HTTP port): a random port equal to one of them makes `ray start` refuse
("trying to use a port number 52365 that is used by other components"), as one CI run saw."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now (for Ray to bind), and none of Ray's own defaults."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RAY_FIXED_PORTS:
            return port


def study_run(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("simulacra")
    command = [str(cli), "study", "run", "tiny.yaml", "--no-report", "--plugin", "tests.studies.fake_processes",
               "--compile-cache", str(cwd / "jax-cache"), *args]  # fmt: skip
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def stored(db: Path) -> dict:
    """What a results store holds, less wall-clock times."""
    with sqlite3.connect(db) as c:
        return {
            "units": sorted(c.execute("SELECT unit_id, process, seed, sweep, config FROM units")),
            "metrics": sorted(c.execute("SELECT unit_id, name, value FROM metrics WHERE name NOT LIKE '%seconds'")),
            "series": sorted(c.execute("SELECT unit_id, name, data FROM series")),
            "files": sorted(c.execute("SELECT unit_id, name, path FROM files")),
        }


def test_a_study_on_ray_stores_what_the_local_executor_stores(ray_cluster, tmp_path):
    address, cluster_env = ray_cluster
    (tmp_path / "tiny.yaml").write_text(STUDY)
    env = {**cluster_env, "PYTHONPATH": str(ROOT)}  # for the driver's --plugin
    study_run(tmp_path, env, "--root", "local")
    # on Ray: a part first (three calls at once), then the whole; the second run runs only what is missing
    part = study_run(tmp_path, env, "--root", "ray", "--profile", "part", "--executor", "ray", "--address", address)
    assert "4 unit(s) run, 0 already stored, 0 failed" in " ".join(part.stdout.split()), part.stdout
    rest = study_run(tmp_path, env, "--root", "ray", "--executor", "ray", "--address", address)
    assert "2 unit(s) run, 4 already stored, 0 failed" in " ".join(rest.stdout.split()), rest.stdout

    local, ray = stored(tmp_path / "local" / "tiny_ray" / "results.sqlite"), stored(tmp_path / "ray" / "tiny_ray" / "results.sqlite")
    assert len(local["units"]) == 6 and {m[1] for m in local["metrics"]} >= {"return", "fraction_of_optimal", "score"}
    for table in local:
        assert ray[table] == local[table], table
    for _, _, path in local["files"]:
        assert (tmp_path / "ray" / "tiny_ray" / path).read_bytes() == (tmp_path / "local" / "tiny_ray" / path).read_bytes()
    cache = tmp_path / "ray" / "tiny_ray" / "cache"
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]  # no temporary directory left


# -- artifacts made at once ------------------------------------------------------------------------


def test_a_directory_another_writer_finished_first_is_kept(tmp_path):
    target = tmp_path / "abc"

    def fill(tmp: Path) -> None:
        (tmp / "mine").write_text("late")
        write_dir(target, lambda t: (t / "theirs").write_text("first"), replace=False)  # meanwhile, elsewhere

    assert write_dir(target, fill, replace=False) == target
    assert [p.name for p in tmp_path.iterdir()] == ["abc"] and [p.name for p in target.iterdir()] == ["theirs"]
    write_dir(target, lambda t: (t / "new").write_text("x"))  # replace=True (the default) still replaces
    assert [p.name for p in target.iterdir()] == ["new"]


def test_two_makers_of_one_artifact_both_get_it_and_one_directory_stays(tmp_path):
    # two workers' caches of one folder on a filesystem without locks (with locks, b would wait
    # for a: tests/studies/test_pool.py)
    a, b = Artifacts(tmp_path, lock=False), Artifacts(tmp_path, lock=False)
    key = {"artifact": "corpus", "seed": 1}
    save = lambda value, path: (path / "v.txt").write_text(value)  # noqa: E731
    load = lambda path: (path / "v.txt").read_text()  # noqa: E731

    def make_a() -> str:
        assert b.get_or_make(key, lambda: "b", save, load) == "b"  # b makes and stores it while a works
        return "a"

    assert a.get_or_make(key, make_a, save, load) == "a" and a.made == b.made == 1
    assert Artifacts(tmp_path).get_or_make(key, lambda: pytest.fail("made again"), save, load) == "b"
    assert [p.name for p in tmp_path.iterdir()] == [a.path(key).name]
    # a directory without its key file is broken: the next maker replaces it
    broken = Artifacts(tmp_path).path({"artifact": "other"})
    broken.mkdir()
    (broken / "half").write_text("")
    assert Artifacts(tmp_path).get_or_make({"artifact": "other"}, lambda: "c", save, load) == "c"
    assert sorted(p.name for p in broken.iterdir()) == ["key.json", "v.txt"]


def test_leftovers_written_on_another_machine_are_judged_by_age(tmp_path):
    gone = 999_999_999  # no such process here
    entries = {
        f".corpus.tmp-{gone}@other-host-7-0000000a": True,  # another machine's pid: its write may be live
        f".corpus.tmp-{gone}@{HOST}-0000000b": False,  # this machine's, and its process is gone
        f".corpus.old-{gone}@other-host-7-0000000c": False,  # another machine's, too old
    }
    for name in entries:
        (tmp_path / name).mkdir()
    past = time.time() - STALE_AFTER_S - 60
    os.utime(tmp_path / f".corpus.old-{gone}@other-host-7-0000000c", (past, past))
    write_dir(tmp_path / "corpus", lambda tmp: None)
    assert {p.name for p in tmp_path.iterdir()} == {"corpus", *(name for name, kept in entries.items() if kept)}


# -- ray is optional -------------------------------------------------------------------------------


def test_the_local_path_does_not_import_ray():
    code = "import sys, simulacra.cli, simulacra.studies.ray_executor; assert 'ray' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_without_ray_the_ray_executor_is_one_line_and_exit_2(tmp_path, monkeypatch):
    from simulacra.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "tiny.yaml").write_text(STUDY)
    args = ["study", "run", str(tmp_path / "tiny.yaml"), "--root", str(tmp_path / "runs"), "--plugin", "tests.studies.fake_processes"]
    r = CliRunner().invoke(app, [*args, "--executor", "ray", "--no-report"])
    assert r.exit_code == 2 and "pip install 'simulacra[ray]'" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "runs").exists()
    r = CliRunner().invoke(app, [*args, "--address", "127.0.0.1:6379"])
    assert r.exit_code == 2 and "needs --executor ray" in r.output, r.output
