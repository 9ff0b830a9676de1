"""Text simulacra: personas with traits, speaking a probabilistic grammar whose law is exact.

The text counterpart of `simulacra.world` + `simulacra.characters` + `simulacra.corpus`: a
persona is a vector of binary traits (`grammar.TRAITS`); a `Grammar` gives every next word's
probability for every persona exactly; `make_text_corpus` draws documents from a mixture of
personas; `text_ideal` is the corpus's Bayes-optimal predictor (posterior over personas and the
next-word distribution it implies). See docs/text.md.
"""

from simulacra.text.corpus import PAD, TextCorpus, TextIdeal, make_text_corpus, text_ideal
from simulacra.text.grammar import (
    EOD,
    N_PERSONAS,
    SWEAR_WORDS,
    TRAITS,
    Grammar,
    Option,
    PersonaMixture,
    default_grammar,
    parse_persona,
    parse_personas,
    persona_name,
    persona_traits,
    swear_prob,
)

__all__ = [
    "EOD", "N_PERSONAS", "PAD", "SWEAR_WORDS", "TRAITS", "Grammar", "Option", "PersonaMixture", "TextCorpus", "TextIdeal",
    "default_grammar", "make_text_corpus", "parse_persona", "parse_personas", "persona_name", "persona_traits", "swear_prob", "text_ideal",
]  # fmt: skip
