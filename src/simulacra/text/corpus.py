"""Text corpora: documents spoken by a mixture of personas, and their exact ideal predictor.

`make_text_corpus(grammar, mixture, n, seed)` draws `n` documents: a persona from the mixture,
then a walk through the compiled grammar (`Grammar.compile`), all documents at once in one
`lax.scan`, with randomness only from `jax.random.PRNGKey(seed)`. A document's words are stored
up to and including `<eod>`, padded with `PAD` (−1) to the grammar's longest document.

`text_ideal(corpus)` is the Bayes-optimal predictor of the corpus: because the automaton's
state after a prefix is a function of the prefix, P(prefix | persona) is a product of table
entries, so the posterior over the mixture's personas after t words is

    P(p | w_<t) ∝ π_p · Π_{s<t} P_p(w_s | state_s)

and the ideal next-word distribution is Σ_p P(p | w_<t) · P_p(· | state_t). With `tagged=True`
(documents whose prompt names the persona) the posterior is the true persona throughout.

Storage follows the gridworld corpus (`simulacra.corpus.store`): `.npy` arrays, a manifest with
the schema version and SHA-256 of every array, atomic writes; the manifest's `family` is
"text" and it records the grammar, the mixture and the seed. Loaded arrays are range-checked,
so a re-signed checksum over nonsense is still refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np

from simulacra.corpus.store import CorpusError, read_corpus_dir, write_corpus_dir
from simulacra.text.grammar import N_PERSONAS, Grammar, PersonaMixture, Tables, default_grammar, persona_name, trait_matrix

FAMILY = "text"
PAD = -1
MAX_DOCUMENTS = 10_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class TextCorpus:
    """Documents (`words`, (N, L) int16 word ids, `PAD` after `<eod>`), their `lengths` (words,
    `<eod>` included) and `personas` (N,) int8, with the grammar, mixture and seed that made them."""

    grammar: Grammar
    mixture: PersonaMixture
    seed: int
    words: np.ndarray
    lengths: np.ndarray
    personas: np.ndarray

    family = FAMILY
    """"text" (gridworld code refuses a corpus of this family with one clear error)."""

    @property
    def n_documents(self) -> int:
        return int(len(self.words))

    @property
    def tables(self) -> Tables:
        return tables_of(self.grammar)

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.grammar.words

    def text(self, i: int) -> str:
        """Document `i` as words separated by spaces (`<eod>` left out)."""
        vocab = self.vocab
        return " ".join(vocab[w] for w in self.words[i, : int(self.lengths[i]) - 1])

    def subset(self, index) -> "TextCorpus":
        index = np.asarray(index)
        return dataclasses.replace(self, words=self.words[index], lengths=self.lengths[index], personas=self.personas[index])

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        meta = {
            "family": FAMILY,
            "grammar": self.grammar.to_dict(),
            "mixture": self.mixture.to_list(),
            "seed": int(self.seed),
            "documents": self.n_documents,
        }
        arrays = {"words": self.words, "lengths": self.lengths, "personas": self.personas}
        return write_corpus_dir(path, arrays, meta, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "TextCorpus":
        manifest, arrays = read_corpus_dir(path, verify=verify)
        if manifest.get("family") != FAMILY:
            raise CorpusError(f"{path} is a gridworld corpus, not a text corpus")
        try:
            grammar = Grammar.from_dict(manifest["grammar"])
            mixture = PersonaMixture.from_list(manifest["mixture"])
            seed = int(manifest["seed"])
            words, lengths, personas = arrays["words"], arrays["lengths"], arrays["personas"]
        except (KeyError, TypeError, ValueError) as e:
            raise CorpusError(f"{path}: the manifest does not describe a text corpus ({e.__class__.__name__}: {e})") from None
        _check_arrays(path, grammar, mixture, words, lengths, personas)
        return cls(grammar, mixture, seed, words, lengths, personas)


def _check_arrays(path, grammar: Grammar, mixture: PersonaMixture, words, lengths, personas) -> None:
    """Refuse arrays that no grammar walk could have made (shape, ranges, padding, transitions)."""
    tables = tables_of(grammar)

    def bad(why: str):
        raise CorpusError(f"{path}: {why}; the corpus was changed after it was made")

    if words.ndim != 2 or lengths.shape != (len(words),) or personas.shape != (len(words),):
        bad(f"arrays of inconsistent shapes (words {words.shape}, lengths {lengths.shape}, personas {personas.shape})")
    if words.shape[1] != tables.max_len:
        bad(f"documents are {words.shape[1]} words wide, the grammar's longest is {tables.max_len}")
    if len(words) and (lengths.min() < 1 or lengths.max() > tables.max_len):
        bad(f"document lengths outside 1..{tables.max_len}")
    if len(words) and not np.isin(personas, mixture.personas).all():
        bad("a document's persona is not in the mixture")
    if len(words):
        live = np.arange(words.shape[1])[None, :] < lengths[:, None]
        if (words[~live] != PAD).any() or (words[live] < 0).any() or (words[live] >= len(tables.words)).any():
            bad("word ids outside the vocabulary, or padding inside a document")
        state = np.full(len(words), tables.start)
        for t in range(words.shape[1]):
            w = np.where(live[:, t], words[:, t], tables.eod)
            nxt = tables.next[state, w]
            if (nxt < 0).any():
                bad(f"a document takes a word the grammar does not allow at position {t}")
            state = np.where(live[:, t], nxt, tables.end)
        if (state != tables.end).any():
            bad("a document does not end with <eod>")


_TABLES: dict[str, Tables] = {}


def tables_of(grammar: Grammar) -> Tables:
    """`grammar.compile()`, cached per grammar (by its dictionary): the compiled tables are
    read-only and shared."""
    import json

    key = json.dumps(grammar.to_dict(), sort_keys=True)
    if key not in _TABLES:
        _TABLES[key] = grammar.compile()
    return _TABLES[key]


def check_size(n: int, seed: int) -> None:
    if not isinstance(n, int) or not 1 <= n <= MAX_DOCUMENTS:
        raise ValueError(f"a text corpus has 1 to {MAX_DOCUMENTS:,} documents, got {n!r}")
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")


def make_text_corpus(grammar: Grammar | None, mixture: PersonaMixture, n: int, seed: int = 0) -> TextCorpus:
    """`n` documents of `mixture` speaking `grammar` (the default grammar when None)."""
    import jax
    import jax.numpy as jnp

    grammar = grammar or default_grammar()
    check_size(n, seed)
    tables = tables_of(grammar)
    k_persona, k_words = jax.random.split(jax.random.PRNGKey(seed))
    personas = np.asarray(mixture.personas)[np.asarray(jax.random.choice(k_persona, len(mixture.personas), (n,), p=jnp.asarray(mixture.probs)))]
    logp = jnp.asarray(tables.logp, jnp.float32)
    nxt = jnp.asarray(tables.next)
    end = tables.end

    def step(state, key):
        w = jax.random.categorical(key, logp[jnp.asarray(personas), state], axis=-1)
        done = state == end
        return jnp.where(done, end, nxt[state, w]), jnp.where(done, PAD, w)

    keys = jax.random.split(k_words, tables.max_len)
    _, words = jax.lax.scan(step, jnp.full(n, tables.start), keys)
    words = np.asarray(words).T.astype(np.int16)
    lengths = (words != PAD).sum(axis=1).astype(np.int16)
    return TextCorpus(grammar, mixture, int(seed), words, lengths, personas.astype(np.int8))


class TextIdeal(NamedTuple):
    """The ideal predictor of a text corpus, per document n and position t (0 = before any word):

    states     (N, L + 1) compiled grammar state before word t (`Tables.end` after `<eod>`)
    posterior  (N, L + 1, M) P(persona | words before t) over the mixture's M personas
    logp       (N, L) log P(w_t | words before t) under the ideal (0 at padding)
    traits     (N, L + 1, 4) P(trait | words before t), the posterior's trait marginals
    """

    states: np.ndarray
    posterior: np.ndarray
    logp: np.ndarray
    traits: np.ndarray

    def next_probs(self, corpus: TextCorpus, rows=None) -> np.ndarray:
        """(n, L + 1, V) the ideal's next-word distribution for documents `rows` (all when None)."""
        rows = np.arange(len(self.states)) if rows is None else np.asarray(rows)
        per = np.exp(corpus.tables.logp[np.asarray(corpus.mixture.personas)])  # (M, S + 1, V)
        post = self.posterior[rows]  # (n, L + 1, M)
        return np.einsum("ntm,mntv->ntv", post, per[:, self.states[rows]])


