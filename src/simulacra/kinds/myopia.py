"""`myopia`: what myopic training costs a simulator, and where it costs it.

For each seed, two simulators are trained on the corpus from the same seed (so the same
initialisation and batches): an ordinary one and a myopic one (`PredictConfig.myopic`, Wu, Morris and Levine 2024:
the loss at a position cannot shape what earlier positions compute for later ones). Both are
scored on held-out episodes of the same world and mixture against the corpus's exact ideal
(`lenses.fidelity`), so every gap is in nats from the Bayes floor. The corpus pair `fork` /
`fork-visible` (character `committed`) is built so that pre-caching is needed on the first and not
on its twin (`corpus.ideal.hidden_information`).

Metrics, per seed (held-out episodes; nats per scored token):

    excess_nats, excess_nats_myopic     mean excess log-loss over the ideal, all scored tokens
    myopia_gap                          excess_nats_myopic − excess_nats
    myopia_gap_actions                  the same on action tokens only
    myopia_gap_hidden                   the same on the action tokens of the steps at which the
                                        history holds more than `hidden_threshold` nats about the
                                        acting character that the state does not (nan if none)
    hidden_information                  mean I(c; h_t | s_t) per live step of the held-out episodes
    hidden_steps                        share of live steps above `hidden_threshold`
    choice_probe, choice_probe_myopic   accuracy of a linear probe (`lenses.probes.probe_score`,
                                        folds by episode) for the acting character from the last
                                        block's residual at those steps: the future choice, read
                                        where only the history shows it (nan if < 2 episodes have such steps)
    choice_probe_baseline               the same probe on a randomly initialised model
    train_seconds                       wall time of training both models, per seed

Series `myopia` (per seed): per step t, the mean hidden information and both models' mean excess
on the action token.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from pydantic import Field, model_validator

from simulacra.corpus.ideal import compute_ideal, hidden_information, token_logloss
from simulacra.corpus.tokens import ACTION, encode
from simulacra.kinds.inputs import PREDICT_FIELDS, ModelFields, get_corpus, get_heldout, get_models
from simulacra.kinds.sections import myopia_gaps
from simulacra.lenses.fidelity import token_stats
from simulacra.lenses.probes import probe_score, step_activations, step_index
from simulacra.model import Simulator
from simulacra.studies import Context, Result, register_process
from simulacra.training.predict import PredictConfig

class MyopiaParams(ModelFields):
    """A simulator (loss on the whole trajectory) trained twice, ordinarily and myopically."""

    heldout: int = Field(256, ge=16, le=100_000)
    """Held-out episodes the models are scored and probed on (at most 10⁵)."""
    hidden_threshold: float = Field(0.1, ge=0)
    """Nats of hidden information above which a step counts as one where only the history shows the choice."""

    @model_validator(mode="after")
    def _both(self):
        if self.myopic:
            raise ValueError("the myopia kind trains an ordinary and a myopic model from each seed; leave myopic unset")
        return self

    def configs(self) -> tuple[PredictConfig, PredictConfig]:
        """The ordinary and the myopic training runs."""
        ordinary = PredictConfig(**self.model_dump(include=PREDICT_FIELDS))
        return ordinary, dataclasses.replace(ordinary, myopic=True)


METRICS = (
    "excess_nats", "excess_nats_myopic", "myopia_gap", "myopia_gap_actions", "myopia_gap_hidden", "hidden_information",
    "hidden_steps", "choice_probe", "choice_probe_myopic", "choice_probe_baseline", "train_seconds",
)  # fmt: skip


def _excess(sim: Simulator, corpus, ideal_loss: np.ndarray, scored: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(N, L) the model's excess log-loss over the ideal at every scored position (0 elsewhere)."""
    nll = token_stats(sim, tokens)[0]
    return np.where(scored, nll - ideal_loss, 0.0)


def _mean(x: np.ndarray, sel: np.ndarray) -> float:
    return float(x[sel].mean()) if sel.any() else float("nan")


