"""Model checkpoints: parameters in msgpack (flax.serialization, never pickle) and a JSON model
card that is enough to rebuild the model (architecture, process, world, corpus, metrics).

A checkpoint is a directory: `params.msgpack` and `card.json` (schema, version, the params
file's SHA-256). Writes are atomic (temporary sibling directory, then rename). Loading verifies
the schema, the checksum and that the stored parameters have exactly the shapes of the card's
architecture; any problem raises one `CheckpointError` naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import serialization

from simulacra.atomic import write_dir
from simulacra.nets.transformer import Transformer, TransformerConfig

SCHEMA = "simulacra.model"
SCHEMA_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (the message names the problem)."""


def save_model(path: str | Path, params, config: TransformerConfig, card: dict | None = None, overwrite: bool = False) -> Path:
    """Write `params` of a `Transformer(config)` and a model card (`card` adds process, world,
    corpus and metrics entries) to the directory `path`."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise CheckpointError(f"{path} already exists; choose another directory or overwrite it explicitly")
        if not _is_checkpoint(path):
            raise CheckpointError(f"{path} exists and is not a simulacra checkpoint; refusing to replace it")
    blob = serialization.to_bytes(jax.device_get(params))
    full = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "architecture": dataclasses.asdict(config),
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        **(card or {}),
    }

    def fill(tmp: Path) -> None:
        (tmp / "params.msgpack").write_bytes(blob)
        (tmp / "card.json").write_text(json.dumps(full, indent=2))

    return write_dir(path, fill)


def _is_checkpoint(path: Path) -> bool:
    try:
        return json.loads((path / "card.json").read_text()).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def load_model(path: str | Path) -> tuple[dict, TransformerConfig, dict]:
    """(params, architecture, card) of a checkpoint directory."""
    path = Path(path)
    try:
        card = json.loads((path / "card.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a checkpoint: no card.json") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}/card.json cannot be read as JSON ({e})") from None
    if not isinstance(card, dict) or card.get("schema") != SCHEMA:
        raise CheckpointError(f"{path}/card.json is not a simulacra model card")
    if card.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"{path} has model schema version {card.get('schema_version')!r}; this simulacra reads {SCHEMA_VERSION}")
    try:
        config = TransformerConfig(**card["architecture"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the card's architecture is invalid ({e})") from None
    try:
        blob = (path / "params.msgpack").read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: params.msgpack is missing") from None
    if hashlib.sha256(blob).hexdigest() != card.get("params_sha256"):
        raise CheckpointError(f"{path}: checksum mismatch for params.msgpack; the file was changed or corrupted")
    target = jax.eval_shape(lambda: Transformer(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32)))
    stored = serialization.msgpack_restore(blob)
    want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(serialization.to_state_dict(target))}
    have = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(stored)}
    if want != have:
        missing = sorted(set(want) - set(have))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        detail = (
            f"parameter {wrong[0]} has shape {have[wrong[0]]}, the architecture needs {want[wrong[0]]}"
            if wrong
            else f"parameter {missing[0]} is missing" if missing else f"unexpected parameter {sorted(set(have) - set(want))[0]}"
        )
        raise CheckpointError(f"{path}: the parameters do not fit the card's architecture: {detail}")
    params = serialization.from_state_dict(target, stored)
    return jax.tree.map(jnp.asarray, params), config, card
