"""What a prompt does to a simulator: return targets and character tags.

* `return_sweep(sim, targets, key)` — a return-conditioned model (Decision Transformer) acts in the
  world prompted with each target; the achieved return (mean, 95% CI), success and fraction of
  the optimal return per target. The Decision Transformer paper's Figure 4 analogue: include
  targets above the best return in the corpus to see what the model does when asked for more
  than it has seen. `monotone` says whether the achieved means never fall as the target rises
  (within their CIs: a drop counts only when the two intervals do not overlap) and `spearman`
  gives the rank correlation of target and achieved return over episodes.
* `character_match(sim, key)` — a character-conditioned model acts prompted with each tag of its
  corpus's mixture; at every state it visits, KL(π_c ‖ model) between each character's policy
  and the model's action distribution (renormalised over actions). Row = prompted character,
  column = reference character; a model that renders its characters faithfully has a small
  diagonal and `matches` = the prompted character is the closest one for every prompt.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from simulacra.characters import Mixture, navigate
from simulacra.corpus.episodes import Episodes
from simulacra.world.core import COIN
from simulacra.world.tokens import decode


def _ci(x: np.ndarray) -> tuple[float, float]:
    """95% confidence interval of a mean (Student t; a point if there is no spread)."""
    x = np.asarray(x, float)
    if len(x) < 2 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean())
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(lo), float(hi)


def return_sweep(sim, targets, key, n_episodes: int = 256, temperature: float = 1.0, character=None, world=None) -> dict:
    """Achieved return for each prompted target (the same world resets for every target)."""
    targets = [float(t) for t in targets]
    if not targets:
        raise ValueError("return_sweep needs at least one target")
    rows = []
    all_t, all_r = [], []
    for target in targets:
        out = sim.act(key, n_episodes, target=target, character=character, temperature=temperature, world=world)
        ret, opt = out.return_, out.optimal_return
        frac = np.where(opt > 0, out.true_return / np.where(opt > 0, opt, 1.0), np.nan)
        rows.append(
            {
                "target": target,
                "return": float(ret.mean()),
                "return_ci": _ci(ret),
                "true_return": float(out.true_return.mean()),
                "optimal_return": float(opt.mean()),
                "fraction_of_optimal": float(np.nanmean(frac)) if np.isfinite(frac).any() else float("nan"),
                "success": float((out.events[..., COIN].sum(1) > 0).mean()),
                "length": float(out.length.mean()),
            }
        )
        all_t.append(np.full(n_episodes, target))
        all_r.append(ret)
    order = np.argsort(targets)
    monotone = all(
        rows[b]["return_ci"][1] >= rows[a]["return_ci"][0] for a, b in zip(order[:-1], order[1:])
    )
    rho = stats.spearmanr(np.concatenate(all_t), np.concatenate(all_r)) if len(set(targets)) > 1 else None
    return {
        "rows": rows,
        "monotone": bool(monotone),
        "strictly_rising_means": bool(all(rows[b]["return"] >= rows[a]["return"] for a, b in zip(order[:-1], order[1:]))),
        "spearman": None if rho is None else float(rho.statistic),
        "spearman_pvalue": None if rho is None else float(rho.pvalue),
        "n_episodes": n_episodes,
    }


_POLICIES: dict = {}


def _policies(mixture: Mixture, world):
    """jit: scene (N, L), states (N, T+1, S) -> every character's action probabilities (N, T, C, A)."""
    key = (mixture, world)
    if key not in _POLICIES:

        def episode(scene, states):
            seq = jax.vmap(lambda tok: decode(scene, tok, world))(states[:-1])
            nav = navigate(decode(scene, states[0], world), world)
            return jax.vmap(lambda s: mixture.probs(s, world, nav))(seq)

        _POLICIES[key] = jax.jit(jax.vmap(episode))
    return _POLICIES[key]


def character_kl(episodes: Episodes, mixture: Mixture, world) -> np.ndarray:
    """(C,) mean over the visited steps of a model's rollouts (`Simulator.act`, with
    `action_probs`) of KL(π_c ‖ model) for every character c of `mixture`."""
    e = episodes
    ref = np.asarray(_policies(mixture, world)(jnp.asarray(e.scene, jnp.int32), jnp.asarray(e.states, jnp.int32)))
    q = e.action_probs[:, :, None, :]  # (N, T, 1, A)
    terms = np.where(ref > 0, ref * (np.log(np.maximum(ref, 1e-30)) - np.log(np.maximum(q, 1e-30))), 0.0)
    return terms.sum(-1)[e.mask].mean(0)  # per step (N, T, C) -> (C,)


def character_match(sim, key, n_episodes: int = 256, temperature: float = 1.0, target=None, world=None) -> dict:
    """KL(π_ref ‖ model | prompted) for every pair of (prompted, reference) characters."""
    if not sim.fmt.character:
        raise ValueError("character_match needs a model with a character slot (PredictConfig.character=True)")
    mixture = Mixture.from_list(sim.card.get("corpus", {}).get("mixture", []))
    world = world or sim.fmt.params
    names = mixture.names
    kl = np.zeros((len(names), len(names)))
    for c in range(len(names)):
        kl[c] = character_kl(sim.act(key, n_episodes, target=target, character=c, temperature=temperature, world=world), mixture, world)
    return {
        "characters": list(names),
        "kl": kl.tolist(),
        "diagonal": {n: float(kl[i, i]) for i, n in enumerate(names)},
        "matches": bool(np.all(kl.argmin(1) == np.arange(len(names)))),
        "n_episodes": n_episodes,
    }
