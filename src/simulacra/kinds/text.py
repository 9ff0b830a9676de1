"""The text world's process kinds (docs/text.md): world-less kinds whose params say what they
make — the personas, the number of documents, the grammar's overrides and the model.

* `text_traits` — a text simulator (or, with `trained: false`, a random-init one) probed per
  trait against the ideal's Bayes accuracy, a readout of the ideal posterior, and the additivity
  of trait offsets (`labels: personas`) or of the same with the documents' personas shuffled
  (`labels: shuffled`, the control);
* `text_steer` — the simulator generating with `steer_k` × a trait's direction added at the last
  block: swear words per document, against the ideal's rates;
* `text_finetune` — the simulator fine-tuned by PPO against swearing (`simulacra.text.finetune`):
  block `layer`'s weight change, CKA and transplant, and the shift of the last block's mean
  activation along the friendly direction (`direction: friendly`) or along random unit
  directions (`direction: random`);
* `text_critic` — the simulator fine-tuned by PPO on its own documents, each word graded by a
  critic (`simulacra.text.critics`: the exact law, its own predictability, one persona's law) with
  later grades discounted by `gamma`, optionally with the ideal's approval (H10–H10c): its drift
  from the exact ideal, the personas of its own documents, their entropy, and whether its first
  words moved toward futures the critic grades well.

Corpora, trained models and fine-tuned models go through the study's artifact cache, so the
sweep points of one model (layers, directions, steering coefficients) train it once.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import jax
import numpy as np
from pydantic import Field, field_validator, model_validator

import simulacra
from simulacra.kinds.inputs import HELDOUT_SEED, PREDICT_FIELDS, ModelFields, made_together
from simulacra.kinds.sections import SAMPLES, critic_drift, text_personas
from simulacra.studies import Context, Result, register_process
from simulacra.text import TRAITS, TextCorpus, default_grammar, make_text_corpus, parse_personas, persona_traits
from simulacra.text.model import TextSimulator, excess_nats, fit_text
from simulacra.training.predict import PredictConfig

MAX_DOCUMENTS = 1_000_000


class TextFields(ModelFields):
    """A text corpus (personas, documents, grammar overrides, seed) and the simulator trained on it."""

    personas: str = "all"
    """The persona mixture, e.g. `friendly+sailor:1,sailor:1`, or `all` (docs/text.md)."""
    documents: int = Field(4000, ge=16, le=MAX_DOCUMENTS)
    """Training documents (at most 10⁶)."""
    corpus_seed: int = Field(0, ge=0, lt=2**31)
    """Seed of the training corpus (held-out documents use seed + `HELDOUT_SEED`)."""
    grammar: tuple[str, ...] = ()
    """Grammar overrides, e.g. `[tail.damn.sailor=3, max_sentences=2]`."""
    heldout: int = Field(400, ge=16, le=100_000)
    """Held-out documents the lenses read."""

    @field_validator("personas")
    @classmethod
    def _personas(cls, v: str) -> str:
        parse_personas(v)
        return v

    @field_validator("grammar")
    @classmethod
    def _grammar(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        default_grammar().override(v)
        return v

    @field_validator("grid")
    @classmethod
    def _no_grid(cls, v: bool) -> bool:
        if v:
            raise ValueError("a text model has no grid embedding (there is no grid)")
        return v

    def predict_config(self) -> PredictConfig:
        return PredictConfig(**self.model_dump(include=PREDICT_FIELDS))

    def _varies(self, trait: str, why: str) -> None:
        """Refuse a mixture in which `trait` does not vary (`why`: what needs it)."""
        j = TRAITS.index(trait)
        has = {persona_traits(p)[j] for p in parse_personas(self.personas).personas}
        if has != {0, 1}:
            raise ValueError(f"personas {self.personas!r}: {why} needs personas with and without {trait!r}")


def _corpus(ctx: Context, p: TextFields, heldout: bool = False) -> TextCorpus:
    grammar = default_grammar().override(p.grammar)
    n = p.heldout if heldout else p.documents
    seed = p.corpus_seed + (HELDOUT_SEED if heldout else 0)
    key = {"artifact": "text_corpus", "grammar": list(p.grammar), "personas": p.personas, "documents": n, "seed": seed,
           "version": simulacra.__version__}  # fmt: skip
    return ctx.artifacts.get_or_make(
        key,
        lambda: make_text_corpus(grammar, parse_personas(p.personas), n, seed=seed),
        lambda corpus, path: corpus.save(path / "corpus"),
        lambda path: TextCorpus.load(path / "corpus"),
    )


def _model_key(p: TextFields, seed: int) -> dict:
    return {"artifact": "text_model", "grammar": list(p.grammar), "personas": p.personas, "documents": p.documents,
            "corpus_seed": p.corpus_seed, "train": dataclasses.asdict(p.predict_config()), "seed": seed, "version": simulacra.__version__}  # fmt: skip


def get_text_models(ctx: Context, p: TextFields, seeds: list[int]) -> list[TextSimulator]:
    """Text simulators of the params' corpus, one per seed, cached; missing seeds trained together."""
    return made_together(ctx, [_model_key(p, s) for s in seeds],
                         lambda missing: fit_text(_corpus(ctx, p), p.predict_config(), [seeds[j] for j in missing], progress=False),
                         _save_model, _load_model)  # fmt: skip


