"""Word error rate of ASR transcripts against each utterance's own caption text.

The topline and resynthesis rows of evaluate-im2sp transcribe a recorded utterance (or its units, resynthesized)
whose caption text is known; WER says how far the ASR's words are from it. Both sides are normalised first:
lower case, punctuation removed (apostrophes inside words kept), whitespace collapsed, so ``"A DOG RUNS."`` and
``"a dog runs"`` are the same words. The rate is corpus-level, as ASR papers report it: all substitutions,
insertions and deletions over all reference words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NOT_WORD = re.compile(r"[^\w\s']+")
_QUOTES = re.compile(r"(^|\s)'+|'+(\s|$)")


def normalize_words(text: str) -> list[str]:
    """The words of ``text``: lower case, punctuation dropped (an apostrophe inside a word stays)."""
    cleaned = _NOT_WORD.sub(" ", text.lower().replace("_", " "))
    return _QUOTES.sub(" ", f" {cleaned} ").split()


def word_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """Word edits from ``reference`` to ``hypothesis`` (after :func:`normalize_words`) and the reference's words."""
    from rapidfuzz.distance import Levenshtein

    said, meant = normalize_words(hypothesis), normalize_words(reference)
    return int(Levenshtein.distance(said, meant)), len(meant)


def word_error_rate(hypotheses: Mapping[str, str], references: Mapping[str, str]) -> float | None:
    """Corpus WER of the transcripts (by key) against the texts of the same keys; None when no reference word.

    Args:
        hypotheses: Key → the ASR's transcript.
        references: Key → the utterance's own caption text (every key of ``hypotheses`` must be here).
    """
    edits = words = 0
    for key, said in hypotheses.items():
        wrong, total = word_errors(said, references[key])
        edits, words = edits + wrong, words + total
    return edits / words if words else None
