"""What the model kinds share: the groups of params that describe a model, and the inputs made
from them through the study's artifact cache — the corpus, the models trained on it, and the
fine-tuned models.

Field groups (each kind's params class composes the groups it uses, and only those):

* `ModelFields`: a trajectory transformer trained on the corpus (architecture, optimiser, grid
  embedding): predict, condition, finetune, layers, probe, steer;
* `Sampling`: the sampling temperature of a model that acts;
* `DecisionTransformerFields`: a `ModelFields` model with return-to-go slots: condition, and the
  model that finetune, layers and probe fine-tune or probe;
* `FinetuneFields`: RL fine-tuning of that Decision Transformer (`training.finetune`);
* `FinetunedModelFields`: both, the fine-tuned model of finetune, layers and probe.

A params class lists its groups last-first (`class PredictParams(Sampling, ModelFields)`):
pydantic orders fields from the last base to the first, and listings then show the model first.

Artifacts are keyed by what determines them, so processes share them: a corpus once per
`CorpusRef`, a model once per (corpus, training config, seed) — so a `condition` process swept over
`params.target` trains one model per seed — and a fine-tuned model once per (corpus, training
and fine-tuning config, world, seed), shared by finetune, layers and probe. Seed s trains with
`PRNGKey(s)`, fine-tunes with `fold_in(PRNGKey(s), 2)`, and initialises an untrained model with
`fold_in(PRNGKey(s), 3)`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, NamedTuple, TypeVar

import jax
from pydantic import BaseModel, ConfigDict, Field, model_validator

import simulacra
from simulacra.characters import parse_mixture
from simulacra.corpus import Corpus, make_corpus, top_fraction
from simulacra.model import Simulator
from simulacra.studies import Context, CorpusRef
from simulacra.training.finetune import FinetuneConfig, finetune_seeds
from simulacra.training.predict import PredictConfig, fit_seeds

PREDICT_FIELDS = frozenset(f.name for f in dataclasses.fields(PredictConfig))
FINETUNE_FIELDS = frozenset(f.name for f in dataclasses.fields(FinetuneConfig))
MODEL_METRICS = ("train_loss", "train_seconds")
"""The metrics of every kind that trains a model (from its card)."""


class Fields(BaseModel):
    """A group of params: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFields(Fields):
    """A trajectory transformer trained on the corpus (`training.predict.PredictConfig`; the
    AdamW weight decay is PredictConfig's). Sizes have generous upper bounds, so that a typo is
    refused when the study is loaded rather than failing (or allocating without end) in a run."""

    d_model: int = Field(64, ge=8, le=4096)
    """Width of the residual stream (at most 4096)."""
    n_layers: int = Field(2, ge=1, le=64)
    """Transformer blocks (at most 64)."""
    n_heads: int = Field(4, ge=1, le=64)
    """Attention heads per block (at most 64)."""
    d_mlp: int = Field(256, ge=8, le=16384)
    """Hidden width of each block's MLP (at most 16384)."""
    steps: int = Field(500, ge=1, le=10_000_000)
    """Gradient steps (at most 10⁷)."""
    batch_size: int = Field(16, ge=1, le=65_536)
    """Episodes per gradient step (at most 65536)."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate of training (AdamW, warm-up then cosine decay)."""
    warmup: int = Field(50, ge=0, le=10_000_000)
    """Warm-up steps of the learning rate (at most 10⁷)."""
    grid: bool = False
    """Add the grid embedding: shared row and column vectors for cells and scene tiles."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Compute precision: bfloat16 runs the matrix products in bfloat16 with float32 parameters
    and optimiser state (mixed precision, for GPUs; on a CPU it is usually slower)."""
    future_heads: int = Field(1, ge=1, le=16)
    """Output heads: head k predicts the token k ahead from a shared trunk (multi-token
    prediction, Gloeckle et al. 2024); the loss sums the heads, and acting and every lens read
    head 1. 1 is the ordinary model (at most 16)."""
    myopic: bool = False
    """Myopic training (Wu, Morris and Levine 2024): the loss at a position cannot shape what
    earlier positions compute for later ones (gradients to past keys and values are stopped);
    the model it makes runs like any other."""


class Sampling(Fields):
    """How a model samples its actions."""

    temperature: float = Field(1.0, ge=0)
    """Sampling temperature when acting (0: the most likely action)."""


