"""`condition`: a Decision Transformer (`training.predict` with return-to-go slots) trained on the
corpus and prompted with `target`. The model does not depend on the target, so a process swept
over `params.target` trains one model per seed and prompts it with every target. Series:
`return_sweep` (the target, the achieved return with its interval, the corpus's best return).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulacra.corpus import Corpus, Episodes
from simulacra.model import Simulator

from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, act, measured
from simulacra.kinds.inputs import MODEL_METRICS, DecisionTransformerFields, Sampling, get_corpus, get_models, train_metrics
from simulacra.kinds.sections import event_rates, misgeneralisation, return_conditioning
from simulacra.lenses import behaviour
from simulacra.studies import Context, Result, register_process


class ConditionParams(Sampling, DecisionTransformerFields):
    """A Decision Transformer: return-to-go slots, prompted with `target` when acting."""

    target: float = 1.0
    """The return the model is asked for."""


def prompted(ctx: Context, seeds: list[int]) -> Iterator[tuple[int, Simulator, Corpus, Episodes]]:
    """Each seed's (seed, model, corpus, episodes): the corpus's Decision Transformers (trained
    together, through the artifact cache) prompted with `params.target` in the world they are
    measured in. `condition` and `oracle_dt` measure these."""
    p: ConditionParams = ctx.params
    corpus = get_corpus(ctx)
    for sim, seed in zip(get_models(ctx, corpus, p.predict_config(), seeds), seeds):
        yield seed, sim, corpus, act(sim, ctx, seed, target=p.target)


@register_process(
    "condition", params=ConditionParams, metrics=BEHAVIOUR_METRICS + MODEL_METRICS, needs_corpus=True, batch_seeds=True,
    lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(return_conditioning, event_rates, misgeneralisation),
    description="a Decision Transformer: trained with return-to-go slots, prompted with params.target "
    "(sweep it for the conditioning curve)",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: ConditionParams = ctx.params
    results = []
    for seed, sim, corpus, episodes in prompted(ctx, seeds):
        returns = np.asarray(episodes.return_, np.float64)
        low, high = behaviour.mean_ci(returns)[1:]
        sweep = {"targets": [p.target], "returns": [float(returns.mean())], "ci_low": [low], "ci_high": [high],
                 "corpus_best": float(np.max(corpus.episodes.return_))}  # fmt: skip
        results.append(measured(ctx, seed, episodes, corpus, train_metrics(sim), {"return_sweep": sweep}))
    return results
