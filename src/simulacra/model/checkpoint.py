"""Model checkpoints: parameters in msgpack (flax.serialization, never pickle) and a JSON model
card that is enough to rebuild the model (architecture, process, world, corpus, metrics).

A checkpoint is a directory: `params.msgpack` and `card.json` (schema, version, the params
file's SHA-256). Writes are atomic (temporary sibling directory, then rename). Loading verifies
the schema, the checksum, that the params file decodes, and that the stored parameters have
exactly the shapes of the card's architecture (a checksum re-signed over other bytes is not
trusted blindly); any problem raises one `CheckpointError` naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from simulacra.atomic import write_dir
from simulacra.nets.transformer import Transformer, TransformerConfig

SCHEMA = "simulacra.model"
SCHEMA_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (the message names the problem)."""


def write_checkpoint(path: str | Path, params, card: dict, schema: str, version: int, what: str, overwrite: bool = False) -> Path:
    """Write `params.msgpack` and `card.json` (`card` plus schema, version and the params' SHA-256)
    to the directory `path`, atomically. Only a checkpoint of the same `schema` is ever replaced;
    `what` names the kind in messages ("checkpoint", "agent")."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise CheckpointError(f"{path} already exists; choose another directory or overwrite it explicitly")
        if card_schema(path) != schema:
            raise CheckpointError(f"{path} exists and is not a simulacra {what}; refusing to replace it")
    blob = serialization.to_bytes(jax.device_get(params))
    # the card's own fields first: a card copied from a loaded checkpoint (a fine-tuned model's, say)
    # carries that checkpoint's schema fields and hash, which must not override these params' own
    full = {**card, "schema": schema, "schema_version": version, "params_sha256": hashlib.sha256(blob).hexdigest()}

    def fill(tmp: Path) -> None:
        (tmp / "params.msgpack").write_bytes(blob)
        (tmp / "card.json").write_text(json.dumps(full, indent=2))

    return write_dir(path, fill)


def card_schema(path: Path) -> str | None:
    """The schema named by `path/card.json`, or None if there is no readable card."""
    try:
        return json.loads((path / "card.json").read_text()).get("schema")
    except (OSError, ValueError, AttributeError):
        return None


def read_card(path: Path, schema: str, version: int, what: str, card_name: str) -> dict:
    """The verified card of a checkpoint directory (`what`: "checkpoint", "agent"; `card_name`:
    "model card", "agent card" — for messages)."""
    try:
        card = json.loads((path / "card.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not {'an' if what[0] in 'aeiou' else 'a'} {what}: no card.json") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}/card.json cannot be read as JSON ({e})") from None
    if not isinstance(card, dict) or card.get("schema") != schema:
        raise CheckpointError(f"{path}/card.json is not a simulacra {card_name}")
    if card.get("schema_version") != version:
        kind = card_name.split()[0]
        raise CheckpointError(f"{path} has {kind} schema version {card.get('schema_version')!r}; this simulacra reads {version}")
    return card


def read_params(path: Path, card: dict, target, described_by: str):
    """The stored parameters, verified against the card's checksum and restored into the
    structure of `target` (an abstract pytree of the expected shapes); `described_by` names what
    fixes the shapes in the message ("architecture", "network")."""
    try:
        blob = (path / "params.msgpack").read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: params.msgpack is missing") from None
    if hashlib.sha256(blob).hexdigest() != card.get("params_sha256"):
        raise CheckpointError(f"{path}: checksum mismatch for params.msgpack; the file was changed or corrupted")
    try:
        stored = serialization.msgpack_restore(blob)
    except Exception as e:  # msgpack and flax's array hook signal bytes that are not theirs with many exception types
        message = f"params.msgpack cannot be decoded as flax msgpack ({e.__class__.__name__}); the file is corrupt"
        raise CheckpointError(f"{path}: {message}") from None
    want = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(serialization.to_state_dict(target))}
    have = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(stored)}
    if want != have:
        missing = sorted(set(want) - set(have))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        detail = (
            f"parameter {wrong[0]} has shape {have[wrong[0]]}, the {described_by} needs {want[wrong[0]]}"
            if wrong
            else f"parameter {missing[0]} is missing" if missing else f"unexpected parameter {sorted(set(have) - set(want))[0]}"
        )
        raise CheckpointError(f"{path}: the parameters do not fit the card's {described_by}: {detail}")
    return jax.tree.map(jnp.asarray, serialization.from_state_dict(target, stored))


def save_model(path: str | Path, params, config: TransformerConfig, card: dict | None = None, overwrite: bool = False) -> Path:
    """Write `params` of a `Transformer(config)` and a model card (`card` adds process, world,
    corpus and metrics entries) to the directory `path`."""
    full = {**(card or {}), "architecture": dataclasses.asdict(config)}  # the weights' own architecture wins
    return write_checkpoint(path, params, full, SCHEMA, SCHEMA_VERSION, "checkpoint", overwrite)


def _is_checkpoint(path: Path) -> bool:
    return card_schema(Path(path)) == SCHEMA


def load_model(path: str | Path) -> tuple[dict, TransformerConfig, dict]:
    """(params, architecture, card) of a checkpoint directory."""
    path = Path(path)
    card = read_card(path, SCHEMA, SCHEMA_VERSION, "checkpoint", "model card")
    try:
        config = TransformerConfig(**card["architecture"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the card's architecture is invalid ({e})") from None
    target = jax.eval_shape(lambda: Transformer(config).init(jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32)))
    return read_params(path, card, target, "architecture"), config, card
