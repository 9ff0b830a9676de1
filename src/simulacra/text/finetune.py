"""RL fine-tuning of a text simulator against swearing: the RLHF analogue, with the KL leash.

`finetune_text(sim, config, key)` trains a copy of `sim` on its own generated documents by
PPO-clip with the same loss as the gridworld's `training.finetune`,

    loss = −E[min(ρ A, clip(ρ, 1 ± ε) A)] + β · E_t[ KL(π_θ(·|w_<t) ‖ π_ref(·|w_<t)) ]

where π is the model's distribution over the words (the prompt tokens are never sampled), π_ref
the frozen pretrained model's (exact over the vocabulary), the reward is −`penalty` at every
swear word, and A the undiscounted reward still to come minus its batch mean at the same position,
normalised. β = 0 is plain RL; a large β holds the model at its reference.

`compare(before, after, corpus)` then says where the change went, against the exact ideal:
swear rate and excess nats before and after; per layer the relative weight change and the linear
CKA of the two models' activations (as H7 does for gridworld agents); the swear rate of the
reference with one layer transplanted from the fine-tuned model; and whether the last block's
mean activation moved along the friendly direction more than along random directions of the same
norm (H16b's "through the simulator's concept, or by editing the output"); and persona
collapse, in nats against the exact law: the entropy of the ideal's posterior over personas,
averaged over the model's own generated documents, before and after (`text.lenses.
dream_personas`; only documents the grammar allows are read, their share beside it).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.lenses.layers import layer_names, linear_cka, transplant, weight_change
from simulacra.text.grammar import SWEAR_WORDS
from simulacra.text.model import PAD, WORD0, TextSimulator, _generate_fn
from simulacra.training.finetune import _advantages, _kl


@dataclasses.dataclass(frozen=True)
class TextFinetuneConfig:
    """A fine-tuning run of a text simulator (recorded in the model card)."""

    beta: float = 0.1
    """KL penalty coefficient (to the frozen pretrained model)."""
    updates: int = 30
    """Generate-and-learn iterations."""
    documents: int = 128
    """Documents generated per update."""
    epochs: int = 2
    """Passes over each update's documents."""
    minibatches: int = 2
    """Minibatches per pass (must divide `documents`)."""
    lr: float = 1e-4
    """Adam learning rate."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    penalty: float = 1.0
    """Reward −penalty at every swear word."""
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        def bad(f, v, why):
            raise ValueError(f"invalid TextFinetuneConfig.{f}={v!r}: {why}")

        if not self.beta >= 0:
            bad("beta", self.beta, "must be at least 0")
        for f in ("updates", "documents", "epochs", "minibatches"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f, v, "must be a positive integer")
        if self.documents % self.minibatches:
            bad("minibatches", self.minibatches, f"must divide documents={self.documents}")
        if not self.lr > 0:
            bad("lr", self.lr, "must be positive")
        if not 0 < self.clip_eps < 1:
            bad("clip_eps", self.clip_eps, "must be in (0, 1)")
        if not self.penalty > 0:
            bad("penalty", self.penalty, "must be positive")


def _swear_ids(sim: TextSimulator) -> np.ndarray:
    return np.array([WORD0 + sim.fmt.words.index(w) for w in SWEAR_WORDS if w in sim.fmt.words], np.int32)


def _word_logp(model, params, tokens, prefix_len: int):
    """log π(· | w_<t) over the words at every word position: (N, L_words, V_words)."""
    logits, _ = model.apply(params, tokens[:, :-1])
    return jax.nn.log_softmax(logits[:, prefix_len - 1 :, WORD0:], axis=-1)


def finetune_text(sim: TextSimulator, config: TextFinetuneConfig, key: jax.Array, progress: bool = True) -> tuple[TextSimulator, dict]:
    """RL-fine-tune a copy of `sim` (an untagged text model; `sim` is left unchanged). Returns
    the fine-tuned model and per-update metrics: swear_rate (swear words per document), kl
    (KL(π ‖ π_ref) per word), length (words per document) and loss."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simulacra.nets.transformer import Hooks
    from simulacra.progress import progress as meter

    if sim.fmt.tagged:
        raise ValueError("fine-tune an untagged text model: with the persona in the prompt there is no persona left to choose")
    model, fmt = sim.model, sim.fmt
    prefix = fmt.prefix_len
    n, mb = config.documents, config.documents // config.minibatches
    swear = jnp.asarray(_swear_ids(sim))
    gen = _generate_fn(model.config, prefix, WORD0)
    opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))
    ref_params = sim.params
    start = np.zeros((n, fmt.length), np.int32)
    start[:, 0] = 1  # BOS
    start = jnp.asarray(start)

    @jax.jit
    def rollout(params, key):
        tokens = gen(params, start, key, jnp.float32(1.0), Hooks())
        words = tokens[:, prefix:]
        mask = words != PAD
        reward = -config.penalty * jnp.isin(words, swear).astype(jnp.float32) * mask
        old = _word_logp(model, params, tokens, prefix)
        ref = _word_logp(model, ref_params, tokens, prefix)
        adv = _advantages(reward, mask, 1.0)
        return tokens, mask, reward, old, ref, adv

    def loss_fn(params, batch):
        tokens, mask, old, ref, adv = batch
        logp = _word_logp(model, params, tokens, prefix)
        w = jnp.maximum(tokens[:, prefix:] - WORD0, 0)[..., None]
        lp = jnp.take_along_axis(logp, w, axis=-1)[..., 0]
        lp_old = jnp.take_along_axis(old, w, axis=-1)[..., 0]
        ratio = jnp.exp(lp - lp_old)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv)
        m = mask.astype(jnp.float32)
        return ((pg + config.beta * _kl(logp, ref)) * m).sum() / jnp.maximum(m.sum(), 1.0)

    grad = jax.value_and_grad(loss_fn)

    @jax.jit
    def learn(params, opt_state, batch, key):
        def epoch(carry, k):
            def minibatch(carry, idx):
                params, opt_state = carry
                loss, g = grad(params, jax.tree.map(lambda x: x[idx], batch))
                updates, opt_state = opt.update(g, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            perm = jax.random.permutation(k, n).reshape(config.minibatches, mb)
            return jax.lax.scan(minibatch, carry, perm)

        (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, config.epochs))
        return params, opt_state, losses.mean()

    kl_of = jax.jit(_kl)
    params = jax.tree.map(jnp.array, ref_params)
    opt_state = opt.init(params)
    names = ("swear_rate", "kl", "length", "loss")
    metrics = {k: np.zeros(config.updates, np.float32) for k in names}
    t0 = time.perf_counter()
    columns = (TextColumn("fine-tuning"), BarColumn(), TextColumn("{task.completed}/{task.total} updates  swears/doc {task.fields[sw]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with meter("fine-tuning", config.updates, "updates", enabled=progress, fields={"sw": "-"}, columns=columns) as bar:
        for u in range(config.updates):
            key, k_gen, k_learn = jax.random.split(key, 3)
            tokens, mask, reward, old, ref, adv = rollout(params, k_gen)
            m = np.asarray(mask)
            kl = np.asarray(kl_of(old, ref))
            params, opt_state, loss = learn(params, opt_state, (tokens, mask, old, ref, adv), k_learn)
            vals = (-np.asarray(reward).sum(1).mean() / config.penalty, kl[m].mean(), m.sum(1).mean(), float(loss))
            for k, v in zip(names, vals):
                metrics[k][u] = float(v)
            bar.advance(1, sw=f"{metrics['swear_rate'][u]:.3f}")
    card = {
        **sim.card,
        "process": {"name": "finetune_text", "config": dataclasses.asdict(config)},
        "reference": {"process": sim.card.get("process", {"name": "predict"}), "metrics": sim.card.get("metrics", {})},
        "metrics": {k: float(v[-1]) for k, v in metrics.items()} | {"finetune_seconds": round(time.perf_counter() - t0, 2)},
    }
    return TextSimulator(sim.spec, sim.fmt, jax.device_get(params), card), metrics


def _swears_per_doc(sim: TextSimulator, key, n: int) -> float:
    tokens = sim.generate(key, n)
    return float(np.isin(tokens, _swear_ids(sim)).sum(1).mean())


def compare(before: TextSimulator, after: TextSimulator, corpus, n_documents: int = 256, random_directions: int = 32, seed: int = 0) -> dict:
    """Where fine-tuning put its change (see the module docstring). `corpus`: held-out documents
    of the training mixture. Returns `swear_rate_before/after`, `excess_nats_before/after`,
    per-layer `weight_change`, `cka` and `transplant_swear_rate` (the reference with that layer
    from the fine-tuned model), and `friendly_alignment`: the shift of the last block's mean
    activation projected on the unit friendly direction, `random_alignment` the mean absolute
    projection on random unit directions, and `friendly_vs_random` their ratio;
    `persona_entropy_before/after` and `dream_valid_before/after` (see `dream_personas`)."""
    from simulacra.lenses.probes import residual_names
    from simulacra.text.lenses import dream_personas, trait_direction, word_activations
    from simulacra.text.model import excess_nats

    key = jax.random.PRNGKey(seed)
    n_layers = before.spec.n_layers
    names = residual_names(n_layers)
    acts_b = word_activations(before, corpus, names)
    acts_a = word_activations(after, corpus, names)
    last = names[-1]
    shift = acts_a[last].mean(0) - acts_b[last].mean(0)
    friendly = trait_direction(before, corpus, "friendly", last)
    friendly = friendly / max(np.linalg.norm(friendly), 1e-12)
    rng = np.random.default_rng(seed)
    rand = rng.normal(size=(random_directions, len(shift)))
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    f_align = float(shift @ friendly)
    r_align = float(np.abs(rand @ shift).mean())
    transplants = {}
    for layer in layer_names(n_layers):
        hybrid = transplant(before, after, layer)
        transplants[layer] = _swears_per_doc(hybrid, key, n_documents)
    dreams_b = dream_personas(before, corpus.grammar, corpus.mixture, key, n_documents)
    dreams_a = dream_personas(after, corpus.grammar, corpus.mixture, key, n_documents)
    return {
        "persona_entropy_before": dreams_b["persona_entropy"], "persona_entropy_after": dreams_a["persona_entropy"],
        "dream_valid_before": dreams_b["valid"], "dream_valid_after": dreams_a["valid"],
        "swear_rate_before": _swears_per_doc(before, key, n_documents),
        "swear_rate_after": _swears_per_doc(after, key, n_documents),
        "excess_nats_before": excess_nats(before, corpus),
        "excess_nats_after": excess_nats(after, corpus),
        "weight_change": weight_change(before, after),
        "cka": {name: linear_cka(acts_b[name], acts_a[name]) for name in names},
        "transplant_swear_rate": transplants,
        "friendly_alignment": f_align,
        "random_alignment": r_align,
        "friendly_vs_random": abs(f_align) / max(r_align, 1e-12),
    }


__all__ = ["TextFinetuneConfig", "compare", "finetune_text"]