def text_ideal(corpus: TextCorpus, tagged: bool = False) -> TextIdeal:
    """The exact ideal predictor of `corpus` (see the module docstring)."""
    tables = corpus.tables
    mix = np.asarray(corpus.mixture.personas)
    n, length = corpus.words.shape
    live = np.arange(length)[None, :] < corpus.lengths[:, None]
    words = np.where(live, corpus.words, tables.eod).astype(np.int64)
    states = np.empty((n, length + 1), np.int64)
    states[:, 0] = tables.start
    for t in range(length):
        states[:, t + 1] = np.where(live[:, t], tables.next[states[:, t], words[:, t]], tables.end)
    # per mixture persona: log P(w_t | state_t), 0 at padding
    step = tables.logp[mix][:, states[:, :-1], words]  # (M, N, L)
    step = np.where(live[None], step, 0.0)
    log_prior = np.log(corpus.mixture.probs)
    if tagged:
        own = (corpus.personas[:, None] == mix[None, :]).astype(np.float64)  # (N, M)
        posterior = np.broadcast_to(own[:, None, :], (n, length + 1, len(mix))).copy()
    else:
        cum = np.concatenate([np.zeros((len(mix), n, 1)), np.cumsum(step, axis=2)], axis=2)  # (M, N, L + 1)
        logpost = log_prior[:, None, None] + cum
        logpost -= logpost.max(axis=0, keepdims=True)
        posterior = np.exp(logpost)
        posterior /= posterior.sum(axis=0, keepdims=True)
        posterior = posterior.transpose(1, 2, 0)  # (N, L + 1, M)
    with np.errstate(divide="ignore"):
        logpost_t = np.log(posterior[:, :-1, :])  # (N, L, M)
    joint = logpost_t + step.transpose(1, 2, 0)
    mx = joint.max(axis=2, keepdims=True)
    logp = np.where(live, (mx + np.log(np.exp(joint - mx).sum(axis=2, keepdims=True)))[..., 0], 0.0)
    traits = posterior @ trait_matrix()[mix]
    return TextIdeal(states, posterior, logp, traits)


def describe(corpus: TextCorpus) -> dict:
    """Counts for a summary: documents and mean length per persona."""
    out = {}
    for p in corpus.mixture.personas:
        sel = corpus.personas == p
        out[persona_name(p)] = {"documents": int(sel.sum()), "mean_words": float(corpus.lengths[sel].mean()) if sel.any() else float("nan")}
    return out


__all__ = ["FAMILY", "MAX_DOCUMENTS", "N_PERSONAS", "PAD", "TextCorpus", "TextIdeal", "check_size", "describe", "make_text_corpus", "text_ideal"]