def _save_model(model: TextSimulator, path) -> None:
    model.save(path / "model")


def _load_model(path) -> TextSimulator:
    return TextSimulator.load(path / "model")


def _last(sim: TextSimulator) -> str:
    return f"blocks.{sim.spec.n_layers - 1}.hook_resid_post"


# -- text_traits ------------------------------------------------------------------------------------


class TraitParams(TextFields):
    trained: bool = True
    """False: a random-init model of the same architecture (the baseline of H14)."""
    labels: Literal["personas", "shuffled"] = "personas"
    """Additivity with the documents' own personas, or with them shuffled (the control)."""
    pair: tuple[str, str] = ("friendly", "sailor")
    """The two traits whose additivity is measured."""

    @model_validator(mode="after")
    def _corners(self):
        a, b = (1 << TRAITS.index(t) for t in self.pair)
        have = set(parse_personas(self.personas).personas)
        if not any(p0 & (a | b) == 0 and {p0, p0 | a, p0 | b, p0 | a | b} <= have for p0 in have):
            raise ValueError(f"personas {self.personas!r}: additivity of {'+'.join(self.pair)} needs a persona with neither, "
                             f"only {self.pair[0]}, only {self.pair[1]} and both (on one background)")  # fmt: skip
        return self

    @field_validator("pair")
    @classmethod
    def _pair(cls, v):
        for t in v:
            if t not in TRAITS:
                raise ValueError(f"unknown trait {t!r}; traits are {', '.join(TRAITS)}")
        if v[0] == v[1]:
            raise ValueError("the pair needs two different traits")
        return v


TRAIT_METRICS = ("excess_nats", "trait_score", "trait_selectivity", "trait_control", "trait_ideal", "trait_chance", "posterior_r2",
                 "additivity_error", "train_seconds")  # fmt: skip


