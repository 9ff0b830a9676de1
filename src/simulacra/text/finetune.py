"""RL fine-tuning of a text simulator on its own documents: against swearing (the RLHF analogue,
with the KL leash), or graded by a critic with later grades credited to earlier words (H10).

`finetune_text(sim, config, key)` trains a copy of `sim` on its own generated documents by
PPO-clip with the same loss as the gridworld's `training.finetune`,

    loss = −E[min(ρ A, clip(ρ, 1 ± ε) A)] + β · E_t[ KL(π_θ(·|w_<t) ‖ π_ref(·|w_<t)) ]

where π is the model's distribution over the words (the prompt tokens are never sampled), π_ref
the frozen pretrained model's (exact over the vocabulary), and A the return to each word,
Σₖ γᵏ rₜ₊ₖ, minus its batch mean at the same position, normalised. The reward r_t is the score
of `config.critic` (`text.critics`): −`penalty` at every swear word (`swear`, the default, with
γ = 1), the exact law's log-probability (`truth`), the model's own (`self`) or one persona's law
(`judge`); plus `approval` × the exact law's log-probability (H10c). β = 0 is plain RL; a large β
holds the model at its reference. One compiled rollout and learning step serve every critic, γ
and β of one model shape (they are arguments, not constants).

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
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.lenses.layers import layer_names, linear_cka, transplant, weight_change
from simulacra.text.critics import CRITICS, DEFAULT_FLOOR, law_arrays, law_logp, log_prior, persona_prior
from simulacra.text.grammar import SWEAR_WORDS, parse_persona
from simulacra.text.model import PAD, WORD0, TextSimulator, _generate_fn
from simulacra.training.finetune import _advantages, _kl, split3


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
    """Reward −penalty at every swear word (critic `swear`)."""
    max_grad_norm: float = 1.0
    critic: str = "swear"
    """Who grades each word (`text.critics.CRITICS`): swear, truth, self or judge."""
    gamma: float = 1.0
    """Discount of later grades credited to a word: the return to word t is Σₖ γᵏ rₜ₊ₖ (0: myopic)."""
    approval: float = 0.0
    """Weight of the ideal's log-probability of each word, added to its reward (H10c's approval)."""
    judge: str = "sailor"
    """The persona whose exact law the `judge` critic scores by."""
    floor: float = DEFAULT_FLOOR
    """Score of a word the law does not allow, and of every word after it (truth, judge, approval)."""

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
        if self.critic not in CRITICS:
            bad("critic", self.critic, f"unknown critic; known: {', '.join(CRITICS)}")
        if not 0 <= self.gamma <= 1:
            bad("gamma", self.gamma, "a discount must be in [0, 1]")
        if not (self.approval >= 0 and np.isfinite(self.approval)):
            bad("approval", self.approval, "must be a finite weight >= 0")
        try:
            parse_persona(self.judge)
        except ValueError as e:
            bad("judge", self.judge, str(e))
        if not (np.isfinite(self.floor) and self.floor < 0):
            bad("floor", self.floor, "must be a finite negative score (nats)")

    def weights(self) -> np.ndarray:
        """(5,) the reward's weights on (swear, truth, self, judge, approval)."""
        w = np.zeros(5, np.float32)
        w[("swear", "truth", "self", "judge").index(self.critic)] = self.penalty if self.critic == "swear" else 1.0
        w[4] = self.approval
        return w


def _swear_ids(sim: TextSimulator) -> np.ndarray:
    return np.array([WORD0 + sim.fmt.words.index(w) for w in SWEAR_WORDS if w in sim.fmt.words], np.int32)


def _word_logp(model, params, tokens, prefix_len: int):
    """log π(· | w_<t) over the words at every word position: (N, L_words, V_words)."""
    logits, _ = model.apply(params, tokens[:, :-1])
    return jax.nn.log_softmax(logits[:, prefix_len - 1 :, WORD0:], axis=-1)


def _scores(logp_words, tokens, prefix, law, swear, mix_prior, judge_prior, floor):
    """(4, N, L) every critic's score of each word of the generated `tokens` (0 at padding):
    swear (−1 per swear word), truth, self (from `logp_words`, the generating model's), judge."""
    words = tokens[:, prefix:]
    mask = words != PAD
    w = jnp.maximum(words - WORD0, 0)
    own = jnp.take_along_axis(logp_words, w[..., None], axis=-1)[..., 0] * mask
    truth = law_logp(*law, w, mask, mix_prior, floor)
    judge = law_logp(*law, w, mask, judge_prior, floor)
    sw = -jnp.isin(words, swear).astype(jnp.float32) * mask
    return jnp.stack([sw, truth, own, judge])


