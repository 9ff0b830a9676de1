"""The persistent compilation cache: where it lives, how it is turned off, and that a study run
fills it and records each unit's compile time."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from simulacra.compilation import ENV, CompileTimer, cache_dir

STUDY = """
name: tiny
seeds: 1
lenses:
  behaviour: {episodes: 8, gif_episodes: 0}
worlds:
  coin: {task: coin-7x7, knobs: {horizon: 8}}
processes:
  ppo:
    kind: reinforce
    world: coin
    params: {total_steps: 512, n_envs: 8, n_steps: 8}
"""


def test_the_cache_directory_follows_the_override_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "simulacra" / "jax"
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    assert cache_dir(str(tmp_path / "flag")) == tmp_path / "flag"  # the command-line flag wins
    for off in ("off", "OFF", "0", "false"):
        monkeypatch.setenv(ENV, off)
        assert cache_dir() is None
    assert cache_dir("off") is None


def test_a_compile_timer_sees_compilations_and_not_cached_calls():
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + x.sum())
    x = jnp.arange(37.0)
    with CompileTimer() as first:
        f(x).block_until_ready()
    with CompileTimer() as again:
        f(x).block_until_ready()  # already compiled in this process
    assert first.seconds > 0 and again.seconds == 0


def test_a_study_run_fills_the_cache_and_stores_compile_times(tmp_path):
    (tmp_path / "tiny.yaml").write_text(STUDY)
    cache = tmp_path / "cache"
    cli = Path(sys.executable).with_name("simulacra")
    done = subprocess.run(
        [str(cli), "study", "run", "tiny.yaml", "--root", "runs", "--no-report", "--compile-cache", str(cache)],
        cwd=tmp_path, env={**os.environ, ENV: "off"}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert any(p.is_file() for p in cache.rglob("*")), "the run wrote nothing to the compilation cache"
    assert "compiling" in done.stdout
    with sqlite3.connect(tmp_path / "runs" / "tiny" / "results.sqlite") as db:
        (seconds, compiling), = db.execute("SELECT seconds, compile_seconds FROM units").fetchall()
    assert 0 < compiling <= seconds
