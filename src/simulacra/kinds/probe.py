"""`probe`: a linear probe (`lenses.probes`) for `probe` on the residual stream after block `layer`
of the corpus's Decision Transformer (`source: simulator`) or of its fine-tuned version
(`source: finetuned`, the model `finetune` with the same fields makes). Metrics: the probe's
cross-validated score, its control-task score, their difference (selectivity), and the score of
a constant baseline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simulacra.kinds.inputs import FinetunedModelFields, block, get_corpus, get_finetuned, get_models
from simulacra.kinds.sections import inside_the_network
from simulacra.lenses import probes
from simulacra.studies import Context, Result, register_process


class ProbeParams(FinetunedModelFields):
    """A probe of the Decision Transformer the model fields describe, or (`source: finetuned`) of its
    fine-tuned version, which the fine-tuning fields (target, temperature, beta, updates, episodes,
    ft_lr, pretrained) describe; with `source: simulator` those fields are not read."""

    source: Literal["simulator", "finetuned"] = "simulator"
    """Probe the Decision Transformer trained on the corpus, or its fine-tuned version."""
    probe: Literal["rtg", "coin_cell", "character", "posterior", "agent_cell"] = "rtg"
    """The probe's target."""
    layer: int = Field(-1, ge=-1)
    """The block after which the residual stream is probed (−1 = last)."""
    probe_episodes: int = Field(300, ge=10, le=1_000_000)
    """Corpus episodes the probe is fitted and cross-validated on (at most 10⁶)."""


@register_process(
    "probe", params=ProbeParams, metrics=("probe_score", "probe_control", "probe_selectivity", "probe_baseline"), needs_corpus=True,
    batch_seeds=True, sections=(inside_the_network,),
    description="a linear probe (lenses.probes) for params.probe after block params.layer of the corpus's Decision Transformer, "
    "or of its fine-tuned version",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: ProbeParams = ctx.params
    corpus = get_corpus(ctx)
    if p.source == "simulator":
        sims = get_models(ctx, corpus, p.predict_config(), seeds)
    else:
        sims = [model.tuned for model in get_finetuned(ctx, corpus, seeds)]
    results = []
    for sim, seed in zip(sims, seeds):
        name = f"blocks.{block(p.layer, sim.spec.n_layers)}.hook_resid_post"
        rows = probes.probe_layers(sim, corpus, which=(p.probe,), names=[name], max_episodes=p.probe_episodes, seed=seed)
        if not rows:
            raise ValueError(f"probe target {p.probe!r} is not defined for this corpus (no coin, or one character)")
        r = rows[0]
        results.append(Result({"probe_score": r["score"], "probe_control": r["control"], "probe_selectivity": r["selectivity"],
                               "probe_baseline": r["baseline"]}))  # fmt: skip
    return results
