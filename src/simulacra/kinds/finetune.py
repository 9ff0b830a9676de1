"""`finetune`: the Decision Transformer `condition` would train, fine-tuned by PPO with a KL
penalty β to itself (`training.finetune`), then prompted with `target` and measured; with
`pretrained: false` it starts from random weights instead (a transformer agent trained by RL
from scratch). Adds `kl` and `agreement` (the last update's KL to the reference, and the share of
steps on which the fine-tuned and the reference policy's most likely actions agree). Series:
`finetune` (per-update curves).
"""

from __future__ import annotations

from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, act, measured
from simulacra.kinds.inputs import MODEL_METRICS, FinetunedModelFields, get_corpus, get_finetuned, train_metrics
from simulacra.kinds.sections import event_rates, finetuning
from simulacra.studies import Context, Result, register_process


class FinetuneParams(FinetunedModelFields):
    """RL fine-tuning of a pretrained Decision Transformer (the model fields, trained on the corpus
    as `condition` would) or of a random initialisation of it."""


@register_process(
    "finetune", params=FinetuneParams, metrics=BEHAVIOUR_METRICS + MODEL_METRICS + ("kl", "agreement"), needs_corpus=True,
    batch_seeds=True, lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(finetuning, event_rates),
    description="RL fine-tuning with a KL penalty (training.finetune) of the Decision Transformer `condition` would train",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: FinetuneParams = ctx.params
    corpus = get_corpus(ctx)
    results = []
    for model, seed in zip(get_finetuned(ctx, corpus, seeds), seeds):
        episodes = act(model.tuned, ctx, seed, target=p.target)
        extra = {**train_metrics(model.reference), "kl": model.curve["kl"][-1], "agreement": model.curve["agreement"][-1]}
        results.append(measured(ctx, seed, episodes, corpus, extra, {"finetune": model.curve}))
    return results