@register_process(
    "text_traits", params=TraitParams, metrics=TRAIT_METRICS, batch_seeds=True, needs_world=False, sections=(text_personas,),
    description="a text simulator (or a random-init one) probed per trait against the ideal's Bayes accuracy, "
    "a readout of the ideal posterior, and the additivity of two traits' offsets",
)  # fmt: skip
def run_traits(ctx: Context, seeds: list[int]) -> list[Result]:
    from simulacra.text.grammar import parse_persona
    from simulacra.text.lenses import _additive_error, persona_means, posterior_probe, trait_probes, word_activations

    p: TraitParams = ctx.params
    held = _corpus(ctx, p, heldout=True)
    if p.trained:
        sims = get_text_models(ctx, p, seeds)
    else:
        from simulacra.text.model import TextFormat

        fmt = TextFormat(held.grammar)
        sims = [TextSimulator.init(p.predict_config().spec, fmt, jax.random.fold_in(jax.random.PRNGKey(s), 7)) for s in seeds]
    a, b = (parse_persona(t) for t in p.pair)
    results = []
    for sim, seed in zip(sims, seeds):
        last = _last(sim)
        acts = word_activations(sim, held, [last])  # once: the probes and the persona means read the same words
        rows = trait_probes(sim, held, names=[last], max_documents=len(held.lengths), seed=seed, baseline=False, acts=acts)
        if not rows:
            raise ValueError(f"mixture {p.personas!r}: no trait varies across its personas, so there is nothing to probe")
        mean = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
        target = held if p.labels == "personas" else dataclasses.replace(held, personas=np.random.default_rng(seed).permutation(held.personas))
        error = _additive_error(persona_means(sim, target, last, acts=acts[last]), a, b)
        if not np.isfinite(error):
            raise ValueError(f"mixture {p.personas!r} lacks a persona with neither, only {p.pair[0]}, only {p.pair[1]} or both: additivity needs all four")
        metrics = {
            "excess_nats": excess_nats(sim, held),
            "trait_score": mean("score"), "trait_selectivity": mean("selectivity"), "trait_control": mean("control"),
            "trait_ideal": mean("ideal"), "trait_chance": mean("chance"),
            "posterior_r2": posterior_probe(sim, held, last, max_documents=p.heldout)["r2"],
            "additivity_error": error,
            "train_seconds": float(sim.card.get("metrics", {}).get("train_seconds", 0.0)),
        }  # fmt: skip
        clean = [{k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in r.items()} for r in rows]
        results.append(Result(metrics, {"trait_probes": {"rows": clean}}))
    return results


# -- text_steer -------------------------------------------------------------------------------------


class SteerParams(TextFields):
    steer_k: float = Field(0.0, ge=-1000, le=1000)
    """Coefficient of the trait direction added at the last block."""
    trait: str = "sailor"
    """The trait whose direction is added."""
    generated: int = Field(256, ge=8, le=100_000)
    """Documents generated per unit."""

    @field_validator("trait")
    @classmethod
    def _trait(cls, v):
        if v not in TRAITS:
            raise ValueError(f"unknown trait {v!r}; traits are {', '.join(TRAITS)}")
        return v

    @model_validator(mode="after")
    def _direction(self):
        self._varies(self.trait, "a trait direction")
        return self


@register_process(
    "text_steer", params=SteerParams, metrics=("swear_rate", "steer_shift", "ideal_mixture", "ideal_trait", "steer_nats"), batch_seeds=True,
    needs_world=False,
    description="a text simulator generating with steer_k times a trait direction added at its last block: swear words per "
    "document against the ideal's rates",
)  # fmt: skip
def run_steer(ctx: Context, seeds: list[int]) -> list[Result]:
    from simulacra.text.lenses import steer_nats, steer_swearing, trait_direction

    p: SteerParams = ctx.params
    held = _corpus(ctx, p, heldout=True)
    results = []
    for sim, seed in zip(get_text_models(ctx, p, seeds), seeds):
        direction = trait_direction(sim, held, p.trait, _last(sim))
        row = steer_swearing(sim, held, ks=(p.steer_k,), trait=p.trait, n_documents=p.generated, seed=seed, direction=direction)[0]
        nats = steer_nats(sim, held, p.steer_k, trait=p.trait, direction=direction)["nats_trait"]
        results.append(Result({"swear_rate": row["swear_rate"], "steer_shift": row["shift"], "ideal_mixture": row["ideal_mixture"],
                               "ideal_trait": row["ideal_trait"], "steer_nats": nats}))  # fmt: skip
    return results


# -- text_finetune ----------------------------------------------------------------------------------