@functools.lru_cache(maxsize=8)
def _programs(mconfig, prefix: int, length: int, n: int, minibatches: int, epochs: int, clip_eps: float, lr: float, max_grad_norm: float):
    """The jitted rollout and learning step of fine-tuning runs, shared by every run of the same
    model shape and batch (the critic, γ, β and the laws are arguments: one compilation serves a
    whole sweep). Both are `vmap`ped over seeds: the parameters, optimiser states, keys and
    batches carry a leading seeds axis; the critic's arguments and β are shared."""
    from simulacra.nets.transformer import Hooks, Transformer

    model = Transformer(mconfig)
    gen = _generate_fn(mconfig, prefix, WORD0)
    opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(lr))
    mb = n // minibatches
    start = np.zeros((n, length), np.int32)
    start[:, 0] = 1  # BOS
    start = jnp.asarray(start)

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(0, 0, 0) + (None,) * 7)
    def rollout(params, ref_params, key, law, swear, mix_prior, judge_prior, weights, gamma, floor):
        tokens = gen(params, start, key, jnp.float32(1.0), Hooks())
        mask = tokens[:, prefix:] != PAD
        old = _word_logp(model, params, tokens, prefix)
        ref = _word_logp(model, ref_params, tokens, prefix)
        scores = _scores(old, tokens, prefix, law, swear, mix_prior, judge_prior, floor)
        critic = (weights[:4, None, None] * scores).sum(0)  # elementwise: no reduced-precision matrix product on a GPU
        approval = weights[4] * scores[1]
        adv = _advantages(critic + approval, mask, gamma)
        return tokens, mask, scores, critic, old, ref, adv

    def loss_fn(params, batch, beta):
        tokens, mask, old, ref, adv = batch
        logp = _word_logp(model, params, tokens, prefix)
        w = jnp.maximum(tokens[:, prefix:] - WORD0, 0)[..., None]
        lp = jnp.take_along_axis(logp, w, axis=-1)[..., 0]
        lp_old = jnp.take_along_axis(old, w, axis=-1)[..., 0]
        ratio = jnp.exp(lp - lp_old)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
        m = mask.astype(jnp.float32)
        return ((pg + beta * _kl(logp, ref)) * m).sum() / jnp.maximum(m.sum(), 1.0)

    grad = jax.value_and_grad(loss_fn)

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(0, 0, 0, 0, None))
    def learn(params, opt_state, batch, key, beta):
        def epoch(carry, k):
            def minibatch(carry, idx):
                params, opt_state = carry
                loss, g = grad(params, jax.tree.map(lambda x: x[idx], batch), beta)
                updates, opt_state = opt.update(g, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            perm = jax.random.permutation(k, n).reshape(minibatches, mb)
            return jax.lax.scan(minibatch, carry, perm)

        (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))
        return params, opt_state, losses.mean()

    return rollout, learn, opt


def finetune_text(sim: TextSimulator, config: TextFinetuneConfig, key: jax.Array, progress: bool = True) -> tuple[TextSimulator, dict]:
    """RL-fine-tune a copy of `sim` (an untagged text model; `sim` is left unchanged) on its own
    documents, each word graded by `config.critic` (`text.critics`). Returns the fine-tuned model
    and per-update metrics: swear_rate (swear words per document), kl (KL(π ‖ π_ref) per word),
    length (words per document), critic (the critic's mean score per word), truth (the ideal's
    mean log-probability per word) and loss."""
    return finetune_text_seeds([sim], config, [key], progress)[0]


