"""`steer`: a character-tagged simulator (`training.predict` with character tags) prompted as
`away`, with k · (tag `toward` − tag `away`) added to the residual stream after block `layer`
(`lenses.steering`), then measured; adds `match_rate`, the share of episodes whose final ideal
posterior's most likely character is `toward`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, act, measured
from simulacra.kinds.inputs import MODEL_METRICS, PREDICT_FIELDS, ModelFields, Sampling, block, get_corpus, get_models, train_metrics
from simulacra.kinds.sections import event_rates
from simulacra.lenses import steering
from simulacra.studies import Context, Result, register_process
from simulacra.training.predict import PredictConfig


class SteerParams(Sampling, ModelFields):
    """Steering a character-tagged simulator: prompted as `away`, with k · (tag `toward` − tag `away`)
    added to the residual stream after block `layer` (−1 = last)."""

    loss_on: Literal["trajectory", "actions"] = "trajectory"
    """Which tokens carry loss: every token after the prompt (a simulator), or the actions only."""
    toward: str
    """The character steered towards (a name in the corpus's mixture)."""
    away: str
    """The character prompted, steered away from."""
    k: float = 0.0
    """Steering strength."""
    layer: int = Field(-1, ge=-1)
    """The block after which the direction is added (−1 = last)."""

    def predict_config(self) -> PredictConfig:
        """The training run: every `PredictConfig` field these params name, with character tags."""
        return PredictConfig(character=True, **self.model_dump(include=PREDICT_FIELDS))


@register_process(
    "steer", params=SteerParams, metrics=BEHAVIOUR_METRICS + MODEL_METRICS + ("match_rate",), needs_corpus=True, batch_seeds=True,
    lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(event_rates,),
    description="a character-tagged simulator prompted as params.away and steered by k along (tag toward − tag away); "
    "match_rate towards params.toward",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: SteerParams = ctx.params
    corpus = get_corpus(ctx)
    results = []
    for sim, seed in zip(get_models(ctx, corpus, p.predict_config(), seeds), seeds):
        name = f"blocks.{block(p.layer, sim.spec.n_layers)}.hook_resid_post"
        direction = steering.tag_direction(sim, corpus, name, p.toward, p.away)
        episodes = act(sim, ctx, seed, character=p.away, hooks=steering.steering_hooks(name, direction, p.k))
        match = steering.character_match_rate(episodes, ctx.measured_in, corpus.mixture, p.toward)
        results.append(measured(ctx, seed, episodes, corpus, {**train_metrics(sim), "match_rate": match}))
    return results
