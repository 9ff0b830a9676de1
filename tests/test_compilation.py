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


def _compilations(fn) -> int:
    """How many XLA programs `fn()` compiles (JAX logs one line per compilation)."""
    import logging

    records = []

    class Count(logging.Handler):
        def emit(self, record):
            if "Finished XLA compilation" in record.getMessage():
                records.append(record)

    handler = Count()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        logger.removeHandler(handler)
    return len(records)


def test_a_rollout_gif_and_per_seed_weights_compile_few_programs():
    """Work done outside `jit` compiles one small program per operation and shape, each far dearer
    on a GPU than on a CPU (264 programs for the quick profile's H1 subset before this was fixed,
    254 of them single operations): a GIF of several episodes decodes them in one program, and
    taking each seed's weights out of a vmapped run compiles nothing."""
    from simulacra.characters import parse_mixture
    from simulacra.corpus import make_corpus
    from simulacra.kinds.behaviour import episodes_gif
    from simulacra.training.predict import PredictConfig, fit_seeds
    from simulacra.world import task

    world = task("coin-7x7", horizon=10)
    corpus = make_corpus(world, parse_mixture("random"), 16, seed=0)
    gif = lambda: episodes_gif(corpus.episodes, world, 3)  # noqa: E731
    gif()  # first call: the decoder and rendering compile
    assert _compilations(gif) == 0  # nothing again, not even for new episode lengths
    config = PredictConfig(steps=2, warmup=0, batch_size=2, d_model=8, n_layers=1, n_heads=1, d_mlp=8)
    fit_seeds(corpus, config, [0, 1], progress=False)
    # a new run compiles its two programs again (init and the step loop: new closures; the
    # persistent cache serves them in a study) and nothing else: the seeds' weights are sliced on the host
    assert _compilations(lambda: fit_seeds(corpus, config, [2, 3], progress=False)) == 2
    first = _compilations(lambda: episodes_gif(make_corpus(world, parse_mixture("random"), 16, seed=1).episodes, world, 2))
    assert first <= 3, first  # generating a corpus reuses its programs; only the GIF's decoder compiles for 2 episodes
