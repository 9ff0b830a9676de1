"""Fake process kinds for the study tests: deterministic metrics, call counting, no training.

Imported by the tests and, for the kill test, by a child process (`plugins=["tests.studies.fake_processes"]`).

`fake`: score = offset + slope · world.reward_delay + noise · u(seed), with u(seed) a fixed
pseudo-random number in [-1, 1]; it sleeps `sleep` seconds first, and (with a corpus) gets a
fake corpus through the artifacts cache. `fake_batch`: the same, every seed of a point in one call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from simulacra.studies import register_lens, register_process

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


def expected_score(params: dict, world: dict, seed: int) -> float:
    return params["offset"] + params["slope"] * world["reward_delay"] + params["noise"] * u(seed)


def _corpus(config: dict, artifacts) -> dict | None:
    if config["corpus"] is None:
        return None

    def make() -> dict:
        MADE.append(config["corpus"])
        return {"episodes": config["corpus"]["episodes"]}

    def save(value: dict, path: Path) -> None:
        (path / "corpus.json").write_text(json.dumps(value))

    def load(path: Path) -> dict:
        return json.loads((path / "corpus.json").read_text())

    return artifacts.get_or_make({"artifact": "fake-corpus", **config["corpus"]}, make, save, load)


def _results(config: dict, artifacts, seeds: list[int]) -> list[dict]:
    p = config["params"]
    time.sleep(p["sleep"])
    corpus = _corpus(config, artifacts)
    out = []
    for s in seeds:
        metrics = {"score": expected_score(p, config["world"], s), "other": float(s)}
        if corpus is not None:
            metrics["episodes"] = float(corpus["episodes"])
        out.append({"metrics": metrics, "series": {"curve": [s, s + 1.0, float("nan")]}, "files": {"note.txt": f"seed {s}".encode()}})
    return out


@register_process("fake", params=FakeParams, metrics=("score", "other", "episodes"), lenses=("fake_lens",), scale={"evals": 4})
def fake(config: dict, artifacts, seeds: list[int]) -> list[dict]:
    CALLS.append(("fake", tuple(seeds)))
    return _results(config, artifacts, seeds)


@register_process("fake_batch", params=FakeParams, metrics=("score", "other", "episodes"), batch_seeds=True)
def fake_batch(config: dict, artifacts, seeds: list[int]) -> list[dict]:
    CALLS.append(("fake_batch", tuple(seeds)))
    return _results(config, artifacts, seeds)


@register_process("fake_corpus", params=FakeParams, metrics=("score", "other", "episodes"), needs_corpus=True)
def fake_corpus(config: dict, artifacts, seeds: list[int]) -> list[dict]:
    CALLS.append(("fake_corpus", tuple(seeds)))
    return _results(config, artifacts, seeds)
