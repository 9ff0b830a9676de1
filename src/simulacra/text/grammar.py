"""Personas with traits, and the probabilistic grammar they speak.

A **persona** is a vector of binary traits (`TRAITS`: friendly, sailor, formal, terse), so there
are 16; persona `i` has trait `j` when bit `j` of `i` is set, and is named by its traits joined
with `+` ("friendly+sailor"), or "plain" when it has none. A **mixture** of personas is written the
way character mixtures are: `"friendly+sailor:1,sailor:2"` (weights normalised), or `"all"`.

A **grammar** is a finite automaton over words. Each state offers options `(word, next state)`;
no word appears twice in one state, so the state after any prefix is a function of the prefix.
The probability of an option in a state is the softmax, over that state's options, of its logit

    logit = bias + Σ_j w_j · trait_j + Σ_{j<k} w_jk · trait_j · trait_k

so every next-word probability is known exactly for every persona. The interaction terms make
traits interact: in the default grammar a friendly sailor swears less than an unfriendly sailor
but more than a friendly landlubber. A document is one walk from `start` to the end word `<eod>`;
`max_sentences` caps the number of times the walk may pass through `repeat` (the state that
starts another sentence), so every document is finite and the grammar's documents sum to 1.

`Grammar.compile()` unrolls the automaton over the sentence count into dense tables:
`logp[persona, state, word]` (−inf where a word is not allowed) and `next[state, word]` (−1
where not allowed; `END` after `<eod>`). Generation and the ideal predictor read only these.

Overrides (`Grammar.override(["tail.damn.sailor=3", "max_sentences=2"])`) change one logit
term of one option, or the sentence cap; anything else is refused with a one-line error.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

TRAITS = ("friendly", "sailor", "formal", "terse")
N_PERSONAS = 2 ** len(TRAITS)
EOD = "<eod>"
END = "$end"
"""The `next` of the option that ends a document."""
MAX_SENTENCES = 16


def persona_traits(index: int) -> tuple[int, ...]:
    """The 0/1 trait vector of persona `index` (bit j = trait j)."""
    return tuple((int(index) >> j) & 1 for j in range(len(TRAITS)))


def persona_name(index: int) -> str:
    """"friendly+sailor", or "plain" for the persona without traits."""
    if not 0 <= int(index) < N_PERSONAS:
        raise ValueError(f"persona index {index} is out of range: there are {N_PERSONAS} personas (0 to {N_PERSONAS - 1})")
    names = [t for t, on in zip(TRAITS, persona_traits(index)) if on]
    return "+".join(names) if names else "plain"


def parse_persona(text: str) -> int:
    """The index of the persona named `text` ("sailor+friendly", "plain"; order free)."""
    name = text.strip()
    if name == "plain":
        return 0
    parts = [p.strip() for p in name.split("+")]
    index = 0
    for part in parts:
        if part not in TRAITS:
            raise ValueError(f"unknown trait {part!r} in persona {name!r}; traits are {', '.join(TRAITS)} (or 'plain' for none)")
        bit = 1 << TRAITS.index(part)
        if index & bit:
            raise ValueError(f"trait {part!r} appears twice in persona {name!r}")
        index |= bit
    return index


def trait_matrix() -> np.ndarray:
    """(16, 4) float: row i is persona i's trait vector."""
    return np.array([persona_traits(i) for i in range(N_PERSONAS)], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class PersonaMixture:
    """Personas (indices) and their weights (normalised in `probs`)."""

    personas: tuple[int, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.personas or len(self.personas) != len(self.weights):
            raise ValueError("a persona mixture needs at least one persona and one weight per persona")
        if len(set(self.personas)) != len(self.personas):
            dup = next(p for p in self.personas if self.personas.count(p) > 1)
            raise ValueError(f"persona {persona_name(dup)!r} appears twice in the mixture; give each persona once")
        for p, w in zip(self.personas, self.weights):
            persona_name(p)  # range check
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
                raise ValueError(f"weight {w!r} of persona {persona_name(p)!r} is not a probability weight: give a positive number")

    @property
    def probs(self) -> np.ndarray:
        w = np.asarray(self.weights, np.float64)
        return w / w.sum()

    @property
    def names(self) -> list[str]:
        return [persona_name(p) for p in self.personas]

    def to_list(self) -> list[dict]:
        return [{"persona": persona_name(p), "weight": float(w)} for p, w in zip(self.personas, self.weights)]

    @classmethod
    def from_list(cls, items: list[dict]) -> "PersonaMixture":
        return cls(tuple(parse_persona(d["persona"]) for d in items), tuple(float(d["weight"]) for d in items))

    def spec(self) -> str:
        return ",".join(f"{persona_name(p)}:{w:g}" for p, w in zip(self.personas, self.weights))


def parse_personas(text: str) -> PersonaMixture:
    """`"friendly+sailor:1,sailor:2"` (a bare persona weighs 1), or `"all"` (all 16, equally)."""
    text = text.strip()
    if text == "all":
        return PersonaMixture(tuple(range(N_PERSONAS)), (1.0,) * N_PERSONAS)
    if not text:
        raise ValueError("empty persona mixture; write e.g. friendly+sailor:1,sailor:1 or all")
    personas, weights = [], []
    for part in text.split(","):
        name, _, weight = part.partition(":")
        personas.append(parse_persona(name))
        try:
            weights.append(float(weight) if weight.strip() else 1.0)
        except ValueError:
            raise ValueError(f"weight of {part.strip()!r} must be a number, e.g. {name.strip()}:0.5") from None
    return PersonaMixture(tuple(personas), tuple(weights))


def _term(name: str) -> str:
    """The canonical name of a logit term: "bias", a trait, or "a*b" (traits in TRAITS order)."""
    name = name.strip()
    if name == "bias" or name in TRAITS:
        return name
    parts = name.split("*")
    if len(parts) == 2 and all(p in TRAITS for p in parts) and parts[0] != parts[1]:
        a, b = sorted(parts, key=TRAITS.index)
        return f"{a}*{b}"
    raise ValueError(f"unknown logit term {name!r}; terms are bias, a trait ({', '.join(TRAITS)}) or two traits joined by * (e.g. friendly*sailor)")


@dataclasses.dataclass(frozen=True)
class Option:
    """One choice of a state: emit `word`, go to `next` (`END` after `<eod>`), with a logit whose
    terms are `weights` (missing terms are 0)."""

    word: str
    next: str
    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        clean = {}
        for k, v in dict(self.weights).items():
            if not math.isfinite(float(v)):
                raise ValueError(f"logit term {k!r} of word {self.word!r} must be a finite number, got {v!r}")
            clean[_term(k)] = float(v)
        object.__setattr__(self, "weights", MappingProxyType(clean))

    def logit(self, traits: Iterable[int]) -> float:
        x = dict(zip(TRAITS, traits))
        total = 0.0
        for term, w in self.weights.items():
            if term == "bias":
                total += w
            elif "*" in term:
                a, b = term.split("*")
                total += w * x[a] * x[b]
            else:
                total += w * x[term]
        return total


@dataclasses.dataclass(frozen=True)
class Tables:
    """A compiled grammar: `states` names each compiled state ("tail#2": state tail in sentence
    2); `logp` (16, S, V) float64 log-probabilities (−inf where not allowed; the `END` row puts 0
    on `<eod>` so that it is never empty); `next` (S + 1, V) int (−1 where not allowed; row `END`
    = S is absorbing); `start` the start state; `max_len` the longest document in words."""

    words: tuple[str, ...]
    states: tuple[str, ...]
    logp: np.ndarray
    next: np.ndarray
    start: int
    max_len: int

    @property
    def end(self) -> int:
        return len(self.states)

    @property
    def eod(self) -> int:
        return self.words.index(EOD)


@dataclasses.dataclass(frozen=True)
class Grammar:
    """A probabilistic grammar (see the module docstring)."""

    states: Mapping[str, tuple[Option, ...]]
    start: str
    repeat: str
    max_sentences: int = 4

    def __post_init__(self) -> None:
        states = {name: tuple(opts) for name, opts in dict(self.states).items()}
        object.__setattr__(self, "states", MappingProxyType(states))
        if not isinstance(self.max_sentences, int) or not 1 <= self.max_sentences <= MAX_SENTENCES:
            raise ValueError(f"max_sentences must be a whole number from 1 to {MAX_SENTENCES}, got {self.max_sentences!r}")
        for name in (self.start, self.repeat):
            if name not in states:
                raise ValueError(f"the grammar has no state {name!r}")
        ends = False
        for name, opts in states.items():
            if not opts:
                raise ValueError(f"state {name!r} offers no words")
            words = [o.word for o in opts]
            if len(set(words)) != len(words):
                raise ValueError(f"state {name!r} offers a word twice: the state after a prefix must be a function of the prefix")
            for o in opts:
                if o.next != END and o.next not in states:
                    raise ValueError(f"word {o.word!r} of state {name!r} leads to unknown state {o.next!r}")
                if (o.word == EOD) != (o.next == END):
                    raise ValueError(f"in state {name!r}: {EOD} and only {EOD} must end the document")
                ends |= o.next == END
        if not ends:
            raise ValueError(f"no state offers {EOD}: documents could not end")

    @property
    def words(self) -> tuple[str, ...]:
        """The vocabulary: `<eod>` first, then words in order of first appearance."""
        seen = {EOD: None}
        for opts in self.states.values():
            for o in opts:
                seen.setdefault(o.word, None)
        return tuple(seen)

    def to_dict(self) -> dict:
        return {
            "start": self.start, "repeat": self.repeat, "max_sentences": self.max_sentences,
            "states": {name: [{"word": o.word, "next": o.next, "weights": dict(o.weights)} for o in opts] for name, opts in self.states.items()},
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping) -> "Grammar":
        try:
            states = {name: tuple(Option(o["word"], o["next"], o.get("weights", {})) for o in opts) for name, opts in d["states"].items()}
            return cls(states, d["start"], d["repeat"], int(d.get("max_sentences", 4)))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed grammar ({e.__class__.__name__}: {e})") from None

    def override(self, items: Iterable[str]) -> "Grammar":
        """A copy with overrides applied: `state.word.term=value` sets one logit term of one option
        (term: bias, a trait, or trait*trait), `max_sentences=N` the sentence cap."""
        states = {name: list(opts) for name, opts in self.states.items()}
        max_sentences = self.max_sentences
        for item in items:
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"grammar override {item!r} must look like state.word.term=value (e.g. tail.damn.sailor=3) or max_sentences=N")
            if key == "max_sentences":
                if not re.fullmatch(r"\s*\d+\s*", value):
                    raise ValueError(f"max_sentences takes a whole number from 1 to {MAX_SENTENCES}, got {value!r}")
                max_sentences = int(value)
                continue
            parts = key.split(".")
            if len(parts) != 3:
                raise ValueError(f"grammar override {item!r} must look like state.word.term=value (e.g. tail.damn.sailor=3) or max_sentences=N")
            state, word, term = parts
            if state not in states:
                raise ValueError(f"grammar override {item!r}: unknown state {state!r}; states: {', '.join(states)}")
            opts = states[state]
            where = [i for i, o in enumerate(opts) if o.word == word]
            if not where:
                raise ValueError(f"grammar override {item!r}: state {state!r} offers no word {word!r}; it offers {', '.join(o.word for o in opts)}")
            try:
                v = float(value)
            except ValueError:
                raise ValueError(f"grammar override {item!r}: the value must be a number") from None
            if not math.isfinite(v):
                raise ValueError(f"grammar override {item!r}: the value must be a finite number")
            o = opts[where[0]]
            opts[where[0]] = Option(o.word, o.next, {**o.weights, _term(term): v})
        return Grammar({n: tuple(o) for n, o in states.items()}, self.start, self.repeat, max_sentences)

    def probs(self, state: str, persona: int) -> dict[str, float]:
        """The exact next-word probabilities of `state` for `persona` (before the sentence cap)."""
        opts = self.states[state]
        logits = np.array([o.logit(persona_traits(persona)) for o in opts])
        p = np.exp(logits - logits.max())
        return dict(zip((o.word for o in opts), p / p.sum()))

    def compile(self) -> Tables:
        """Unroll over the sentence count (see `Tables`)."""
        words = self.words
        w_index = {w: i for i, w in enumerate(words)}
        # compiled states: (state, sentence), reachable from (start, 1)
        order, index = [], {}
        todo = [(self.start, 1)]
        while todo:
            s = todo.pop()
            if s in index:
                continue
            index[s] = len(order)
            order.append(s)
            for o, nxt in self._moves(*s):
                if nxt is not None:
                    todo.append(nxt)
        n_s, n_w = len(order), len(words)
        logp = np.full((N_PERSONAS, n_s, n_w), -np.inf)
        nxt_tab = np.full((n_s + 1, n_w), -1, np.int64)
        for si, (state, sentence) in enumerate(order):
            moves = self._moves(state, sentence)
            for p in range(N_PERSONAS):
                logits = np.array([o.logit(persona_traits(p)) for o, _ in moves])
                lse = logits.max() + np.log(np.exp(logits - logits.max()).sum())
                for (o, _), lg in zip(moves, logits):
                    logp[p, si, w_index[o.word]] = lg - lse
            for o, target in moves:
                nxt_tab[si, w_index[o.word]] = n_s if target is None else index[target]
        end_row = np.full((N_PERSONAS, 1, n_w), -np.inf)
        end_row[:, 0, w_index[EOD]] = 0.0
        logp = np.concatenate([logp, end_row], axis=1)
        nxt_tab[n_s, w_index[EOD]] = n_s
        # the longest document: longest path in the (acyclic within a sentence count) automaton
        longest = self._longest(order, index)
        return Tables(words, tuple(f"{s}#{k}" for s, k in order), logp, nxt_tab, index[(self.start, 1)], longest)

    def _moves(self, state: str, sentence: int) -> list[tuple[Option, tuple[str, int] | None]]:
        """The options of a compiled state and where each leads (None: the end). At the sentence
        cap, the `repeat` state offers only the options that end the document."""
        out = []
        for o in self.states[state]:
            if o.next == END:
                out.append((o, None))
            elif state == self.repeat:
                if sentence < self.max_sentences:
                    out.append((o, (o.next, sentence + 1)))
            else:
                out.append((o, (o.next, sentence)))
        return out

    def _longest(self, order, index) -> int:
        memo: dict[tuple[str, int], int] = {}
        visiting: set[tuple[str, int]] = set()

        def walk(s) -> int:
            if s in memo:
                return memo[s]
            if s in visiting:
                raise ValueError(f"the grammar loops within one sentence at state {s[0]!r}: documents would have no longest length")
            visiting.add(s)
            best = max(1 + (0 if t is None else walk(t)) for _, t in self._moves(*s))
            visiting.discard(s)
            memo[s] = best
            return best

        return walk((self.start, 1))


def _o(word: str, nxt: str, **weights: float) -> Option:
    return Option(word, nxt, {k.replace("__", "*"): v for k, v in weights.items()})


def default_grammar() -> Grammar:
    """The shipped grammar: a greeting, then up to `max_sentences` sentences of subject, verb,
    optional adjective, noun, an optional swear word or "sir", and a stop.

    Swearing (the `tail` state) interacts: sailors swear, friendly and formal personas hold
    back, and the friendly*sailor term gives back part of what friendliness takes, so a friendly
    sailor swears less than an unfriendly sailor and more than a friendly landlubber. Terse
    personas skip greetings and adjectives and end sooner."""
    subjects = lambda nxt: [  # noqa: E731
        _o("i", nxt, bias=0.0),
        _o("we", nxt, bias=-0.5, formal=1.5),
        _o("they", nxt, bias=-0.5, friendly=-0.5),
    ]
    nouns = lambda: [  # noqa: E731
        _o("ship", "tail", bias=-1.0, sailor=2.5),
        _o("sea", "tail", bias=-1.0, sailor=2.5),
        _o("rope", "tail", bias=-1.5, sailor=2.0),
        _o("road", "tail", bias=0.0, sailor=-1.0),
        _o("field", "tail", bias=0.0, sailor=-1.0),
        _o("tea", "tail", bias=-0.5, formal=1.5, sailor=-1.0),
    ]
    states = {
        "greet": [
            _o("hello", "subj", bias=0.0, friendly=1.0),
            _o("ahoy", "subj", bias=-1.5, sailor=3.0),
            _o("greetings", "subj", bias=-1.0, formal=2.5),
            _o("hey", "subj", bias=0.0, formal=-2.0, friendly=0.5),
            *[dataclasses.replace(o, weights={**o.weights, "bias": o.weights.get("bias", 0.0) - 1.0, "terse": 2.5}) for o in subjects("verb")],
        ],
        "subj": subjects("verb"),
        "verb": [
            _o("like", "obj", bias=0.0, friendly=1.5),
            _o("see", "obj", bias=0.0),
            _o("hate", "obj", bias=-0.5, friendly=-2.0),
            _o("need", "obj", bias=-0.5, sailor=0.5, formal=0.5),
        ],
        "obj": [
            _o("lovely", "noun", bias=-1.0, friendly=1.5, formal=0.5, terse=-1.5),
            _o("fine", "noun", bias=-1.0, formal=1.0, terse=-1.5),
            _o("rotten", "noun", bias=-1.5, friendly=-1.5, sailor=0.5, terse=-1.5),
            _o("stupid", "noun", bias=-1.5, friendly=-2.0, formal=-2.0, terse=-1.5),
            *nouns(),
        ],
        "noun": nouns(),
        "tail": [
            _o(".", "more", bias=0.0),
            _o("!", "more", bias=-1.0, friendly=1.0, formal=-1.0),
            _o("damn", "stop", bias=-3.0, sailor=2.5, friendly=-2.0, formal=-2.0, friendly__sailor=1.0),
            _o("blast", "stop", bias=-3.5, sailor=3.0, friendly=-2.0, formal=-2.0, friendly__sailor=1.0),
            _o("sir", "stop", bias=-3.0, formal=3.5),
        ],
        "stop": [_o(".", "more", bias=0.0), _o("!", "more", bias=-0.5, friendly=0.5, formal=-1.5)],
        "more": [_o(EOD, END, bias=-1.0, terse=2.5), *subjects("verb")],
    }
    return Grammar({k: tuple(v) for k, v in states.items()}, start="greet", repeat="more", max_sentences=4)


SWEAR_WORDS = ("damn", "blast")


def swear_prob(grammar: Grammar, persona: int) -> float:
    """P(a swear word | the `tail` state, persona) in `grammar` (the default grammar's swear slot)."""
    p = grammar.probs("tail", persona)
    return float(sum(p.get(w, 0.0) for w in SWEAR_WORDS))


def all_pairs() -> list[str]:
    """The interaction term names, in canonical order."""
    return [f"{a}*{b}" for a, b in itertools.combinations(TRAITS, 2)]


__all__ = [
    "EOD", "END", "MAX_SENTENCES", "N_PERSONAS", "SWEAR_WORDS", "TRAITS", "Grammar", "Option", "PersonaMixture", "Tables",
    "all_pairs", "default_grammar", "parse_persona", "parse_personas", "persona_name", "persona_traits", "swear_prob", "trait_matrix",
]  # fmt: skip