class TextRLFields(TextFields):
    """The simulator of `TextFields`, fine-tuned by PPO on its own documents (`text.finetune`)."""

    beta: float = Field(0.0, ge=0, allow_inf_nan=False)
    """KL penalty to the pretrained model (0: plain RL)."""
    updates: int = Field(20, ge=1, le=100_000)
    """Generate-and-learn iterations."""
    ft_documents: int = Field(64, ge=2, le=65_536)
    """Documents per update (even)."""
    ft_lr: float = Field(1e-4, gt=0)
    """Adam learning rate of fine-tuning."""

    @field_validator("ft_documents")
    @classmethod
    def _even(cls, v):
        if v % 2:
            raise ValueError("ft_documents must be even (two minibatches)")
        return v


def _finetuned(ctx: Context, p: TextRLFields, sims: list[TextSimulator], seeds: list[int], config) -> list[tuple[TextSimulator, dict]]:
    """Each seed's model fine-tuned under `config` (a `TextFinetuneConfig`), cached, with its
    artifact key; the seeds not fine-tuned yet are fine-tuned together (`finetune_text_seeds`)."""
    from simulacra.text.finetune import finetune_text_seeds

    keys = [{**_model_key(p, s), "artifact": "text_finetuned", "finetune": dataclasses.asdict(config)} for s in seeds]

    def make_missing(missing: list[int]) -> list[TextSimulator]:
        rngs = [jax.random.fold_in(jax.random.PRNGKey(seeds[j]), 11) for j in missing]
        return [model for model, _ in finetune_text_seeds([sims[j] for j in missing], config, rngs, progress=False)]

    return list(zip(made_together(ctx, keys, make_missing, _save_model, _load_model), keys))


class TextFinetuneParams(TextRLFields):
    layer: int = 0
    """The block compared (0 = first; −1 = last)."""
    direction: Literal["friendly", "random"] = "friendly"
    """Project the last block's activation shift on the friendly direction, or on random unit directions (the mean |projection|)."""

    @model_validator(mode="after")
    def _friendly(self):
        self._varies("friendly", "the friendly direction")
        return self


FINETUNE_METRICS = ("weight_change", "cka", "transplant_swear_rate", "alignment", "swear_rate_before", "swear_rate_after",
                    "excess_nats_before", "excess_nats_after", "persona_entropy_before", "persona_entropy_after", "dream_valid_after")  # fmt: skip


@register_process(
    "text_finetune", params=TextFinetuneParams, metrics=FINETUNE_METRICS, batch_seeds=True, needs_world=False,
    description="a text simulator fine-tuned by PPO against swearing: block params.layer's weight change, CKA and transplant, "
    "and the activation shift along the friendly or random directions",
)  # fmt: skip
def run_finetune(ctx: Context, seeds: list[int]) -> list[Result]:
    from simulacra.text.finetune import TextFinetuneConfig, compare

    p: TextFinetuneParams = ctx.params
    held = _corpus(ctx, p, heldout=True)
    config = TextFinetuneConfig(beta=p.beta, updates=p.updates, documents=p.ft_documents, lr=p.ft_lr)
    results = []
    sims = get_text_models(ctx, p, seeds)
    for sim, seed, (tuned, key) in zip(sims, seeds, _finetuned(ctx, p, sims, seeds, config)):
        n = sim.spec.n_layers
        if not -n <= p.layer < n:
            raise ValueError(f"layer {p.layer} is out of range for a model of {n} blocks")
        block = p.layer % n
        r = ctx.artifacts.get_or_make(
            {**key, "artifact": "text_finetune_compare", "heldout": p.heldout},
            lambda sim=sim, tuned=tuned, seed=seed: _plain(compare(sim, tuned, held, seed=seed)),
            lambda d, path: (path / "compare.json").write_text(json.dumps(d)),
            lambda path: json.loads((path / "compare.json").read_text()),
        )
        results.append(Result({
            "weight_change": r["weight_change"][f"blocks.{block}"],
            "cka": r["cka"][f"blocks.{block}.hook_resid_post"],
            "transplant_swear_rate": r["transplant_swear_rate"][f"blocks.{block}"],
            "alignment": abs(r["friendly_alignment"]) if p.direction == "friendly" else r["random_alignment"],
            "swear_rate_before": r["swear_rate_before"], "swear_rate_after": r["swear_rate_after"],
            "excess_nats_before": r["excess_nats_before"], "excess_nats_after": r["excess_nats_after"],
            "persona_entropy_before": r["persona_entropy_before"], "persona_entropy_after": r["persona_entropy_after"],
            "dream_valid_after": r["dream_valid_after"],
        }))  # fmt: skip
    return results


