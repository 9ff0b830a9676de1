"""Steering: add a direction to a named activation while the model acts, and measure what changes.

    d = contrastive_direction(sim, corpus, "blocks.0.hook_resid_post", a="presser", b="seeker")
    rows = steering_sweep(sim, "blocks.0.hook_resid_post", d, ks=[0, 1, 2, 4], key=key, toward="presser")

`contrastive_direction` is the mean activation (at the positions predicting actions, teacher-forced
on the corpus) over steps of character a's episodes minus that over character b's — which mixes
the character with the states each character visits. `tag_direction`, for a character-tagged
model, holds the inputs fixed and changes only the tag: the same episodes prompted as a minus
prompted as b (activation addition's contrast of two prompts). Steering adds
`k · direction` to the named activation at every position of every forward pass while acting
(`Hooks(add=…)`); k = 0 adds exact zeros, a no-op.

`coin_direction` is the goal-retargeting direction ("cheese vector"): episodes with the coin at
one cell minus episodes with it elsewhere.

The measure of a character shift is the **character-match rate**: the share of episodes whose
ideal posterior over the corpus's characters, after the whole episode, puts the most mass on the
character steered towards — the corpus's exact law judging whom the behaviour looks like.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from simulacra.characters import Mixture, character_index
from simulacra.corpus.episodes import Episodes
from simulacra.corpus.ideal import ideal_of_episodes
from simulacra.lenses.probes import first_episodes, step_activations, step_index
from simulacra.nets.transformer import Hooks
from simulacra.world.core import EVENT_NAMES


def contrastive_direction(sim, corpus, name: str, a: int | str, b: int | str, max_episodes: int = 512) -> np.ndarray:
    """Mean activation at `name` over character a's steps minus over character b's (d,)."""
    ia, ib = character_index(corpus.mixture.names, a), character_index(corpus.mixture.names, b)
    corpus = first_episodes(corpus, max_episodes)
    acts = step_activations(sim, corpus, [name])[name]
    ep, _ = step_index(corpus)
    who = corpus.episodes.character[ep]
    if not (who == ia).any() or not (who == ib).any():
        raise ValueError(f"the corpus's first {corpus.n_episodes} episodes lack steps of {a!r} or {b!r}")
    return (acts[who == ia].mean(0) - acts[who == ib].mean(0)).astype(np.float32)


def tag_direction(sim, corpus, name: str, a: int | str, b: int | str, max_episodes: int = 256) -> np.ndarray:
    """For a character-tagged model: the mean difference of activations at `name` between the same
    episodes (teacher-forced, every character's) prompted with tag a and with tag b — the
    prompt's own effect, with the inputs held fixed (activation addition's "A − B" contrast)."""
    from simulacra.corpus import Corpus

    if not sim.fmt.character:
        raise ValueError("tag_direction needs a character-tagged model (PredictConfig.character=True); use contrastive_direction")
    ia, ib = character_index(corpus.mixture.names, a), character_index(corpus.mixture.names, b)
    corpus = first_episodes(corpus, max_episodes)

    def tagged(c: int) -> Corpus:
        e = corpus.episodes
        return dataclasses.replace(corpus, episodes=e.replace(character=np.full_like(e.character, c)))

    xa = step_activations(sim, tagged(ia), [name])[name]
    xb = step_activations(sim, tagged(ib), [name])[name]
    return (xa - xb).mean(0).astype(np.float32)


def coin_direction(sim, corpus, name: str, cell: tuple[int, int], max_episodes: int = 1024) -> np.ndarray:
    """Goal retargeting in the manner of the maze policy's "cheese vector": the mean activation at
    `name` over steps of episodes whose coin lies at `cell` (row, column) minus the mean over
    episodes whose coin lies elsewhere. Adding it should pull the agent towards `cell` wherever
    the coin really is (measure with `behaviour.visits`)."""
    from simulacra.corpus import coin_cells

    if not corpus.params.n_coins:
        raise ValueError("coin_direction needs a world with coins")
    corpus = first_episodes(corpus, max_episodes)
    acts = step_activations(sim, corpus, [name])[name]
    ep, _ = step_index(corpus)
    at = (coin_cells(corpus.episodes.scene, corpus.params) == cell[0] * corpus.params.width + cell[1]).any(1)[ep]
    if not at.any() or at.all():
        raise ValueError(f"the corpus's first {corpus.n_episodes} episodes need coins both at and away from {cell}")
    return (acts[at].mean(0) - acts[~at].mean(0)).astype(np.float32)


def steering_hooks(name: str, direction, k: float) -> Hooks:
    """Hooks adding `k · direction` at `name` (broadcast over batch and positions)."""
    return Hooks(add={name: jnp.asarray(k * np.asarray(direction, np.float32))})


def final_posterior(episodes: Episodes, params, mixture: Mixture) -> np.ndarray:
    """(N, C) the ideal posterior over `mixture`'s characters after each whole episode
    (prior × every action's likelihood under each character)."""
    ideal = ideal_of_episodes(episodes, params, mixture)
    length = np.asarray(episodes.length, np.int64)
    last = np.maximum(length - 1, 0)
    n = np.arange(len(last))
    log_post = np.log(np.maximum(ideal.posterior[n, last], 1e-300)) - ideal.character_logloss[n, last]
    log_post = np.where(length[:, None] > 0, log_post, np.log(np.maximum(ideal.posterior[n, 0], 1e-300)))
    log_post -= log_post.max(1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(1, keepdims=True)


def character_match_rate(episodes: Episodes, params, mixture: Mixture, character: int | str) -> float:
    """Share of episodes whose final ideal posterior's most likely character is `character`."""
    c = character_index(mixture.names, character)
    return float(np.mean(final_posterior(episodes, params, mixture).argmax(1) == c))


def steering_sweep(sim, name: str, direction, ks, key, toward: int | str, n_episodes: int = 256, world=None,
                   **prompt) -> list[dict]:  # fmt: skip
    """Act with `k · direction` added at `name` for every k (same world resets for each), and per
    k report the character-match rate towards `toward`, the return and the event rates.
    `prompt` is passed to `Simulator.act` (target=…, character=…, temperature=…)."""
    from simulacra.lenses.behaviour import from_rollouts, summarise

    mixture = Mixture.from_list(sim.card.get("corpus", {}).get("mixture", []))
    if not mixture.names:
        raise ValueError("the model's card names no corpus mixture to judge characters by")
    world = world or sim.fmt.params
    rows = []
    for k in ks:
        out = sim.act(key, n_episodes, world=world, hooks=steering_hooks(name, direction, float(k)), **prompt)
        s = summarise(from_rollouts(out, world))
        rows.append({
            "k": float(k), "match_rate": character_match_rate(out, world, mixture, toward), "return": s["return"],
            "true_return": s["true_return"], "length": s["length"],
            **{f"rate_{e}": float(np.mean(out.events[..., i].any(1))) for i, e in enumerate(EVENT_NAMES)},
        })  # fmt: skip
    return rows


__all__ = ["character_match_rate", "coin_direction", "contrastive_direction", "final_posterior", "steering_hooks", "steering_sweep", "tag_direction"]
