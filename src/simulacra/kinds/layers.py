"""`layers`: where RL fine-tuning changed a Decision Transformer. Per seed, block `layer` of the
fine-tuned model (the one `finetune` with the same fields makes, shared through the artifact
cache) against its reference (`lenses.layers`): the relative weight change, the linear CKA of its
residual output on the corpus, and `transplant_gain` — the return of the reference with only
that block taken from the fine-tuned model, minus the reference's own.
"""

from __future__ import annotations

from pydantic import Field

from simulacra.kinds.behaviour import act
from simulacra.kinds.inputs import FinetunedModelFields, block, get_corpus, get_finetuned
from simulacra.kinds.sections import inside_the_network
from simulacra.lenses import layers
from simulacra.studies import Context, Result, register_process


class LayersParams(FinetunedModelFields):
    """Block `layer` of the fine-tuned model (the fields above describe it) vs its reference."""

    layer: int = Field(0, ge=0)
    """The block compared (0 = first)."""


@register_process(
    "layers", params=LayersParams, metrics=("weight_change", "cka", "transplant_gain"), needs_corpus=True, batch_seeds=True,
    lenses=("behaviour",), sections=(inside_the_network,),
    description="where RL fine-tuning changed a Decision Transformer: block params.layer's weight change, CKA, "
    "and the return a transplant of it carries",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: LayersParams = ctx.params
    corpus = get_corpus(ctx)
    results = []
    for model, seed in zip(get_finetuned(ctx, corpus, seeds), seeds):
        name = f"blocks.{block(p.layer, model.reference.spec.n_layers)}"
        resid = f"{name}.hook_resid_post"
        cka = layers.cka_by_layer(model.reference, model.tuned, corpus, [resid])[resid]
        mixed = layers.transplant(model.reference, model.tuned, name)
        gain = act(mixed, ctx, seed, target=p.target).return_.mean() - act(model.reference, ctx, seed, target=p.target).return_.mean()
        change = layers.weight_change(model.reference, model.tuned)[name]
        results.append(Result({"weight_change": change, "cka": cka, "transplant_gain": float(gain)}))
    return results