# -- text_critic ------------------------------------------------------------------------------------


class CriticParams(TextRLFields):
    critic: str = "self"
    """Who grades each generated word (`text.critics`): truth, self, judge or swear."""
    gamma: float = Field(1.0, ge=0, le=1)
    """Discount of later grades credited to a word (0: myopic)."""
    approval: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Weight of the ideal's log-probability of each word added to its reward (H10c's approval; use with gamma 0)."""
    judge: str = "sailor"
    """The persona whose exact law the judge critic scores by."""
    generated: int = Field(256, ge=16, le=65_536)
    """Documents each model generates for the measurements."""

    @field_validator("critic")
    @classmethod
    def _critic(cls, v: str) -> str:
        from simulacra.text.critics import parse_critic

        return parse_critic(v)

    @field_validator("judge")
    @classmethod
    def _judge(cls, v: str) -> str:
        from simulacra.text.grammar import parse_persona

        parse_persona(v)
        return v

    def finetune_config(self):
        from simulacra.text.finetune import TextFinetuneConfig

        return TextFinetuneConfig(beta=self.beta, updates=self.updates, documents=self.ft_documents, lr=self.ft_lr, critic=self.critic,
                                  gamma=self.gamma, approval=self.approval, judge=self.judge)  # fmt: skip


CRITIC_METRICS = ("drift", "excess_nats_before", "excess_nats_after", "critic_before", "critic_after", "critic_gain", "persona_tv_before",
                  "persona_tv_after", "persona_entropy_before", "persona_entropy_after", "dream_valid_before", "dream_valid_after",
                  "dream_entropy_before", "dream_entropy_after", "first_kl", "early_shift", "early_immediate", "length_before", "length_after")  # fmt: skip


@register_process(
    "text_critic", params=CriticParams, metrics=CRITIC_METRICS, batch_seeds=True, needs_world=False, sections=(critic_drift,),
    description="a text simulator fine-tuned by PPO on its own documents, each word graded by a critic (the exact law, the model's "
    "own predictability, or one persona's law) with later grades discounted by gamma: its drift from the exact ideal",
)  # fmt: skip
def run_critic(ctx: Context, seeds: list[int]) -> list[Result]:
    from simulacra.text.critics import drift_report

    p: CriticParams = ctx.params
    held = _corpus(ctx, p, heldout=True)
    config = p.finetune_config()
    results = []
    sims = get_text_models(ctx, p, seeds)
    for sim, seed, (tuned, _) in zip(sims, seeds, _finetuned(ctx, p, sims, seeds, config)):
        report = drift_report(sim, tuned, held, config, jax.random.fold_in(jax.random.PRNGKey(seed), 13), n_documents=p.generated)
        report["critic_gain"] = report["critic_after"] - report["critic_before"]
        k_write = jax.random.fold_in(jax.random.PRNGKey(seed), 17)
        samples = {"before": sim.fmt.decode(sim.generate(k_write, 3)), "after": tuned.fmt.decode(tuned.generate(k_write, 3))}
        results.append(Result({k: float(report[k]) for k in CRITIC_METRICS}, {SAMPLES: samples}))
    return results


def _plain(d):
    """JSON data of `compare`'s result (numpy floats to floats)."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    return float(d)
