"""Tables that summarise a corpus (used by `simulacra corpus show`)."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from simulacra.world.core import EVENT_NAMES


def character_rows(corpus) -> list[dict]:
    """Per character (and overall): episodes, mean return, true return, fraction of optimal,
    length, and the fraction of episodes in which each event happened at least once."""
    a = corpus.episodes
    frac = corpus.fraction_of_optimal
    ever = a.events.any(axis=1)  # (N, len(EVENT_NAMES))
    groups = [(name, a.character == i) for i, name in enumerate(corpus.mixture.names)]
    groups.append(("all", np.ones(corpus.n_episodes, bool)))
    rows = []
    for name, sel in groups:
        if not sel.any():
            rows.append({"character": name, "episodes": 0})
            continue
        row = {
            "character": name,
            "episodes": int(sel.sum()),
            "return": float(a.return_[sel].mean()),
            "true_return": float(a.true_return[sel].mean()),
            "fraction_of_optimal": float(np.nanmean(frac[sel])) if np.isfinite(frac[sel]).any() else float("nan"),
            "length": float(a.length[sel].mean()),
            "terminated": float(a.terminated[sel].mean()),
        }
        row.update({f"event_{e}": float(ever[sel, i].mean()) for i, e in enumerate(EVENT_NAMES)})
        rows.append(row)
    return rows


def summary_tables(corpus, with_ideal: bool = True) -> list[Table]:
    head = Table(title=f"corpus {corpus.path or ''}", show_header=False)
    head.add_row("world", f"{corpus.params.name} ({corpus.params.height}x{corpus.params.width}, horizon {corpus.horizon})")
    head.add_row("mixture", ", ".join(f"{n}:{w:.3g}" for n, w in zip(corpus.mixture.names, corpus.mixture.weights)))
    head.add_row("episodes", f"{corpus.n_episodes} ({corpus.n_transitions} transitions), seed {corpus.seed}")
    if corpus.parent is not None:
        head.add_row("parent", f"{corpus.parent.get('path')} (sha256 {str(corpus.parent.get('sha256'))[:16]}…)")
        f = corpus.filter or {}
        head.add_row("filter", f"top {f.get('top')} by return" + (" within each character" if f.get("per_character") else ""))
    tables = [head]

    ret = Table(title="returns by character (means over episodes)")
    for col in ("character", "episodes", "return", "true return", "of optimal", "length", "terminated"):
        ret.add_column(col, justify="left" if col == "character" else "right")
    events = Table(title="event rates (fraction of episodes with the event)")
    events.add_column("character")
    for e in EVENT_NAMES:
        events.add_column(e, justify="right")
    for r in character_rows(corpus):
        if r["episodes"] == 0:
            ret.add_row(r["character"], "0", *["-"] * 5)
            continue
        ret.add_row(
            r["character"], str(r["episodes"]), f"{r['return']:.3f}", f"{r['true_return']:.3f}",
            f"{r['fraction_of_optimal']:.3f}", f"{r['length']:.1f}", f"{r['terminated']:.2f}",
        )
        events.add_row(r["character"], *[f"{r[f'event_{e}']:.2f}" for e in EVENT_NAMES])
    tables += [ret, events]

    if with_ideal:
        from simulacra.corpus.ideal import compute_ideal, logloss_by_type

        ideal = compute_ideal(corpus)
        loss = Table(title="ideal predictor: log-loss per token type (nats/token, scored tokens)")
        for col in ("token type", "tokens", "ideal log-loss", "ideal entropy"):
            loss.add_column(col, justify="left" if col == "token type" else "right")
        for ty, v in logloss_by_type(corpus, ideal).items():
            loss.add_row(ty, str(v["tokens"]), f"{v['logloss']:.4f}", f"{v['entropy']:.4f}")
        mask = corpus.mask
        base = Table(title="action log-loss of each character's policy as a predictor (nats/action)")
        base.add_column("predictor")
        base.add_column("log-loss", justify="right")
        base.add_row("ideal (posterior mixture)", f"{ideal.action_logloss[mask].mean():.4f}")
        for i, name in enumerate(corpus.mixture.names):
            base.add_row(name, f"{ideal.character_logloss[..., i][mask].mean():.4f}")
        tables += [loss, base]
    return tables