def finetune_text_seeds(sims: list[TextSimulator], config: TextFinetuneConfig, keys, progress: bool = True) -> list[tuple[TextSimulator, dict]]:
    """`finetune_text` of several models of one spec and format (a sweep point's seeds) at once:
    one compilation, the runs `vmap`ped side by side, run `i` generating and learning with
    `keys[i]` (each equal to its own `finetune_text` up to float rounding). The card's
    `finetune_seconds` is the batch's wall-clock divided by the number of models."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simulacra.progress import progress as meter

    if not sims or len(sims) != len(keys):
        raise ValueError(f"finetune_text_seeds needs one key per model, got {len(sims)} models and {len(keys)} keys")
    first = sims[0]
    # formats compare by content (a model loaded from disk has its own `TextFormat` object)
    if any(s.spec != first.spec or s.fmt.to_dict() != first.fmt.to_dict() or _mixture_of(s) != _mixture_of(first) for s in sims[1:]):
        raise ValueError("finetune_text_seeds: the models must share one spec, token format and training mixture")
    if first.fmt.tagged:
        raise ValueError("fine-tune an untagged text model: with the persona in the prompt there is no persona left to choose")
    fmt = first.fmt
    rollout, learn, opt = _programs(first.model.config, fmt.prefix_len, fmt.length, config.documents, config.minibatches, config.epochs,
                                    config.clip_eps, config.lr, config.max_grad_norm)  # fmt: skip
    law = law_arrays(fmt.grammar)
    swear = jnp.asarray(_swear_ids(first))
    priors = (jnp.asarray(log_prior(_mixture_of(first))), jnp.asarray(persona_prior(config.judge)))
    weights, gamma, floor, beta = jnp.asarray(config.weights()), jnp.float32(config.gamma), jnp.float32(config.floor), jnp.float32(config.beta)
    ref_params = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *[s.params for s in sims])
    kl_of = jax.jit(_kl)
    keys = jnp.stack([jnp.asarray(k) for k in keys])
    params = jax.tree.map(jnp.array, ref_params)  # a copy: the references stay frozen
    opt_state = jax.vmap(opt.init)(params)
    names = ("swear_rate", "kl", "length", "critic", "truth", "loss")
    seeds = len(sims)
    metrics = [{k: np.zeros(config.updates, np.float32) for k in names} for _ in sims]
    t0 = time.perf_counter()
    label = "fine-tuning" if config.critic == "swear" else f"fine-tuning ({config.critic}, γ={config.gamma:g})"
    label += "" if seeds == 1 else f" {seeds} seeds"
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} updates  {task.fields[sw]}"),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with meter(label, config.updates, "updates", enabled=progress, fields={"sw": "-"}, columns=columns) as bar:
        for u in range(config.updates):
            ks = split3(keys)
            keys, k_gen, k_learn = ks[:, 0], ks[:, 1], ks[:, 2]
            tokens, mask, scores, critic, old, ref, adv = rollout(params, ref_params, k_gen, law, swear, *priors, weights, gamma, floor)
            m = np.asarray(mask)
            kl = np.asarray(kl_of(old, ref))
            params, opt_state, loss = learn(params, opt_state, (tokens, mask, old, ref, adv), k_learn, beta)
            sc, cr, ls = np.asarray(scores), np.asarray(critic), np.asarray(loss)
            for i in range(seeds):
                live = max(int(m[i].sum()), 1)
                vals = (-sc[i, 0].sum(1).mean(), kl[i][m[i]].mean(), m[i].sum(1).mean(), float(cr[i].sum()) / live, sc[i, 1].sum() / live, float(ls[i]))
                for k, v in zip(names, vals):
                    metrics[i][k][u] = float(v)
            mean = lambda k: float(np.mean([mt[k][u] for mt in metrics]))  # noqa: E731
            shown = f"swears/doc {mean('swear_rate'):.3f}" if config.critic == "swear" else f"critic {mean('critic'):.3f}/word"
            bar.advance(1, sw=shown)
    seconds = round((time.perf_counter() - t0) / seeds, 2)
    host = jax.device_get(params)
    out = []
    for i, sim in enumerate(sims):
        card = {
            **sim.card,
            "process": {"name": "finetune_text", "config": dataclasses.asdict(config)},
            "reference": {"process": sim.card.get("process", {"name": "predict"}), "metrics": sim.card.get("metrics", {})},
            "metrics": {k: float(v[-1]) for k, v in metrics[i].items()} | {"finetune_seconds": seconds},
        }
        out.append((TextSimulator(sim.spec, sim.fmt, jax.tree.map(lambda x, i=i: x[i], host), card), metrics[i]))
    return out


def _mixture_of(sim: TextSimulator):
    """The persona mixture of the corpus `sim` was trained on (its card), else all 16 equally."""
    from simulacra.text.grammar import PersonaMixture, parse_personas

    items = (sim.card.get("corpus") or {}).get("mixture")
    return PersonaMixture.from_list(items) if items else parse_personas("all")


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
    friendly = trait_direction(before, corpus, "friendly", last, acts=acts_b[last])
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


__all__ = ["TextFinetuneConfig", "compare", "finetune_text", "finetune_text_seeds"]
