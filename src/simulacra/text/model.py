"""Text simulators: the project's transformer, trained by `predict`'s loop, on a text corpus.

The token format (`TextFormat`) of one document is

    [BOS] [TAG p]? w_0 w_1 … <eod> PAD …

with local ids PAD = 0, BOS = 1, TAG p = 2 + p (the 16 personas) and word v = 18 + v (the
grammar's vocabulary, `<eod>` first). The vocabulary is the generator's own: no tokenizer.
Every row has the same length, `prefix_len + Tables.max_len`, so the word at position t of a
document sits at token `prefix_len + t` in every row. Loss is on the words (`<eod>` included),
never on the prompt; with `tagged` the prompt names the persona (the text analogue of the
gridworld's character slot).

`fit_text(corpus, config, seeds)` trains with `training.predict.train_loop` (the same jitted,
seed-vmapped loop as the gridworld simulators) and returns `TextSimulator`s, which save and load
as checkpoints (`model.checkpoint`) whose card holds the format (grammar and tag flag).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.model.checkpoint import CheckpointError, load_model, save_model
from simulacra.model.spec import ModelSpec
from simulacra.nets.transformer import Hooks, Transformer, TransformerConfig
from simulacra.text.corpus import PAD as WORD_PAD
from simulacra.text.corpus import TextCorpus, tables_of
from simulacra.text.grammar import N_PERSONAS, Grammar

PAD, BOS, TAG0 = 0, 1, 2
WORD0 = TAG0 + N_PERSONAS


@dataclasses.dataclass(frozen=True, eq=False)
class TextFormat:
    """The token rows of a text corpus (see the module docstring)."""

    grammar: Grammar
    tagged: bool = False

    @functools.cached_property
    def words(self) -> tuple[str, ...]:
        return self.grammar.words

    @property
    def prefix_len(self) -> int:
        return 2 if self.tagged else 1

    @functools.cached_property
    def length(self) -> int:
        return self.prefix_len + tables_of(self.grammar).max_len

    @property
    def vocab_size(self) -> int:
        return WORD0 + len(self.words)

    def encode(self, corpus: TextCorpus) -> tuple[np.ndarray, np.ndarray]:
        """(tokens (N, length) int32, loss mask (N, length) bool: the positions holding words)."""
        if corpus.grammar.to_dict() != self.grammar.to_dict():
            raise ValueError("the corpus speaks another grammar than this model's format")
        n, width = corpus.words.shape
        tokens = np.zeros((n, self.length), np.int32)
        tokens[:, 0] = BOS
        if self.tagged:
            tokens[:, 1] = TAG0 + corpus.personas.astype(np.int32)
        live = corpus.words != WORD_PAD
        tokens[:, self.prefix_len :] = np.where(live, corpus.words.astype(np.int32) + WORD0, PAD)
        mask = np.zeros((n, self.length), bool)
        mask[:, self.prefix_len :] = live
        return tokens, mask

    def decode(self, tokens: np.ndarray) -> list[str]:
        """Token rows back to text (words up to `<eod>`, the tag as "[persona]")."""
        from simulacra.text.grammar import persona_name

        out = []
        for row in np.asarray(tokens):
            parts = []
            for tok in row[1:]:
                tok = int(tok)
                if TAG0 <= tok < WORD0:
                    parts.append(f"[{persona_name(tok - TAG0)}]")
                elif tok >= WORD0:
                    if tok - WORD0 == 0:  # <eod>
                        break
                    parts.append(self.words[tok - WORD0])
            out.append(" ".join(parts))
        return out

    def to_dict(self) -> dict:
        return {"grammar": self.grammar.to_dict(), "tagged": self.tagged}

    @classmethod
    def from_dict(cls, d: dict) -> "TextFormat":
        return cls(Grammar.from_dict(d["grammar"]), bool(d["tagged"]))


@dataclasses.dataclass
class TextSimulator:
    """A transformer trained on a text corpus, with its format and card."""

    spec: ModelSpec
    fmt: TextFormat
    params: dict
    card: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spec = ModelSpec.of(self.spec)
        if self.spec.character or self.spec.rtg or self.spec.grid or self.spec.rtg_numeric:
            raise ValueError("a text model has no character, return-to-go or grid slots (the persona tag is TextFormat.tagged)")
        self.model = Transformer(self.spec.transformer(self.fmt))

    @classmethod
    def init(cls, spec: ModelSpec, fmt: TextFormat, key: jax.Array) -> "TextSimulator":
        """A randomly initialised text model (the random baseline of probes)."""
        sim = cls(spec, fmt, {}, {"process": {"name": "init"}})
        sim.params = sim.model.init(key, jnp.zeros((1, fmt.length - 1), jnp.int32))
        return sim

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        card = {**self.card, "model_spec": dataclasses.asdict(self.spec), "text_format": self.fmt.to_dict()}
        return save_model(path, self.params, self.model.config, card, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> "TextSimulator":
        params, arch, card = load_model(path)
        if "text_format" not in card:
            raise CheckpointError(f"{path} is a gridworld model, not a text model")
        try:
            sim = cls(ModelSpec.of(card["model_spec"]), TextFormat.from_dict(card["text_format"]), params, card)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: the card does not describe a text model ({e})") from None
        if sim.model.config != arch:
            raise CheckpointError(f"{path}: the card's architecture does not match its model spec")
        return sim

    def word_nll(self, corpus: TextCorpus, batch: int = 256, hooks: Hooks | None = None) -> np.ndarray:
        """(N, max_len) the model's −log p of each word of each document (0 at padding), with
        `hooks` (e.g. a steering vector) applied."""
        tokens, mask = self.fmt.encode(corpus)
        from simulacra.training.predict import _per_token_fn

        fn = _per_token_fn(self.model.config)  # (B, L) −log p of each token given those before, 0 at position 0
        out = []
        for i in range(0, len(tokens), batch):
            chunk = tokens[i : i + batch]
            n = len(chunk)
            if n < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - n, 0)])
            out.append(np.asarray(fn(self.params, jnp.asarray(chunk), hooks))[:n])
        nll = np.concatenate(out) * mask
        return nll[:, self.fmt.prefix_len :]

    def generate(self, key: jax.Array, n: int, persona: int | None = None, temperature: float = 1.0, hooks: Hooks | None = None) -> np.ndarray:
        """(n, length) token rows sampled from the model (the tag slot set to `persona` when the
        format is tagged; a tagged format needs one), with `hooks` (e.g. a steering vector added
        at a layer) applied at every position. Decode them with `fmt.decode`."""
        if self.fmt.tagged and persona is None:
            raise ValueError("this model's prompt names a persona: give one to generate")
        if not self.fmt.tagged and persona is not None:
            raise ValueError("this model was trained without persona tags: it cannot be prompted with one")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        tokens = np.zeros((n, self.fmt.length), np.int32)
        tokens[:, 0] = BOS
        if self.fmt.tagged:
            tokens[:, 1] = TAG0 + int(persona)
        fn = _generate_fn(self.model.config, self.fmt.prefix_len, WORD0)
        out = fn(self.params, jnp.asarray(tokens), key, jnp.float32(temperature), hooks if hooks is not None else Hooks())
        return np.asarray(out)


@functools.lru_cache(maxsize=16)
def _generate_fn(config: TransformerConfig, prefix_len: int, word0: int):
    """Sample the words one position at a time (a full forward pass per position: documents are
    a few dozen tokens). Only word tokens are sampled; after `<eod>` the row is PAD."""
    model = Transformer(config)
    eod = word0  # <eod> is the grammar's word 0

    @jax.jit
    def gen(params, tokens, key, temperature, hooks):
        n, length = tokens.shape

        def body(carry, pos):
            tokens, done, key = carry
            key, k = jax.random.split(key)
            logits, _ = model.apply(params, tokens[:, :-1], hooks)
            step = jax.lax.dynamic_index_in_dim(logits, pos - 1, axis=1, keepdims=False)  # predicts token `pos`
            step = jnp.where(jnp.arange(step.shape[-1]) >= word0, step, -jnp.inf)  # words only
            w = jax.random.categorical(k, step / temperature, axis=-1)
            w = jnp.where(done, PAD, w)
            tokens = jax.lax.dynamic_update_index_in_dim(tokens, w[:, None].astype(tokens.dtype), pos, axis=1)
            return (tokens, done | (w == eod), key), None

        (tokens, _, _), _ = jax.lax.scan(body, (tokens, jnp.zeros(n, bool), key), jnp.arange(prefix_len, length))
        return tokens

    return gen


def fit_text(corpus: TextCorpus, config, seeds=(0,), tagged: bool = False, progress: bool = True) -> list[TextSimulator]:
    """Train one text simulator per seed on `corpus` (`config`: a `training.predict.PredictConfig`;
    its loss is always on the words). Seeds are vmapped, as `fit_seeds` does."""
    import simulacra
    from simulacra.training.predict import TrainData, loss_summary, train_loop

    if config.character or config.rtg or config.grid or config.rtg_numeric:
        raise ValueError("a text model has no character, return-to-go or grid slots; use tagged=True to prompt with the persona")
    seeds = [int(s) for s in seeds]
    fmt = TextFormat(corpus.grammar, tagged)
    tokens, mask = fmt.encode(corpus)
    # the BOS (and tag) are the prompt: the first target is the first word
    data = TrainData(jnp.asarray(tokens), jnp.asarray(mask))
    params, loss, seconds = train_loop(config, data, fmt, seeds, progress, batched=len(seeds) > 1)
    out = []
    for j, seed in enumerate(seeds):
        card = {
            "simulacra_version": simulacra.__version__,
            "process": {"name": "predict", "config": dataclasses.asdict(config)},
            "seed": seed,
            "corpus": {"family": "text", "mixture": corpus.mixture.to_list(), "seed": corpus.seed, "n_documents": corpus.n_documents},
            "metrics": loss_summary(loss[j], seconds),
        }
        out.append(TextSimulator(config.spec, fmt, params[j], card))
    return out


def excess_nats(sim: TextSimulator, corpus: TextCorpus, ideal=None) -> float:
    """Mean over the corpus's words of the model's log-loss minus the ideal's (nats per word;
    the ideal of the model's own format: tagged or not)."""
    from simulacra.text.corpus import text_ideal

    ideal = ideal if ideal is not None else text_ideal(corpus, tagged=sim.fmt.tagged)
    live = corpus.words != WORD_PAD
    return float((sim.word_nll(corpus)[live] + ideal.logp[live]).mean())


__all__ = ["BOS", "PAD", "TAG0", "WORD0", "TextFormat", "TextSimulator", "excess_nats", "fit_text"]
