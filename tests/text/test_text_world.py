"""The text world: personas, the grammar's exact law, generation, storage, and the ideal predictor
against brute-force enumeration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulacra.corpus.store import CorpusError, sha256_file
from simulacra.text import (
    EOD,
    N_PERSONAS,
    Grammar,
    Option,
    TextCorpus,
    default_grammar,
    make_text_corpus,
    parse_persona,
    parse_personas,
    persona_name,
    swear_prob,
    text_ideal,
)
from simulacra.text.grammar import END


def tiny_grammar(max_sentences: int = 3) -> Grammar:
    """Two words per sentence at most, with a friendly*sailor interaction, and repeats."""
    states = {
        "s": (
            Option("x", "m", {"bias": 0.0, "friendly": 1.0}),
            Option("y", "m", {"sailor": 1.0, "friendly*sailor": -2.0}),
        ),
        "m": (
            Option(EOD, END, {"terse": 1.0}),
            Option("z", "s", {"bias": 0.3}),
            Option("w", "s", {"formal": -0.7}),
        ),
    }
    return Grammar(states, start="s", repeat="m", max_sentences=max_sentences)


def enumerate_documents(grammar: Grammar, persona: int) -> dict[tuple[str, ...], float]:
    """Every complete document and its probability for `persona`, walking the grammar's options
    directly (softmax of `Option.logit`), with the sentence cap applied by hand."""
    out: dict[tuple[str, ...], float] = {}

    def walk(state, sentence, prefix, prob):
        opts = [o for o in grammar.states[state] if not (state == grammar.repeat and o.next != END and sentence >= grammar.max_sentences)]
        logits = [o.logit([(persona >> j) & 1 for j in range(4)]) for o in opts]
        z = sum(math.exp(v) for v in logits)
        for o, v in zip(opts, logits):
            p = prob * math.exp(v) / z
            if o.next == END:
                out[prefix + (o.word,)] = out.get(prefix + (o.word,), 0.0) + p
            else:
                walk(o.next, sentence + (state == grammar.repeat), prefix + (o.word,), p)

    walk(grammar.start, 1, (), 1.0)
    return out


# --- personas and mixtures ------------------------------------------------------------------


def test_persona_names_round_trip():
    assert persona_name(0) == "plain"
    for i in range(N_PERSONAS):
        assert parse_persona(persona_name(i)) == i
    assert parse_persona("sailor+friendly") == parse_persona("friendly+sailor")


@pytest.mark.parametrize(
    "text, words",
    [
        ("pirate:1", "unknown trait 'pirate'"),
        ("sailor:-1", "not a probability weight"),
        ("sailor:nan", "not a probability weight"),
        ("sailor:0", "not a probability weight"),
        ("sailor:x", "must be a number"),
        ("sailor,sailor", "appears twice"),
        ("sailor+sailor", "appears twice"),
        ("", "empty persona mixture"),
    ],
)
def test_bad_mixtures_are_one_clear_error(text, words):
    with pytest.raises(ValueError, match=words):
        parse_personas(text)


def test_all_is_every_persona_equally():
    m = parse_personas("all")
    assert sorted(m.personas) == list(range(N_PERSONAS))
    np.testing.assert_allclose(m.probs, 1 / N_PERSONAS)


# --- the grammar's law --------------------------------------------------------------------------


@pytest.mark.parametrize("grammar", [default_grammar(), tiny_grammar(), default_grammar().override(["max_sentences=1"])])
def test_every_compiled_state_sums_to_one(grammar):
    t = grammar.compile()
    np.testing.assert_allclose(np.exp(t.logp).sum(axis=-1), 1.0, atol=1e-12)
    # where a word is allowed, it leads somewhere; where not, nowhere
    allowed = np.isfinite(t.logp[0])
    assert ((t.next >= 0) == allowed).all()


@pytest.mark.parametrize("grammar", [tiny_grammar(), default_grammar().override(["max_sentences=1"])])
def test_documents_of_each_persona_sum_to_one(grammar):
    for p in (0, 3, 5, 15):
        docs = enumerate_documents(grammar, p)
        assert abs(sum(docs.values()) - 1.0) < 1e-12
        assert max(len(d) for d in docs) == grammar.compile().max_len


def test_traits_interact_on_swearing():
    """A friendly sailor swears less than an unfriendly sailor, more than a friendly landlubber,
    and friendliness takes less from a sailor than an additive model (in logits) would."""
    g = default_grammar()
    s, fs, f, plain = (swear_prob(g, parse_persona(n)) for n in ("sailor", "friendly+sailor", "friendly", "plain"))
    assert s > fs > f
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert logit(fs) - logit(s) > logit(f) - logit(plain)


@pytest.mark.parametrize(
    "item, words",
    [
        ("tail.damn.sailor", "must look like"),
        ("tail.damn=3", "must look like"),
        ("nowhere.damn.sailor=3", "unknown state 'nowhere'"),
        ("tail.heck.sailor=3", "offers no word 'heck'"),
        ("tail.damn.pirate=3", "unknown logit term 'pirate'"),
        ("tail.damn.sailor=lots", "must be a number"),
        ("tail.damn.sailor=inf", "finite"),
        ("max_sentences=0", "max_sentences"),
        ("max_sentences=two", "max_sentences"),
    ],
)
def test_malformed_overrides_are_one_clear_error(item, words):
    with pytest.raises(ValueError, match=words):
        default_grammar().override([item])


def test_an_override_changes_exactly_its_term():
    g = default_grammar()
    h = g.override(["tail.damn.sailor=5", "tail.damn.friendly*sailor=0"])
    sailor = parse_persona("sailor")
    assert swear_prob(h, sailor) > swear_prob(g, sailor)
    assert swear_prob(h, 0) == pytest.approx(swear_prob(g, 0))
    assert Grammar.from_dict(json.loads(json.dumps(h.to_dict()))).to_dict() == h.to_dict()


def test_malformed_grammars_are_refused():
    with pytest.raises(ValueError, match="offers a word twice"):
        Grammar({"s": (Option("a", "s", {}), Option("a", "s", {}), Option(EOD, END, {}))}, "s", "s")
    with pytest.raises(ValueError, match="unknown state"):
        Grammar({"s": (Option("a", "t", {}), Option(EOD, END, {}))}, "s", "s")
    with pytest.raises(ValueError, match="could not end"):
        Grammar({"s": (Option("a", "s", {}),)}, "s", "s")
    with pytest.raises(ValueError, match="loops within one sentence"):
        Grammar({"s": (Option("a", "t", {}), Option(EOD, END, {})), "t": (Option("b", "t", {}),)}, "s", "s").compile()


# --- generation -----------------------------------------------------------------------------------


def test_same_seed_same_corpus_and_another_seed_another():
    m = parse_personas("sailor:1,friendly+formal:2,terse:1")
    a, b = make_text_corpus(None, m, 300, seed=7), make_text_corpus(None, m, 300, seed=7)
    assert np.array_equal(a.words, b.words) and np.array_equal(a.personas, b.personas)
    c = make_text_corpus(None, m, 300, seed=8)
    assert not np.array_equal(a.words, c.words)


def test_generation_follows_the_law():
    """Every document is a walk the grammar allows, and the first word's frequency matches the
    ideal's distribution at t = 0 (4 standard errors)."""
    m = parse_personas("sailor:1,friendly:1")
    corpus = make_text_corpus(None, m, 4000, seed=0)
    TextCorpus.load  # noqa: B018 (the range check below is the loader's)
    from simulacra.text.corpus import _check_arrays

    _check_arrays("generated", corpus.grammar, corpus.mixture, corpus.words, corpus.lengths, corpus.personas)
    ideal = text_ideal(corpus)
    expected = ideal.next_probs(corpus, [0])[0, 0]
    counts = np.bincount(corpus.words[:, 0], minlength=len(corpus.vocab)) / corpus.n_documents
    se = np.sqrt(expected * (1 - expected) / corpus.n_documents)
    assert (np.abs(counts - expected) <= 4 * se + 1e-12).all()