class DecisionTransformerFields(ModelFields):
    """A Decision Transformer: a `ModelFields` model with a return-to-go slot before every state."""

    loss_on: Literal["trajectory", "actions"] = "actions"
    """Which tokens carry loss: every token after the prompt, or the actions only."""
    rtg_numeric: bool = False
    """Embed each return-to-go token as its number (a learned line) instead of a row of its own."""

    def predict_config(self) -> PredictConfig:
        """Its training run: every `PredictConfig` field these params name, with return-to-go slots."""
        return PredictConfig(rtg=True, **self.model_dump(include=PREDICT_FIELDS))


class FinetuneFields(Sampling):
    """RL fine-tuning (PPO with a KL penalty to the frozen reference, `training.finetune`) of the
    Decision Transformer, prompted with `target`, sampling at `temperature`."""

    target: float = 1.0
    """The return the model is asked for."""
    beta: float = Field(0.1, ge=0)
    """KL coefficient."""
    updates: int = Field(20, ge=1, le=100_000)
    """PPO updates (at most 100000)."""
    episodes: int = Field(64, ge=2, le=65_536)
    """Episodes per update (at most 65536)."""
    ft_lr: float = Field(1e-4, gt=0)
    """Learning rate of fine-tuning (`FinetuneConfig.lr`; `lr` is the pretraining's)."""
    pretrained: bool = True
    """Start from the Decision Transformer trained on the corpus; false: from a random
    initialisation of the same architecture (a transformer agent trained by RL from scratch)."""

    def finetune_config(self) -> FinetuneConfig:
        """Its fine-tuning run: `ft_lr` is the learning rate, and the temperature is at least 1e-3
        (fine-tuning samples even when acting is greedy)."""
        same = self.model_dump(include=FINETUNE_FIELDS - {"lr", "temperature"})
        return FinetuneConfig(lr=self.ft_lr, temperature=max(self.temperature, 1e-3), **same)


class FinetunedModelFields(FinetuneFields, DecisionTransformerFields):
    """A Decision Transformer trained on the corpus (or initialised at random), then fine-tuned."""

    @model_validator(mode="after")
    def _myopic_needs_pretraining(self):
        if self.myopic and not self.pretrained:
            raise ValueError("myopic training applies to the prediction pretraining, and with pretrained: false there is none")
        return self


def get_corpus(ctx: Context) -> Corpus | None:
    """The unit's corpus, generated once per `CorpusRef` (through the artifact cache); a ref with
    `top` is the top fraction of its whole corpus (itself cached under the whole corpus's key)."""
    return None if ctx.corpus is None else _corpus(ctx, ctx.corpus)


HELDOUT_SEED = 1_000_003
"""Held-out episodes are the corpus's world and mixture generated with the corpus's seed + this."""


def get_heldout(ctx: Context, episodes: int) -> Corpus:
    """`episodes` fresh episodes of the unit's corpus's world and mixture (seed + `HELDOUT_SEED`),
    through the artifact cache: what models trained on the corpus are scored and probed on."""
    return _corpus(ctx, dataclasses.replace(ctx.corpus, episodes=episodes, seed=ctx.corpus.seed + HELDOUT_SEED, top=None))


def _corpus(ctx: Context, ref: CorpusRef) -> Corpus:
    if ref.top is None:
        make = lambda: make_corpus(ref.world, parse_mixture(ref.mixture), ref.episodes, seed=ref.seed)  # noqa: E731
    else:
        make = lambda: top_fraction(_corpus(ctx, dataclasses.replace(ref, top=None)), ref.top)  # noqa: E731
    return ctx.artifacts.get_or_make(
        {"artifact": "corpus", **ref.key(), "version": simulacra.__version__},
        make,
        lambda corpus, path: corpus.save(path / "corpus"),
        lambda path: Corpus.load(path / "corpus"),
    )


def _save(sim: Simulator, path) -> None:
    sim.save(path / "model")


def _load(path) -> Simulator:
    return Simulator.load(path / "model")


T = TypeVar("T")


def made_together(ctx: Context, keys: list[dict], make_missing: Callable[[list[int]], list[T]], save, load) -> list[T]:
    """Each key's artifact through the study's cache; those not cached yet are made by one call
    `make_missing(indices)` (e.g. every missing seed's model in one vmapped run)."""
    made: dict[int, T] = {}

    def make(i: int) -> T:
        if not made:
            missing = [j for j, k in enumerate(keys) if not ctx.artifacts.has(k)]
            made.update(zip(missing, make_missing(missing)))
        return made[i]

    return [ctx.artifacts.get_or_make(k, lambda i=i: make(i), save, load) for i, k in enumerate(keys)]


