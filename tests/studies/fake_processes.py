"""Fake process kinds for the study tests: deterministic metrics, call counting, no training.

Imported by the tests and, for the kill test, by a child process (`plugins=["tests.studies.fake_processes"]`).

`fake`: score = offset + slope · world.reward_delay + noise · u(seed), with u(seed) a fixed
pseudo-random number in [-1, 1]; it sleeps `sleep` seconds first, and (with a corpus) gets a
fake corpus through the artifacts cache. `fake_batch`: the same, every seed of a point in one call.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from simulacra.studies import Context, Result, register_lens, register_process

CALLS: list[tuple[str, tuple[int, ...]]] = []
"""(kind, seeds) of every call in this process."""
MADE: list[dict] = []
"""Every fake corpus made (not loaded) in this process."""


class FakeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: float = 0.0
    """Added to the score."""
    slope: float = 0.0
    """Score per unit of the world's reward delay."""
    noise: float = 0.1
    """Scale of the per-seed deviation."""
    sleep: float = 0.0
    """Seconds to sleep per call."""
    steps: int = 10
    """Unused; a scale target."""


class FakeLens(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    episodes: int = 16
    """Unused."""


register_lens("fake_lens", FakeLens)


def u(seed: int) -> float:
    return float(np.random.default_rng(1000 + seed).uniform(-1, 1))


def expected_score(params: FakeParams, reward_delay: int, seed: int) -> float:
    return params.offset + params.slope * reward_delay + params.noise * u(seed)


def _corpus(ctx: Context) -> dict | None:
    if ctx.corpus is None:
        return None
    key = ctx.corpus.key()

    def make() -> dict:
        MADE.append(key)
        time.sleep(float(os.environ.get("FAKE_MAKE_SECONDS", "0")))  # a slow maker: the others defer, then wait
        log = os.environ.get("FAKE_MADE_LOG")  # tests of worker processes count what every process made
        if log:
            with open(log, "a") as f:
                f.write(json.dumps(key, sort_keys=True) + "\n")
        return {"episodes": ctx.corpus.episodes}

    def save(value: dict, path: Path) -> None:
        (path / "corpus.json").write_text(json.dumps(value))

    def load(path: Path) -> dict:
        return json.loads((path / "corpus.json").read_text())

    return ctx.artifacts.get_or_make({"artifact": "fake-corpus", **key}, make, save, load)


def _results(ctx: Context, seeds: list[int]) -> list[Result]:
    p = ctx.params
    time.sleep(p.sleep)
    corpus = _corpus(ctx)
    out = []
    for s in seeds:
        metrics = {"score": expected_score(p, ctx.world.reward_delay, s), "other": float(s)}
        if corpus is not None:
            metrics["episodes"] = float(corpus["episodes"])
        out.append(Result(metrics, series={"curve": [s, s + 1.0, float("nan")]}, files={"note.txt": f"seed {s}".encode()}))
    return out


@register_process("fake", params=FakeParams, metrics=("score", "other", "episodes"), lenses=("fake_lens",), scale={"evals": 4})
def fake(ctx: Context, seeds: list[int]) -> list[Result]:
    CALLS.append(("fake", tuple(seeds)))
    return _results(ctx, seeds)


@register_process("fake_batch", params=FakeParams, metrics=("score", "other", "episodes"), batch_seeds=True)
def fake_batch(ctx: Context, seeds: list[int]) -> list[Result]:
    CALLS.append(("fake_batch", tuple(seeds)))
    return _results(ctx, seeds)


@register_process("fake_corpus", params=FakeParams, metrics=("score", "other", "episodes"), needs_corpus=True)
def fake_corpus(ctx: Context, seeds: list[int]) -> list[Result]:
    CALLS.append(("fake_corpus", tuple(seeds)))
    return _results(ctx, seeds)