# --- the ideal predictor against brute force --------------------------------------------------------


@pytest.mark.parametrize("grammar, mix", [(tiny_grammar(), "plain:1,friendly+sailor:2,sailor+terse:1,formal:0.5"),
                                          (default_grammar().override(["max_sentences=1"]), "sailor:1,friendly+sailor:1,friendly:2")])  # fmt: skip
def test_ideal_matches_brute_force_enumeration(grammar, mix):
    """The posterior over personas and the next-word probabilities at every prefix of sampled
    documents equal the ratios of sums over every complete document, to 1e-6."""
    mixture = parse_personas(mix)
    corpus = make_text_corpus(grammar, mixture, 40, seed=3)
    ideal = text_ideal(corpus)
    vocab = corpus.vocab
    docs = {p: enumerate_documents(grammar, p) for p in mixture.personas}
    prior = dict(zip(mixture.personas, mixture.probs))

    starts: dict = {p: {} for p in mixture.personas}  # per persona: P_p(the document starts with prefix)
    for p in mixture.personas:
        for d, v in docs[p].items():
            for k in range(len(d) + 1):
                starts[p][d[:k]] = starts[p].get(d[:k], 0.0) + v

    def prefix_mass(prefix):
        return {p: starts[p].get(prefix, 0.0) for p in mixture.personas}

    nxt = ideal.next_probs(corpus)
    for i in range(corpus.n_documents):
        words = tuple(vocab[w] for w in corpus.words[i, : corpus.lengths[i]])
        for t in range(len(words)):
            mass = prefix_mass(words[:t])
            total = sum(prior[p] * mass[p] for p in mixture.personas)
            post = [prior[p] * mass[p] / total for p in mixture.personas]
            np.testing.assert_allclose(ideal.posterior[i, t], post, atol=1e-6)
            for w, word in enumerate(vocab):
                ext = prefix_mass(words[:t] + (word,))
                want = sum(prior[p] * ext[p] for p in mixture.personas) / total
                assert abs(nxt[i, t, w] - want) < 1e-6, (i, t, word)
            assert abs(ideal.logp[i, t] - math.log(nxt[i, t, corpus.words[i, t]])) < 1e-9
        assert (ideal.logp[i, len(words) :] == 0).all()


