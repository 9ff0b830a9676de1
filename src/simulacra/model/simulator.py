"""A trained trajectory model used as a simulator: act in the world, or dream without it.

    sim = fit(corpus, PredictConfig(rtg=True), seed=0)   # simulacra.training.predict.fit
    sim.save("runs/models/dt"); sim = Simulator.load("runs/models/dt")
    real = sim.act(jax.random.PRNGKey(0), 256, target=1.0)    # Episodes: a Decision Transformer policy
    real = sim.act(key, 256, character=1)                      # prompted with a character tag
    dreams = sim.dream(key, 256, temperature=1.0)              # whole episodes, states included

A `Simulator` is a `ModelSpec` (format flags and architecture), the token format it fixes in its
world, the weights and a model card. `make_act` and `make_dream` are the pure pieces behind
`act` and `dream` (`fn(weights, key, target, character, temperature, hooks)`), for callers that
jit them into a loop of their own (`training.finetune`).

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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.corpus.episodes import Episodes
from simulacra.corpus.tokens import (
    REWARD,
    RTG,
    TrajectoryFormat,
    action_token,
    character_token,
    end_token,
    is_end_token,
    is_reward_token,
    token_reward,
)
from simulacra.model.checkpoint import CheckpointError, load_model, save_model
from simulacra.model.spec import ModelSpec
from simulacra.nets.transformer import Hooks, KVCache, Transformer
from simulacra.world.core import reset, step
from simulacra.world.params import WorldParams
from simulacra.world.planning import optimal_return
from simulacra.world.tokens import Vocab, scene_tokens, state_tokens


@dataclasses.dataclass
class Simulator:
    """A trained model with its format and card (`fit` makes one, `load` reads one)."""

    spec: ModelSpec
    """Format flags and architecture (a training config that extends it is cut down to it)."""
    fmt: TrajectoryFormat
    """The token format in the model's own world (`spec.format(world)`)."""
    params: dict
    """The network's weights."""
    card: dict = dataclasses.field(default_factory=dict)
    """The model card's provenance: corpus, process, seed, metrics (`save` adds spec and world)."""

    def __post_init__(self) -> None:
        self.spec = ModelSpec.of(self.spec)  # a training config that extends the spec: keep the spec
        self.model = Transformer(self.spec.transformer(self.fmt))

    @classmethod
    def init(cls, spec: ModelSpec, world: WorldParams, key: jax.Array) -> "Simulator":
        """A randomly initialised model of `spec` for `world` (no corpus): the starting point of
        an agent trained from scratch on the token stream (`training.finetune` with beta=0), and
        the random baseline of probes."""
        fmt = spec.format(world)
        sim = cls(spec, fmt, {}, {"process": {"name": "init"}, "seed_key": np.asarray(jax.random.key_data(key)).tolist()})
        sim.params = sim.model.init(key, jnp.zeros((1, fmt.length - 1), jnp.int32))
        return sim

    @property
    def characters(self) -> tuple[str, ...]:
        """Names of the characters the `CHAR` tags index (the training corpus's mixture)."""
        return tuple(c["name"] for c in self.card.get("corpus", {}).get("mixture", []))

    # -- checkpoints --------------------------------------------------------------------------------

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        card = {**self.card, "model_spec": dataclasses.asdict(self.spec), "world": self.fmt.params.to_dict()}
        card.pop("predict_config", None)  # a card loaded from an older checkpoint
        return save_model(path, self.params, self.model.config, card, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "Simulator":
        params, arch, card = load_model(path)
        try:
            # "predict_config": cards written before the model spec had a name of its own
            stored = card.get("model_spec", card.get("predict_config"))
            if not isinstance(stored, dict):
                raise ValueError("no model_spec: not a trajectory model")
            spec = ModelSpec.of(stored)
            world = WorldParams.from_dict(card["world"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: the card does not describe a simulator ({e})") from None
        sim = cls(spec, spec.format(world), params, card)
        if sim.model.config != arch:
            raise CheckpointError(f"{path}: the card's architecture {arch} does not match its model spec")
        return sim

    # -- acting and dreaming ------------------------------------------------------------------------

    def check_world(self, world: WorldParams | None) -> WorldParams:
        """`world` (default: the model's own), if it fits the model's token format."""
        world = world or self.fmt.params
        other = TrajectoryFormat(world, self.fmt.character, self.fmt.rtg)
        if (other.length, other.state_len, other.prefix_len) != (self.fmt.length, self.fmt.state_len, self.fmt.prefix_len):
            raise ValueError(
                f"world {world.name!r} does not fit this model's token format (size, horizon and reward delay must match {self.fmt.params.name!r})"
            )
        return world

    def prompt(self, target: float | None, character: int | str | None) -> tuple[jax.Array, jax.Array]:
        """The (target, character index) arguments of `make_act`/`make_dream` functions, checked
        against the model's conditioning slots."""
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
            temperature: float = 1.0, world: WorldParams | None = None, hooks: Hooks | None = None) -> Episodes:
        """Run `n_episodes` episodes in the real world with the model as the policy. Returns
        `Episodes` with `action_probs` (N, T, 5), the model's distribution at each step, and
        `tokens` (N, L), each episode as a token row of the format (global ids, END then PAD),
        exactly what the model was fed."""
        world = self.check_world(world)
        target, character = self.prompt(target, character)
        fn = _compiled(make_act, self, world, n_episodes)
        return episodes_of(fn(self.params, key, target, character, jnp.float32(temperature), hooks or Hooks()))

    def dream(self, key, n_episodes: int, target: float | None = None, character: int | str | None = None,
              temperature: float = 1.0, world: WorldParams | None = None, hooks: Hooks | None = None) -> dict:
        """Generate `n_episodes` episodes without the world. Returns `{"tokens", "scene"}`: the
        token rows (N, L) in global ids (PAD after END; the prompted start state is in the row) and
        the scene (N, 2+H*W) each was prompted with."""
        world = self.check_world(world)
        target, character = self.prompt(target, character)
        fn = _compiled(make_dream, self, world, n_episodes)
        return jax.device_get(fn(self.params, key, target, character, jnp.float32(temperature), hooks or Hooks()))


_COMPILED: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()


def _compiled(make: Callable, sim: Simulator, world: WorldParams, n: int) -> Callable:
    """The jitted `make(sim, world, n)`, shared by every simulator of the same spec and world:
    the function takes the weights as an argument, so a second model of the same architecture
    (another seed, a loaded checkpoint) reuses the compilation instead of paying for it again."""
    key = (make.__name__, sim.spec, sim.fmt.params, world, n)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
    else:
        _COMPILED[key] = jax.jit(make(sim, world, n))
        while len(_COMPILED) > 16:
            _COMPILED.popitem(last=False)
    return _COMPILED[key]


def _sample(key, logits, temperature):
    greedy = jnp.argmax(logits, axis=-1)
    sampled = jax.random.categorical(key, logits / jnp.maximum(temperature, 1e-6), axis=-1)
    return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


def _prompt(fmt: TrajectoryFormat, world: WorldParams, states, target, character):
    """Global prompt tokens (N, prefix + [G_0] + S) for start states."""
    n = states.agent.shape[0]
    scene = jax.vmap(lambda s: scene_tokens(s, world))(states)
    parts = [jnp.full((n, 1), Vocab.BOS, jnp.int32), scene]
    if fmt.character:
        parts.append(jnp.full((n, 1), character_token(character), jnp.int32))
    parts.append(jnp.full((n, 1), Vocab.SEP, jnp.int32))
    if fmt.rtg:
        parts.append(jnp.full((n, 1), fmt.rtg_token(jnp.asarray(target)), jnp.int32))
    parts.append(jax.vmap(lambda s: state_tokens(s, world))(states))
    return jnp.concatenate(parts, axis=1), scene


class ActRecord(NamedTuple):
    """What `make_act`'s function returns (jax arrays, batch first; T = the world's horizon)."""

    actions: jax.Array  # (N, T) int8
    reward: jax.Array  # (N, T) observed reward (0 after the end)
    true_reward: jax.Array  # (N, T)
    events: jax.Array  # (N, T, E) bool, E = len(EVENT_NAMES)
    states: jax.Array  # (N, T+1, S) int16 state tokens of s_0 .. s_T (frozen after the end)
    action_probs: jax.Array  # (N, T, 5) the model's distribution over actions at each step
    live: jax.Array  # (N, T) bool: step t happened (t < length)
    terminated: jax.Array  # (N, T) bool: the episode terminated at step t
    tokens: jax.Array  # (N, L) int32 the episode as the token row the model was fed, END then PAD
    scene: jax.Array  # (N, 2+H*W) int16
    optimal_return: jax.Array  # (N,) exact optimal expected true return of the layout


def make_act(sim: Simulator, world: WorldParams, n: int):
    """`act(weights, key, target, character, temperature, hooks) -> ActRecord`: `n` episodes in
    `world` with the model of `sim`'s spec and format as the policy (pure; jit it)."""
    fmt, model = sim.fmt, sim.model
    lut = fmt.lut
    act_ids = jnp.asarray(fmt.local_ids(*Vocab.ACTION))

    def act(params, key, target, character, temperature, hooks) -> ActRecord:
        k_reset, k_run = jax.random.split(key)
        s0 = jax.vmap(reset, (0, None))(jax.random.split(k_reset, n), world)
        prompt, scene = _prompt(fmt, world, s0, target, character)
        logits, _, kv = model.apply(params, lut[prompt], hooks, KVCache.empty(model.config, n))

        def body(carry, k):
            state, kv, last, g, done = carry
            k_a, k_s = jax.random.split(k)
            a_logits = last[:, act_ids]
            a = _sample(k_a, a_logits, temperature)
            nxt, out = jax.vmap(step, (0, 0, 0, None))(jax.random.split(k_s, n), state, a, world)
            r = out.reward
            g = g - r
            toks = [action_token(a)[:, None], fmt.reward_token(r)[:, None]]
            if fmt.rtg:
                toks.append(fmt.rtg_token(g)[:, None])
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
        states = rec.pop("states")
        rows = jnp.concatenate([prompt, body, jnp.full((n, 1), Vocab.PAD, jnp.int32)], axis=1)
        end = fmt.end_pos(rec["live"].sum(1))
        tokens = rows.at[jnp.arange(n), end].set(end_token(rec["terminated"].any(1)))
        s0_tok = jax.vmap(lambda s: state_tokens(s, world))(s0).astype(jnp.int16)
        return ActRecord(
            **rec,
            states=jnp.concatenate([s0_tok[:, None], states], axis=1),
            tokens=tokens,
            scene=scene.astype(jnp.int16),
            optimal_return=jax.vmap(lambda s: optimal_return(s, world))(s0),
        )

    return act


def episodes_of(rec: ActRecord) -> Episodes:
    """`Episodes` of an `ActRecord` brought to the host."""
    r = jax.device_get(rec)
    return Episodes.from_steps(
        r.scene, r.states, r.actions, r.reward, r.true_reward, r.events, r.live, r.terminated, r.optimal_return,
        action_probs=r.action_probs, tokens=r.tokens,
    )  # fmt: skip


def make_dream(sim: Simulator, world: WorldParams, n: int):
    """`dream(weights, key, target, character, temperature, hooks) -> {"tokens", "scene"}`: `n`
    episodes generated by the model without the world (pure; jit it)."""
    fmt, model = sim.fmt, sim.model
    lut = fmt.lut
    voc = jnp.asarray(fmt.vocabulary)
    start = fmt.action_pos(0)
    types = jnp.asarray(fmt.types()[start:])
    is_end = jnp.asarray(is_end_token(fmt.vocabulary))
    is_reward = jnp.asarray(is_reward_token(fmt.vocabulary))

    def dream(params, key, target, character, temperature, hooks):
        k_reset, k_run = jax.random.split(key)
        s0 = jax.vmap(reset, (0, None))(jax.random.split(k_reset, n), world)
        prompt, scene = _prompt(fmt, world, s0, target, character)
        logits, _, kv = model.apply(params, lut[prompt], hooks, KVCache.empty(model.config, n))

        def body(carry, x):
            kv, last, g, ended = carry
            k, ty = x
            tok = _sample(k, last, temperature)  # local id
            tok = jnp.where(ty == RTG, lut[fmt.rtg_token(g)], tok)
            tok = jnp.where(ended, lut[Vocab.PAD], tok)
            reward = jnp.where((ty == REWARD) & is_reward[tok], token_reward(voc[tok]), 0.0)
            ended = ended | is_end[tok]
            logits, _, kv = model.apply(params, tok[:, None], hooks, kv)
            return (kv, logits[:, -1], g - reward.astype(jnp.float32), ended), tok

        init = (kv, logits[:, -1], jnp.broadcast_to(target, (n,)), jnp.zeros(n, bool))
        xs = (jax.random.split(k_run, types.shape[0]), types)
        _, toks = jax.lax.scan(body, init, xs)
        return {"tokens": jnp.concatenate([prompt, voc[toks.T]], axis=1), "scene": scene}

    return dream
