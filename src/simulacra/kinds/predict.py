"""`predict`: a trajectory transformer trained on the corpus (`training.predict`) — a simulator
(`loss_on: trajectory`) or behaviour cloning (`loss_on: actions`) — acting unprompted or, with
`character: true`, prompted with every character of the corpus in turn (equal shares, pooled for
the behaviour metrics).

Adds `character_match`: the share of characters whose prompted behaviour is closer — in KL over
visited states — to that character's policy than to any other's. A model without character tags
is measured the same way on its unprompted behaviour, which matches exactly one character.
Series: `character_kl` (prompted × reference characters).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from simulacra.corpus import Corpus, Episodes
from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, act, measured
from simulacra.kinds.inputs import MODEL_METRICS, PREDICT_FIELDS, ModelFields, Sampling, get_corpus, get_models, train_metrics
from simulacra.kinds.sections import event_rates, misgeneralisation
from simulacra.lenses.conditioning import character_kl
from simulacra.model import Simulator
from simulacra.studies import Context, Result, register_process
from simulacra.training.predict import PredictConfig


class PredictParams(Sampling, ModelFields):
    """A simulator (`loss_on: trajectory`) or behaviour cloning (`loss_on: actions`)."""

    loss_on: Literal["trajectory", "actions"] = "trajectory"
    """Which tokens carry loss: every token after the prompt (a simulator), or the actions only."""
    character: bool = False
    """Train with character tags; acting then prompts every character in turn (equal shares)."""

    def predict_config(self) -> PredictConfig:
        """The training run: every `PredictConfig` field these params name (no return-to-go slots)."""
        return PredictConfig(**self.model_dump(include=PREDICT_FIELDS))


def _match(kl: np.ndarray) -> float:
    """Share of prompted characters (rows) whose closest reference character is themselves."""
    return float(np.mean(np.argmin(kl, axis=1) == np.arange(kl.shape[0])))


def _measure(sim: Simulator, ctx: Context, corpus: Corpus, seed: int) -> Result:
    mixture = corpus.mixture
    k = len(mixture.names)
    tagged = ctx.params.character
    parts = [act(sim, ctx, seed, character=c) for c in range(k)] if tagged else [act(sim, ctx, seed)]
    rows = [character_kl(episodes, mixture, ctx.measured_in) for episodes in parts]  # untagged: one row, the same for every prompt
    kl = np.stack(rows if tagged else rows * k)
    series = {"character_kl": {"characters": list(mixture.names), "kl": kl.tolist()}}
    return measured(ctx, seed, Episodes.concatenate(parts), corpus, {**train_metrics(sim), "character_match": _match(kl)}, series)


@register_process(
    "predict", params=PredictParams, metrics=BEHAVIOUR_METRICS + MODEL_METRICS + ("character_match",), needs_corpus=True,
    batch_seeds=True, lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(event_rates, misgeneralisation),
    description="a simulator (loss on the whole trajectory) or behaviour cloning (loss on actions), acting unprompted",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    corpus = get_corpus(ctx)
    sims = get_models(ctx, corpus, ctx.params.predict_config(), seeds)
    return [_measure(sim, ctx, corpus, seed) for sim, seed in zip(sims, seeds)]