def test_tagged_ideal_knows_the_persona():
    corpus = make_text_corpus(None, parse_personas("sailor:1,formal:1"), 50, seed=1)
    ideal = text_ideal(corpus, tagged=True)
    own = np.asarray(corpus.mixture.personas)[ideal.posterior[:, 0].argmax(axis=1)]
    assert np.array_equal(own, corpus.personas)
    assert (ideal.posterior.max(axis=2) == 1).all()
    # knowing the persona can only help, on average
    assert ideal.logp.sum() >= text_ideal(corpus).logp.sum()


def test_trait_marginals():
    corpus = make_text_corpus(None, parse_personas("sailor:1,friendly+sailor:1"), 20, seed=0)
    ideal = text_ideal(corpus)
    np.testing.assert_allclose(ideal.traits[..., 1], 1.0)  # both are sailors
    np.testing.assert_allclose(ideal.traits[:, 0, 0], 0.5)  # before any word: the prior
    assert (ideal.traits[..., 2:] == 0).all()


# --- storage ------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    corpus = make_text_corpus(default_grammar().override(["tail.damn.sailor=4"]), parse_personas("all"), 100, seed=2)
    corpus.save(tmp_path / "c")
    back = TextCorpus.load(tmp_path / "c")
    assert np.array_equal(back.words, corpus.words) and back.grammar.to_dict() == corpus.grammar.to_dict()
    assert back.mixture == corpus.mixture and back.seed == 2


def _resign(path, name, arr):
    np.save(path / f"{name}.npy", arr, allow_pickle=False)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arrays"][name]["sha256"] = sha256_file(path / f"{name}.npy")
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit, words", [("vocab", "outside the vocabulary"), ("walk", "does not allow"), ("persona", "not in the mixture")])
def test_resigned_nonsense_is_refused(tmp_path, edit, words):
    corpus = make_text_corpus(None, parse_personas("sailor:1,formal:1"), 30, seed=0)
    path = corpus.save(tmp_path / "c")
    if edit == "vocab":
        w = corpus.words.copy()
        w[0, 0] = 999
        _resign(path, "words", w)
    elif edit == "walk":
        w = corpus.words.copy()
        w[0, 0] = corpus.vocab.index("ship")  # no document starts with a noun
        _resign(path, "words", w)
    else:
        _resign(path, "personas", np.full_like(corpus.personas, 15))
    with pytest.raises(CorpusError, match=words):
        TextCorpus.load(path)


def test_a_gridworld_corpus_is_not_a_text_corpus_and_back(tmp_path):
    from simulacra.characters import parse_mixture
    from simulacra.corpus import Corpus, make_corpus
    from simulacra.world import task

    make_corpus(task("coin-7x7"), parse_mixture("seeker:1"), 4, seed=0).save(tmp_path / "grid")
    with pytest.raises(CorpusError, match="not a text corpus"):
        TextCorpus.load(tmp_path / "grid")
    make_text_corpus(None, parse_personas("sailor"), 4).save(tmp_path / "text")
    with pytest.raises(CorpusError, match="text corpus"):
        Corpus.load(tmp_path / "text")
