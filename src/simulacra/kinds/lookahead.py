"""`lookahead`: how far ahead a simulator's residual stream predicts (`lenses.lookahead`).

A simulator (loss on the whole trajectory) is trained on the corpus, with `future_heads` output
heads (multi-token prediction; 1 is the ordinary model) and optionally `myopic`. On held-out
episodes of the same world and mixture it is scored against the exact ideal (next-token head),
and linear probes read, after the embedding and after each block, the action, the agent's cell and
the event k steps ahead of the position that predicts a_t. Each probe stands beside its control
task, the same probe on a randomly initialised model, and the same probe on the ideal predictor's
sufficient statistic: what the Bayes-optimal predictor knows of step t+k at step t, the ceiling.

Metrics, per seed (targets and offsets k >= 1 averaged; "best block" is the block whose probe scores highest):

    excess_nats            the next-token head's excess log-loss over the ideal (nats/token, all scored tokens)
    lookahead              the best block's probe accuracy
    lookahead_selectivity  the best block's accuracy minus its control task's
    lookahead_baseline     the best block's accuracy on a randomly initialised model
    lookahead_ideal        the ideal ceiling
    lookahead_k1           the best block's accuracy for the action one step ahead
    train_seconds          wall time of training

Series `lookahead`: every probe row (layer, target, offset, score, control, selectivity, baseline,
ideal, chance, n); the report draws them (`kinds.sections.lookahead_curves`).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from simulacra.corpus.ideal import compute_ideal
from simulacra.kinds.inputs import PREDICT_FIELDS, ModelFields, get_corpus, get_heldout, get_models, train_metrics
from simulacra.kinds.sections import LOOKAHEAD_SERIES, lookahead_curves
from simulacra.lenses import fidelity
from simulacra.lenses.lookahead import LOOKAHEAD_TARGETS, lookahead
from simulacra.studies import Context, Result, register_process
from simulacra.training.predict import PredictConfig

METRICS = (
    "excess_nats", "lookahead", "lookahead_selectivity", "lookahead_baseline", "lookahead_ideal", "lookahead_k1", "train_seconds",
)  # fmt: skip


class LookaheadParams(ModelFields):
    """A simulator of the corpus (`future_heads`, `myopic` and the other model fields) and its probes."""

    offsets: tuple[int, ...] = (0, 1, 2, 4)
    """Steps ahead the probes read (at least one >= 1; each below the world's horizon)."""
    targets: tuple[str, ...] = LOOKAHEAD_TARGETS
    """What the probes read k steps ahead: the action, the agent's cell, the event."""
    heldout: int = Field(256, ge=16, le=100_000)
    """Held-out episodes the model is scored and probed on (at most 10⁵)."""

    @field_validator("offsets")
    @classmethod
    def _offsets(cls, v):
        if any(k < 0 for k in v):
            raise ValueError(f"offsets must be steps ahead (>= 0), got {list(v)}")
        if not any(k >= 1 for k in v):
            raise ValueError(f"offsets need at least one step ahead (>= 1), got {list(v)}")
        return tuple(sorted(set(v)))

    @field_validator("targets")
    @classmethod
    def _targets(cls, v):
        bad = [t for t in v if t not in LOOKAHEAD_TARGETS]
        if bad or not v:
            raise ValueError(f"unknown look-ahead target(s) {bad or '(none given)'}; known: {', '.join(LOOKAHEAD_TARGETS)}")
        return tuple(v)

    def predict_config(self) -> PredictConfig:
        return PredictConfig(**self.model_dump(include=PREDICT_FIELDS))


def _summary(rows: list[dict]) -> dict[str, float]:
    ahead = [r for r in rows if r["offset"] >= 1]
    best: dict[tuple, dict] = {}
    for r in ahead:
        key = (r["target"], r["offset"])
        if key not in best or r["score"] > best[key]["score"]:
            best[key] = r
    top = list(best.values())
    mean = lambda f: float(np.mean([r[f] for r in top])) if top else float("nan")  # noqa: E731
    base: dict[tuple, float] = {}
    for r in ahead:
        key = (r["target"], r["offset"])
        base[key] = max(base.get(key, -np.inf), r["baseline"])
    k1 = [r["score"] for r in top if r["target"] == "action" and r["offset"] == 1]
    return {
        "lookahead": mean("score"),
        "lookahead_selectivity": mean("selectivity"),
        "lookahead_baseline": float(np.mean(list(base.values()))) if base else float("nan"),
        "lookahead_ideal": mean("ideal"),
        "lookahead_k1": k1[0] if k1 else float("nan"),
    }


@register_process(
    "lookahead", params=LookaheadParams, metrics=METRICS, needs_corpus=True, batch_seeds=True, sections=(lookahead_curves,),
    description="a simulator of the corpus (optionally with several output heads, or myopic), probed block by block for "
    "the action, cell and event k steps ahead, against the ideal's ceiling",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: LookaheadParams = ctx.params
    corpus = get_corpus(ctx)
    horizon = corpus.params.horizon
    if max(p.offsets) >= horizon:
        raise ValueError(f"offset {max(p.offsets)} is beyond the context: episodes of this world have at most {horizon} steps")
    sims = get_models(ctx, corpus, p.predict_config(), seeds)
    held = get_heldout(ctx, p.heldout)
    ideal = compute_ideal(held)  # once: the same held-out episodes for every seed
    results = []
    for sim, seed in zip(sims, seeds):
        fid = fidelity.scores(sim, held, ideal)
        rows = lookahead(sim, held, offsets=p.offsets, which=p.targets, max_episodes=p.heldout, seed=seed, ideal=ideal)
        metrics = {"excess_nats": fid["by_type"]["all"]["excess"], **_summary(rows), "train_seconds": train_metrics(sim)["train_seconds"]}
        clean = [{k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in r.items()} for r in rows]
        results.append(Result(metrics, {LOOKAHEAD_SERIES: {"rows": clean}}))
    return results
