"""Where two models differ, layer by layer: a simulator before and after RL fine-tuning, or two
fine-tuning snapshots.

    weight_change(before, after)          # {layer: ‖Δθ‖ / ‖θ_before‖}: embed, blocks.0 … blocks.L-1, unembed
    cka_by_layer(before, after, corpus)   # {name: linear CKA of the two models' activations on the same steps}
    transplant(base, donor, "blocks.1")   # base with that layer's weights taken from donor

`linear_cka(X, Y)` is the linear centred kernel alignment of Kornblith et al. (2019):
‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) for column-centred X (n × d₁) and Y (n × d₂): 1 for
representations equal up to rotation and isotropic scaling, near 0 for unrelated ones.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from simulacra.lenses.probes import first_episodes, residual_names, step_activations


def _groups(n_layers: int) -> dict[str, tuple[str, ...]]:
    """Layer name -> the top-level parameter collections (flax module names) it owns."""
    g = {"embed": ("embed", "pos_embed", "grid_row", "grid_col", "numeric_base", "numeric_slope")}  # grid/numeric: optional
    for i in range(n_layers):
        g[f"blocks.{i}"] = (f"block_{i}",)
    g["unembed"] = ("ln_final", "unembed")
    return g


def _leaves(params, keys: tuple[str, ...]) -> list[np.ndarray]:
    p = params["params"]
    return [np.asarray(x, np.float64) for k in keys if k in p for x in jax.tree.leaves(p[k])]


def weight_change(before, after) -> dict[str, float]:
    """Per layer, the relative change of its weights: ‖θ_after − θ_before‖ / ‖θ_before‖ (Frobenius
    over all of the layer's arrays). Both models must share an architecture."""
    if before.model.config != after.model.config:
        raise ValueError("weight_change needs two models of the same architecture")
    out = {}
    for layer, keys in _groups(before.spec.n_layers).items():
        a, b = _leaves(before.params, keys), _leaves(after.params, keys)
        num = np.sqrt(sum(float(np.sum((y - x) ** 2)) for x, y in zip(a, b)))
        den = np.sqrt(sum(float(np.sum(x**2)) for x in a))
        out[layer] = num / den if den > 0 else float("nan")
    return out


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n inputs (rows)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    if len(x) != len(y):
        raise ValueError(f"linear_cka needs the same inputs: {len(x)} rows vs {len(y)}")
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else float("nan")


def cka_by_layer(a, b, corpus, names=None, max_episodes: int = 256) -> dict[str, float]:
    """Linear CKA between two models' activations at every live step of the same corpus episodes
    (teacher-forced), per named activation (default: the residual stream after each layer)."""
    corpus = first_episodes(corpus, max_episodes)
    names = list(names or residual_names(a.spec.n_layers))
    xa, xb = step_activations(a, corpus, names), step_activations(b, corpus, names)
    return {n: linear_cka(xa[n], xb[n]) for n in names}


def transplant(base, donor, layer: str):
    """A copy of `base` whose `layer` ("embed", "blocks.i" or "unembed") has `donor`'s weights."""
    groups = _groups(base.spec.n_layers)
    if layer not in groups:
        raise ValueError(f"unknown layer {layer!r}; known: {', '.join(groups)}")
    if base.model.config != donor.model.config:
        raise ValueError("transplant needs two models of the same architecture")
    params = {"params": dict(base.params["params"])}
    for k in groups[layer]:
        if k in donor.params["params"]:
            params["params"][k] = donor.params["params"][k]
    card = {**base.card, "transplant": {"layer": layer, "donor": donor.card.get("process", {})}}
    return dataclasses.replace(base, params=params, card=card)


def layer_names(n_layers: int) -> list[str]:
    """The layer names `weight_change` and `transplant` use."""
    return list(_groups(n_layers))


__all__ = ["cka_by_layer", "layer_names", "linear_cka", "transplant", "weight_change"]
