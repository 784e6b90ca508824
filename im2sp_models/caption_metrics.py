"""Caption metrics the way the COCO evaluation computes them, offline, plus unit-level edit distance.

pycocoevalcap's ``COCOEvalCap.evaluate()`` always runs SPICE, whose first use downloads Stanford CoreNLP: it
fails offline. Here its scorers are called one by one on the same inputs, so BLEU-1…4, METEOR, ROUGE-L and
CIDEr equal COCOEvalCap's (tested); SPICE runs only when CoreNLP is already in place, else it is reported as
skipped. Text is tokenized by pycocoevalcap's PTBTokenizer (Stanford, needs Java), which lowercases and drops
punctuation; without Java a documented fallback does the same with a regular expression, and METEOR (Java
too) is skipped — never an invented number.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_FALLBACK_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")


@dataclass
class CaptionScores:
    """Corpus-level scores (None = skipped) and why anything was skipped."""

    scores: dict[str, float | None]
    skipped: dict[str, str] = field(default_factory=dict)
    tokenizer: str = "ptb"


def java_available() -> bool:
    """Whether a ``java`` executable is on the PATH (PTBTokenizer, METEOR and SPICE need it)."""
    return shutil.which("java") is not None


def spice_available() -> bool:
    """Whether SPICE's Stanford CoreNLP jars are already installed (SPICE would download them otherwise)."""
    from pycocoevalcap.spice import spice  # importing downloads nothing; constructing Spice() would

    lib = Path(str(spice.__file__)).parent / "lib"
    return all((lib / f"stanford-corenlp-3.6.0{suffix}.jar").exists() for suffix in ("", "-models"))


def fallback_tokenize(text: str) -> str:
    """Lowercase words and numbers (keeping in-word apostrophes), punctuation dropped, single spaces."""
    return " ".join(_FALLBACK_TOKEN.findall(text.lower()))


def tokenize(captions: dict[str, list[str]], *, use_java: bool | None = None) -> tuple[dict[str, list[str]], str]:
    """Tokenize ``{id: [caption, …]}`` as COCOEvalCap does; return the result and the tokenizer used."""
    if use_java is None:
        use_java = java_available()
    if not use_java:
        return {key: [fallback_tokenize(c) for c in texts] for key, texts in captions.items()}, "fallback"
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    documents = {key: [{"caption": c} for c in texts] for key, texts in captions.items()}
    return PTBTokenizer().tokenize(documents), "ptb"


def score_captions(
    references: dict[str, list[str]], hypotheses: dict[str, str], *, use_java: bool | None = None
) -> CaptionScores:
    """BLEU-1…4, METEOR, ROUGE-L, CIDEr (and SPICE when installed) of one hypothesis per id vs its references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(hypotheses) or not references:
        raise ValueError("references and hypotheses must cover the same, non-empty set of ids")
    if use_java is None:
        use_java = java_available()
    gts, tokenizer = tokenize(references, use_java=use_java)
    res, _ = tokenize({key: [text] for key, text in hypotheses.items()}, use_java=use_java)
    scores: dict[str, float | None] = dict.fromkeys(METRICS)
    skipped: dict[str, str] = {}
    bleu, _ = Bleu(4).compute_score(gts, res)
    scores.update({f"Bleu_{n + 1}": float(value) for n, value in enumerate(bleu)})
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if use_java:
        from pycocoevalcap.meteor.meteor import Meteor

        scores["METEOR"] = float(Meteor().compute_score(gts, res)[0])
    else:
        skipped["METEOR"] = "no java on this machine"
    if use_java and spice_available():
        from pycocoevalcap.spice.spice import Spice

        scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
    else:
        skipped["SPICE"] = "Stanford CoreNLP for SPICE is not installed (it would be downloaded)"
    return CaptionScores(scores, skipped, tokenizer)


def edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance between two integer sequences (insertions, deletions, substitutions cost 1)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(np.asarray(a).reshape(-1).tolist(), np.asarray(b).reshape(-1).tolist()))


def unit_error_rate(hypothesis: np.ndarray, references: list[np.ndarray]) -> float:
    """Edit distance to the closest reference, divided by that reference's length."""
    rates = [edit_distance(hypothesis, ref) / max(1, len(ref)) for ref in references]
    return float(min(rates)) if rates else float("nan")
