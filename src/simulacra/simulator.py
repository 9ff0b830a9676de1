"""A trained trajectory model used as a simulator: act in the world, or dream without it.

    sim = fit(corpus, PredictConfig(rtg=True), seed=0)   # simulacra.training.predict.fit
    sim.save("runs/models/dt"); sim = Simulator.load("runs/models/dt")
    real = sim.act(jax.random.PRNGKey(0), 256, target=1.0)    # a Decision Transformer policy
    real = sim.act(key, 256, character=1)                      # prompted with a character tag
    dreams = sim.dream(key, 256, temperature=1.0)              # whole episodes, states included

**Acting** runs the model as a policy in the real world, batched: the prompt is the episode's
scene (and its `CHAR` tag, and the target return `G_0`), then the world's start state; at each
step the model's distribution over the five ACTION tokens (renormalised: the episode goes on) is
sampled, the world steps, and the action, the observed reward, the decremented target
`G_{t+1} = G_t - r_t` and the next state are fed back. A key/value cache makes a step cost one
block of tokens, not the whole context.

**Dreaming** generates the episode token by token without the world, from a scene drawn by the
world's `reset` and its start state: every state, action, reward and the END are the model's own
samples (the full vocabulary, so a malformed token is possible and is counted by
`simulacra.lenses.fidelity`); return-to-go slots are filled with the target minus the rewards
dreamed so far.

`temperature` scales the logits; 0 takes the most likely token. `hooks` (`simulacra.nets.Hooks`)
intervene on every model call (steering). Compiled functions are cached per batch size and world.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.corpus.tokens import REWARD, REWARD_BINS, REWARD_SCALE, RTG, TrajectoryFormat, TrajVocab, return_bounds, reward_bin_jax
from simulacra.nets.transformer import Hooks, KVCache, Transformer
from simulacra.world.core import EVENT_NAMES, reset, step
from simulacra.world.params import WorldParams
from simulacra.world.planning import optimal_return
from simulacra.world.tokens import Vocab, scene_tokens, state_tokens


@dataclasses.dataclass
class Simulator:
    """A trained model with its format and card (`fit` makes one, `load` reads one)."""

    config: "PredictConfig"  # noqa: F821 (simulacra.training.predict; imported lazily)
    fmt: TrajectoryFormat
    params: dict
    card: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = Transformer(self.config.transformer(self.fmt))

    @classmethod
    def init(cls, config, world: WorldParams, key: jax.Array) -> "Simulator":
        """A randomly initialised model of `config`'s architecture for `world` (no corpus): the
        starting point of an agent trained from scratch on the token stream
        (`training.finetune` with beta=0), and the random baseline of probes."""
        fmt = config.format(world)
        sim = cls(config, fmt, {}, {"process": {"name": "init"}, "seed_key": np.asarray(jax.random.key_data(key)).tolist()})
        sim.params = sim.model.init(key, jnp.zeros((1, fmt.length - 1), jnp.int32))
        return sim

    @property
    def characters(self) -> tuple[str, ...]:
        """Names of the characters the `CHAR` tags index (the training corpus's mixture)."""
        return tuple(c["name"] for c in self.card.get("corpus", {}).get("mixture", []))

    # -- checkpoints --------------------------------------------------------------------------------

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        from simulacra.training.checkpoint import save_model

        card = {
            "process": {"name": "predict", "config": dataclasses.asdict(self.config)},
            **self.card,
            "predict_config": dataclasses.asdict(self.config),
            "world": self.fmt.params.to_dict(),
        }
        return save_model(path, self.params, self.model.config, card, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "Simulator":
        from simulacra.training.checkpoint import CheckpointError, load_model
        from simulacra.training.predict import PredictConfig

        params, arch, card = load_model(path)
        try:
            if "predict_config" not in card:
                raise ValueError("no predict_config: not a trajectory model")
            config = PredictConfig(**card["predict_config"])
            world = WorldParams.from_dict(card["world"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: the card does not describe a simulator ({e})") from None
        sim = cls(config, config.format(world), params, card)
        if sim.model.config != arch:
            raise CheckpointError(f"{path}: the card's architecture {arch} does not match its process config")
        return sim

    # -- acting and dreaming ------------------------------------------------------------------------

    def _check_world(self, world: WorldParams | None) -> WorldParams:
        world = world or self.fmt.params
        other = TrajectoryFormat(world, self.fmt.character, self.fmt.rtg)
        if (other.length, other.state_len, other.prefix_len) != (self.fmt.length, self.fmt.state_len, self.fmt.prefix_len):
            raise ValueError(
                f"world {world.name!r} does not fit this model's token format (size, horizon and reward delay must match {self.fmt.params.name!r})"
            )
        return world

    def _prompt_args(self, target, character) -> tuple[jax.Array, jax.Array]:
        if self.fmt.rtg and target is None:
            raise ValueError("this model is return-conditioned: give a target return")
        if not self.fmt.rtg and target is not None:
            raise ValueError("this model has no return-to-go slots; a target return cannot be given")
        if self.fmt.character and character is None:
            raise ValueError("this model is character-conditioned: give a character (index or name)")
        if not self.fmt.character and character is not None:
            raise ValueError("this model has no character slot; a character cannot be given")
        if character is not None:
            from simulacra.characters import character_index

            character = character_index(self.characters, character)
        return jnp.float32(0.0 if target is None else target), jnp.int32(0 if character is None else character)

    def act(self, key, n_episodes: int, target: float | None = None, character: int | str | None = None,
            temperature: float = 1.0, world: WorldParams | None = None, hooks: Hooks | None = None) -> dict:
        """Run `n_episodes` episodes in the real world with the model as the policy. Returns numpy
        arrays shaped like a corpus's (`scene`, `states`, `actions`, `reward`, `true_reward`,
        `events`, `length`, `terminated`, `truncated`, `return`, `true_return`, `optimal_return`,
        `mask`), `action_probs` (N, T, 5), the model's distribution at each step, and `tokens`
        (N, L), each episode as a token row of the format (global ids, END then PAD), exactly what
        the model was fed."""
        world = self._check_world(world)
        target, character = self._prompt_args(target, character)
        fn = _compiled(_make_act, self, world, n_episodes)
        out = jax.device_get(fn(self.params, key, target, character, jnp.float32(temperature), hooks or Hooks()))
        return _finish(out, world)

    def dream(self, key, n_episodes: int, target: float | None = None, character: int | str | None = None,
              temperature: float = 1.0, world: WorldParams | None = None, hooks: Hooks | None = None) -> dict:
        """Generate `n_episodes` episodes without the world. Returns `tokens` (N, L) global ids
        (PAD after END) and the `scene` and start state each was prompted with."""
        world = self._check_world(world)
        target, character = self._prompt_args(target, character)
        fn = _compiled(_make_dream, self, world, n_episodes)
        return jax.device_get(fn(self.params, key, target, character, jnp.float32(temperature), hooks or Hooks()))


_COMPILED: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()


def _compiled(make: Callable, sim: Simulator, world: WorldParams, n: int) -> Callable:
    """The jitted `make(sim, world, n)`, shared by every simulator of the same config and format:
    the function takes the weights as an argument, so a second model of the same architecture
    (another seed, a loaded checkpoint) reuses the compilation instead of paying for it again."""
    key = (make.__name__, sim.config, sim.fmt.params, sim.fmt.character, sim.fmt.rtg, world, n)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
    else:
        _COMPILED[key] = jax.jit(make(sim, world, n))
        while len(_COMPILED) > 16:
            _COMPILED.popitem(last=False)
    return _COMPILED[key]


def _lut(fmt: TrajectoryFormat) -> jax.Array:
    """Global id -> local id (0 for ids outside the vocabulary; callers only pass valid ones)."""
    lut = np.zeros(TrajVocab.SIZE, np.int32)
    lut[fmt.vocabulary] = np.arange(fmt.vocab_size, dtype=np.int32)
    return jnp.asarray(lut)


def _sample(key, logits, temperature):
    greedy = jnp.argmax(logits, axis=-1)
    sampled = jax.random.categorical(key, logits / jnp.maximum(temperature, 1e-6), axis=-1)
    return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


def _prompt(sim: Simulator, world: WorldParams, states, target, character, lo, hi):
    """Global prompt tokens (N, prefix + [G_0] + S) for start states."""
    fmt = sim.fmt
    n = states.agent.shape[0]
    scene = jax.vmap(lambda s: scene_tokens(s, world))(states)
    parts = [jnp.full((n, 1), Vocab.BOS, jnp.int32), scene]
    if fmt.character:
        parts.append(jnp.full((n, 1), TrajVocab.CHAR[0], jnp.int32) + character)
    parts.append(jnp.full((n, 1), Vocab.SEP, jnp.int32))
    if fmt.rtg:
        parts.append(jnp.full((n, 1), TrajVocab.RTG[0] + REWARD_BINS, jnp.int32) + reward_bin_jax(target, lo, hi))
    parts.append(jax.vmap(lambda s: state_tokens(s, world))(states))
    return jnp.concatenate(parts, axis=1), scene


def _make_act(sim: Simulator, world: WorldParams, n: int):
    fmt, model = sim.fmt, sim.model
    lut = _lut(fmt)
    act_ids = jnp.asarray(fmt.local_ids(*Vocab.ACTION))
    lo, hi = return_bounds(fmt.params)

    def act(params, key, target, character, temperature, hooks):
        k_reset, k_run = jax.random.split(key)
        s0 = jax.vmap(reset, (0, None))(jax.random.split(k_reset, n), world)
        prompt, scene = _prompt(sim, world, s0, target, character, lo, hi)
        logits, _, kv = model.apply(params, lut[prompt], hooks, KVCache.empty(model.config, n))

        def body(carry, k):
            state, kv, last, g, done = carry
            k_a, k_s = jax.random.split(k)
            a_logits = last[:, act_ids]
            a = _sample(k_a, a_logits, temperature)
            nxt, out = jax.vmap(step, (0, 0, 0, None))(jax.random.split(k_s, n), state, a, world)
            r = out.reward
            g = g - r
            toks = [(a + Vocab.ACTION[0])[:, None], (TrajVocab.REWARD[0] + REWARD_BINS + reward_bin_jax(r, lo, hi))[:, None]]
            if fmt.rtg:
                toks.append((TrajVocab.RTG[0] + REWARD_BINS + reward_bin_jax(g, lo, hi))[:, None])
            toks.append(jax.vmap(lambda s: state_tokens(s, world))(nxt))
            block = jnp.concatenate(toks, axis=1)
            logits, _, kv = model.apply(params, lut[block], hooks, kv)
            live = ~done
            keep = lambda new, old: jnp.where(live.reshape(live.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
            state = jax.tree.map(keep, nxt, state)
            rec = dict(
                actions=a.astype(jnp.int8),
                reward=jnp.where(live, r, 0.0),
                true_reward=jnp.where(live, out.true_reward, 0.0),
                events=out.events.as_array() & live[:, None],
                states=jax.vmap(lambda s: state_tokens(s, world))(state).astype(jnp.int16),
                action_probs=jax.nn.softmax(a_logits, axis=-1),
                live=live,
                terminated=out.terminated & live,
                block=jnp.where(live[:, None], block, Vocab.PAD),
            )
            return (state, kv, logits[:, -1], g, done | out.terminated | out.truncated), rec

        init = (s0, kv, logits[:, -1], jnp.broadcast_to(target, (n,)), jnp.zeros(n, bool))
        _, rec = jax.lax.scan(body, init, jax.random.split(k_run, world.horizon))
        rec = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rec)  # (N, T, ...)
        # the episode as a token row of the format (global ids): what the model saw, then END
        body = rec.pop("block").reshape(n, -1)
        rows = jnp.concatenate([prompt, body, jnp.full((n, 1), Vocab.PAD, jnp.int32)], axis=1)
        length = rec["live"].sum(1)
        end_tok = jnp.where(rec["terminated"].any(1), TrajVocab.END_TERMINATED, TrajVocab.END_TRUNCATED)
        rec["tokens"] = rows.at[jnp.arange(n), fmt.step_start(0) + length * fmt.block + fmt.state_len].set(end_tok)
        s0_tok = jax.vmap(lambda s: state_tokens(s, world))(s0).astype(jnp.int16)
        rec["states"] = jnp.concatenate([s0_tok[:, None], rec["states"]], axis=1)
        rec["scene"] = scene.astype(jnp.int16)
        rec["optimal_return"] = jax.vmap(lambda s: optimal_return(s, world))(s0)
        return rec

    return act


def _finish(out: dict, world: WorldParams) -> dict:
    live = out.pop("live")
    length = live.sum(1).astype(np.int16)
    terminated = out.pop("terminated").any(1)
    return {
        **out,
        "mask": live,
        "length": length,
        "terminated": terminated,
        "truncated": ~terminated,
        "return": out["reward"].sum(1),
        "true_return": out["true_reward"].sum(1),
        "event_names": EVENT_NAMES,
    }


def _make_dream(sim: Simulator, world: WorldParams, n: int):
    fmt, model = sim.fmt, sim.model
    lut = _lut(fmt)
    voc = jnp.asarray(fmt.vocabulary)
    lo, hi = return_bounds(fmt.params)
    start = fmt.action_pos(0)
    types = jnp.asarray(fmt.types()[start:])
    is_end = jnp.asarray(np.isin(fmt.vocabulary, [TrajVocab.END_TERMINATED, TrajVocab.END_TRUNCATED]))
    is_reward = jnp.asarray((fmt.vocabulary >= TrajVocab.REWARD[0]) & (fmt.vocabulary < TrajVocab.REWARD[0] + TrajVocab.REWARD[1]))

    def dream(params, key, target, character, temperature, hooks):
        k_reset, k_run = jax.random.split(key)
        s0 = jax.vmap(reset, (0, None))(jax.random.split(k_reset, n), world)
        prompt, scene = _prompt(sim, world, s0, target, character, lo, hi)
        logits, _, kv = model.apply(params, lut[prompt], hooks, KVCache.empty(model.config, n))

        def body(carry, x):
            kv, last, g, ended = carry
            k, ty = x
            tok = _sample(k, last, temperature)  # local id
            rtg_tok = lut[TrajVocab.RTG[0] + REWARD_BINS + reward_bin_jax(g, lo, hi)]
            tok = jnp.where(ty == RTG, rtg_tok, tok)
            tok = jnp.where(ended, lut[Vocab.PAD], tok)
            reward = jnp.where((ty == REWARD) & is_reward[tok], (voc[tok] - TrajVocab.REWARD[0] - REWARD_BINS) / REWARD_SCALE, 0.0)
            ended = ended | is_end[tok]
            logits, _, kv = model.apply(params, tok[:, None], hooks, kv)
            return (kv, logits[:, -1], g - reward.astype(jnp.float32), ended), tok

        init = (kv, logits[:, -1], jnp.broadcast_to(target, (n,)), jnp.zeros(n, bool))
        xs = (jax.random.split(k_run, types.shape[0]), types)
        _, toks = jax.lax.scan(body, init, xs)
        return {"tokens": jnp.concatenate([prompt, voc[toks.T]], axis=1), "scene": scene}

    return dream