def _probe(sim: Simulator, corpus, rows: np.ndarray, ep: np.ndarray) -> float:
    if len(np.unique(ep[rows])) < 2:
        return float("nan")
    name = f"blocks.{sim.spec.n_layers - 1}.hook_resid_post"
    x = step_activations(sim, corpus, [name])[name][rows]
    y = np.asarray(corpus.episodes.character, np.int64)[ep[rows]]
    return probe_score(x, y, ep[rows], classification=True, folds=5)


@register_process(
    "myopia", params=MyopiaParams, metrics=METRICS, needs_corpus=True, batch_seeds=True, sections=(myopia_gaps,),
    description="an ordinary and a myopic simulator of the corpus, scored against its exact ideal on held-out episodes, "
    "and probed for the acting character where only the history shows it",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    p: MyopiaParams = ctx.params
    corpus = get_corpus(ctx)
    ordinary_cfg, myopic_cfg = p.configs()
    ordinary = get_models(ctx, corpus, ordinary_cfg, seeds)
    myopic = get_models(ctx, corpus, myopic_cfg, seeds)
    held = get_heldout(ctx, p.heldout)
    ideal = compute_ideal(held)
    fmt = ordinary[0].fmt
    ideal_loss, _, scored = token_logloss(held, ideal, fmt)
    enc = encode(held, fmt)
    tokens, types = enc["tokens"], enc["types"]
    hidden = hidden_information(held, ideal)  # (N, T)
    live = np.asarray(held.mask, bool)
    above = live & (hidden > p.hidden_threshold)
    n, horizon = hidden.shape
    # the action token of every (episode, t), and which of them are at hidden steps
    t_grid = np.broadcast_to(np.arange(horizon), (n, horizon))
    act_pos = np.asarray(fmt.action_pos(t_grid))
    action_sel = scored & (types == ACTION)
    hidden_sel = np.zeros_like(scored)
    rows_n, rows_t = np.nonzero(above)
    hidden_sel[rows_n, act_pos[rows_n, rows_t]] = True
    hidden_sel &= action_sel
    ep, t = step_index(held)
    probe_rows = np.nonzero(above[ep, t])[0]

    results = []
    for s, sim, my in zip(seeds, ordinary, myopic):
        ex, ex_my = (_excess(m, held, ideal_loss, scored, tokens) for m in (sim, my))
        rnd = Simulator.init(sim.spec, held.params, jax.random.PRNGKey(10_000 + s))
        rnd.card = dict(sim.card)
        per_t = lambda x: [_mean(x[np.arange(n), act_pos[:, k]], live[:, k] & action_sel[np.arange(n), act_pos[:, k]]) for k in range(horizon)]  # noqa: E731
        metrics = {
            "excess_nats": _mean(ex, scored),
            "excess_nats_myopic": _mean(ex_my, scored),
            "myopia_gap": _mean(ex_my - ex, scored),
            "myopia_gap_actions": _mean(ex_my - ex, action_sel),
            "myopia_gap_hidden": _mean(ex_my - ex, hidden_sel),
            "hidden_information": float(hidden[live].mean()),
            "hidden_steps": float(above.sum() / max(live.sum(), 1)),
            "choice_probe": _probe(sim, held, probe_rows, ep),
            "choice_probe_myopic": _probe(my, held, probe_rows, ep),
            "choice_probe_baseline": _probe(rnd, held, probe_rows, ep),
            "train_seconds": sum(float(m.card.get("metrics", {}).get("train_seconds", float("nan"))) for m in (sim, my)),
        }
        series = {"myopia": {
            "t": list(range(horizon)),
            "hidden_information": [_mean(hidden[:, k], live[:, k]) for k in range(horizon)],
            "action_excess": per_t(ex), "action_excess_myopic": per_t(ex_my),
        }}  # fmt: skip
        results.append(Result(metrics, series))
    return results