def get_models(ctx: Context, corpus: Corpus, config: PredictConfig, seeds: list[int]) -> list[Simulator]:
    """Models trained on the corpus, one per seed, cached per (corpus, training config, seed);
    the seeds not yet cached are trained together (`training.predict.fit_seeds`)."""
    corpus_key, train = ctx.corpus.key(), dataclasses.asdict(config)

    def key(s: int) -> dict:
        return {"artifact": "model", "corpus": corpus_key, "train": train, "seed": s, "version": simulacra.__version__}

    trained: dict[int, Simulator] = {}

    def make(s: int) -> Simulator:
        if not trained:
            missing = [t for t in seeds if not ctx.artifacts.has(key(t))]
            trained.update(zip(missing, fit_seeds(corpus, config, missing, progress=False)))
        return trained[s]

    return [ctx.artifacts.get_or_make(key(s), lambda s=s: make(s), _save, _load) for s in seeds]


class Finetuned(NamedTuple):
    """A fine-tuned model with the model it started from."""

    reference: Simulator
    """The starting point (and the KL penalty's reference)."""
    tuned: Simulator
    """After the last update."""
    curve: dict[str, list]
    """Per-update metrics of `training.finetune`, with `update` (1-based)."""


def get_finetuned(ctx: Context, corpus: Corpus, seeds: list[int]) -> list[Finetuned]:
    """The fine-tuned model of each seed (`ctx.params` are `FinetunedModelFields`), cached per
    (corpus, model and fine-tuning config, world, seed)."""
    p: FinetunedModelFields = ctx.params
    config = p.predict_config()
    if p.pretrained:
        references = get_models(ctx, corpus, config, seeds)
    else:
        references = []
        for s in seeds:
            sim = Simulator.init(config.spec, corpus.params, jax.random.fold_in(jax.random.PRNGKey(s), 3))
            sim.card = {"corpus": {"mixture": corpus.mixture.to_list()}, "process": {"name": "init"}}
            references.append(sim)
    ft = p.finetune_config()

    def key(seed: int) -> dict:
        return {
            "artifact": "finetuned",
            "corpus": ctx.corpus.key(),
            "train": dataclasses.asdict(config),
            "pretrained": p.pretrained,
            "finetune": dataclasses.asdict(ft),
            "world": ctx.world.to_dict(),
            "seed": seed,
            "version": simulacra.__version__,
        }

    # the seeds not fine-tuned yet are fine-tuned together, vmapped (one compilation)
    missing = [(r, s) for r, s in zip(references, seeds) if not ctx.artifacts.has(key(s))]
    made: dict[int, Simulator] = {}
    if missing:
        fold = [jax.random.fold_in(jax.random.PRNGKey(s), 2) for _, s in missing]
        for (_, s), res in zip(missing, finetune_seeds([r for r, _ in missing], ft, fold, world=ctx.world, progress=False)):
            res.sim.card["curve"] = {k: [float(x) for x in v] for k, v in res.metrics.items()}
            made[s] = res.sim
    out = []
    for reference, seed in zip(references, seeds):
        tuned = ctx.artifacts.get_or_make(key(seed), lambda seed=seed: made[seed], _save, _load)
        curve = {**tuned.card["curve"], "update": list(range(1, p.updates + 1))}
        out.append(Finetuned(reference, tuned, curve))
    return out


def train_metrics(sim: Simulator) -> dict[str, float]:
    """`MODEL_METRICS` from the model's card (the last steps' loss, seconds per seed)."""
    m = sim.card.get("metrics", {})
    return {"train_loss": float(m.get("train_loss_last", float("nan"))), "train_seconds": float(m.get("train_seconds", float("nan")))}


def block(layer: int, n_layers: int) -> int:
    """The block index of a `layer` param (−1: the last), or a ValueError if the model has none."""
    b = n_layers - 1 if layer == -1 else layer
    if not 0 <= b < n_layers:
        raise ValueError(f"layer {layer} does not exist: the model has {n_layers} blocks (0..{n_layers - 1}, or -1 for the last)")
    return b
