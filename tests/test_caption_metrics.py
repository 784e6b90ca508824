from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from im2sp_models.caption_metrics import (
    edit_distance,
    fallback_tokenize,
    java_available,
    score_captions,
    unit_error_rate,
)

REFERENCES = {
    "1": ["A dog runs on the beach.", "A brown dog running by the sea.", "Dog on sand!", "A dog at the beach", "A pet"],
    "2": ["Two cats sleep on a sofa.", "Cats napping on a couch.", "Two cats, sleeping."],
    "3": ["A red bus in the street.", "A bus drives down a city road.", "Red double-decker bus."],
}
HYPOTHESES = {"1": "a dog runs on the sand", "2": "two cats sleeping on a couch", "3": "a bus on a road"}


class _Captions:
    """The two methods COCOEvalCap reads from a COCO object."""

    def __init__(self, captions: dict[str, list[str]]) -> None:
        self.imgToAnns = {key: [{"image_id": key, "caption": c} for c in texts] for key, texts in captions.items()}

    def getImgIds(self) -> list[str]:  # noqa: N802 (pycocotools' name)
        return list(self.imgToAnns)


@pytest.mark.skipif(not java_available(), reason="PTBTokenizer and METEOR need Java")
def test_scores_equal_coco_eval_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import pycocoevalcap.eval as coco_eval

    class NoSpice:  # COCOEvalCap always runs SPICE, which downloads CoreNLP: stand it in
        def method(self) -> str:
            return "SPICE"

        def compute_score(self, gts: Any, res: Any) -> tuple[float, list[float]]:
            return 0.0, [0.0] * len(gts)

    monkeypatch.setattr(coco_eval, "Spice", NoSpice)
    reference = coco_eval.COCOEvalCap(_Captions(REFERENCES), _Captions({k: [v] for k, v in HYPOTHESES.items()}))
    reference.evaluate()
    ours = score_captions(REFERENCES, HYPOTHESES)
    for metric in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert ours.scores[metric] == pytest.approx(reference.eval[metric], abs=1e-12), metric
    assert ours.tokenizer == "ptb" and ours.scores["SPICE"] is None and "SPICE" in ours.skipped


def test_without_java_metrics_are_skipped_not_invented() -> None:
    ours = score_captions(REFERENCES, HYPOTHESES, use_java=False)
    assert ours.tokenizer == "fallback" and ours.scores["METEOR"] is None and "METEOR" in ours.skipped
    assert ours.scores["Bleu_1"] is not None and 0 < ours.scores["Bleu_1"] <= 1
    assert fallback_tokenize("Two cats, sleeping. Don't!") == "two cats sleeping don't"
    with pytest.raises(ValueError, match="same"):
        score_captions(REFERENCES, {"1": "x"})


def test_unit_edit_distance() -> None:
    assert edit_distance(np.array([1, 2, 3, 4]), np.array([1, 3, 4, 5])) == 2
    assert edit_distance(np.array([], dtype=int), np.array([7, 7])) == 2
    assert unit_error_rate(np.array([1, 2]), [np.array([1, 2, 3, 4]), np.array([1, 2])]) == 0.0
