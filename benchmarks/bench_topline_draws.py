"""How far the demo's topline moves with the sample speech alone: fresh Piper syntheses of the same captions.

Piper's voice (VITS) samples noise on every synthesis (``noise_scale`` 0.667, ``noise_w`` 0.8 in the voice's
config), so the same caption is spoken a little differently each time; ``im2sp sample-data`` keeps what it
synthesized in a per-machine cache (``~/.cache/im2sp/piper``, keyed by the text), so a machine repeats its own
recordings and another machine, or an emptied cache, has others. This measures the topline as evaluate-im2sp
scores it — each COCO test image's first reference utterance (the smallest key) → Whisper base (the demo's
ASR) → BLEU-4, METEOR, ROUGE-L, CIDEr against all the image's captions, and WER against the utterance's own
text — first on the recordings in ``--data`` (the baseline: what the demo scored), then on ``--draws`` fresh
syntheses of the same captions, each in an empty cache of its own. Everything else (images, captions, code,
ASR) is fixed.

onnxruntime seeds the voice's noise once per process, when the first session is made (a new session in the
same process repeats it): draw ``k`` seeds it with ``k`` (``onnxruntime.set_seed``) before loading the voice,
so the draws differ from one another and a rerun repeats them.

Run: ``.venv/bin/python -m benchmarks.bench_topline_draws --data DEMO_WORKDIR [--draws 30]`` (``DEMO_WORKDIR``:
an ``im2sp demo --workdir`` or ``im2sp sample-data`` folder; 5 syntheses and 5 transcriptions per draw).

Latest (2-core VM shared with other jobs, 2026-12-08, 30 draws, about 12 min): this machine's recordings BLEU-4 82.9,
WER 0.119; the draws BLEU-4 80.4–93.3 (mean 86.8, sd 3.7), METEOR 55.9–68.0, CIDEr 214.8–245.5, WER
0.051–0.136. Draws 1, 11, 15, 25 score exactly as this machine's recordings (82.9); draws 5 and 19 give BLEU-4
91.7, METEOR 64.9, ROUGE-L 94.1, CIDEr 242.9, the figures recorded for ``make demo`` on 2026-11-30.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from im2sp_models.audio import load_audio
from im2sp_models.caption_metrics import score_captions
from im2sp_models.word_error import word_error_rate
from storage.sources.files import clean_text


def first_utterances(data: Path) -> dict[str, dict[str, Any]]:
    """Each COCO test image's captions and its first utterance (key, WAV path, own text, the caption spoken)."""
    karpathy = json.loads((data / "coco" / "karpathy" / "dataset_coco.json").read_text())
    spoken = json.loads((data / "coco" / "SpokenCOCO" / "SpokenCOCO_val.json").read_text())
    by_image = {entry["image"]: entry["captions"] for entry in spoken["data"]}
    found = {}
    for entry in karpathy["images"]:
        if entry["split"] != "test":
            continue
        captions = [clean_text(s["raw"]) for s in entry["sentences"]]
        utterances = by_image[f"{entry['filepath']}/{entry['filename']}"]
        first = min(range(len(utterances)), key=lambda n: utterances[n]["uttid"])
        found[str(entry["cocoid"])] = {
            "captions": captions,
            "wav": data / "coco" / "SpokenCOCO" / utterances[first]["wav"],
            "text": utterances[first]["text"],
            "spoken": captions[first],  # the sample speaks caption n as utterance n
        }
    return found


def score(images: dict[str, dict[str, Any]], heard: dict[str, str]) -> dict[str, float | None]:
    """The topline's BLEU-4, METEOR, ROUGE-L, CIDEr (×100) and WER of one set of transcripts."""
    scores = score_captions({i: images[i]["captions"] for i in heard}, heard).scores
    wer = word_error_rate(heard, {i: images[i]["text"] for i in heard})
    percent = {m: round(100 * v, 1) if v is not None else None for m, v in scores.items()}
    named = {"bleu4": "Bleu_4", "meteor": "METEOR", "rouge_l": "ROUGE_L", "cider": "CIDEr"}
    return {**{key: percent[metric] for key, metric in named.items()}, "wer": wer}


def fresh_draw(images: dict[str, dict[str, Any]], recognizer: Any, cache: Path, seed: int) -> dict[str, str]:
    """Speak each first caption afresh (an empty Piper cache, the voice's noise seeded) and transcribe it."""
    import onnxruntime  # type: ignore[import-untyped]  # no stubs; only this benchmark imports it

    from storage.sample.speech import CaptionSpeaker

    os.environ["XDG_CACHE_HOME"] = str(cache)  # CaptionSpeaker reads it when made: a new, empty cache
    onnxruntime.set_seed(seed)  # before the voice's session is made: its noise generator takes it then
    speaker = CaptionSpeaker()
    heard = {}
    for image_id, image in images.items():
        samples = speaker.speak(image["spoken"]).astype(np.float32) / 32768.0
        heard[image_id] = recognizer.transcribe([samples])[0]
    return heard


def main() -> None:
    """Score the recordings in ``--data``, then ``--draws`` fresh syntheses; print one JSON line each, a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an im2sp demo or sample-data folder")
    parser.add_argument("--draws", type=int, default=30)
    args = parser.parse_args()
    from tasks.models import asr_for, packaged_whisper_ref

    reference = packaged_whisper_ref("cpu")
    if reference is None:
        raise SystemExit("Whisper base needs the [demo] packages")
    recognizer = asr_for(reference)
    images = first_utterances(args.data)
    waveforms = {i: load_audio(image["wav"].read_bytes(), min_samples=1) for i, image in images.items()}
    recorded = {i: recognizer.transcribe([waveform])[0] for i, waveform in waveforms.items()}
    baseline = score(images, recorded)
    print(json.dumps({"draw": "recordings", **baseline}), flush=True)
    draws = []
    with tempfile.TemporaryDirectory() as folder:
        for draw in range(1, args.draws + 1):
            scored = score(images, fresh_draw(images, recognizer, Path(folder) / str(draw), draw))
            draws.append(scored)
            print(json.dumps({"draw": draw, **scored}), flush=True)
    summary: dict[str, Any] = {"draws": len(draws), "images": len(images)}
    for metric in ("bleu4", "meteor", "rouge_l", "cider", "wer"):
        values = [value for d in draws if (value := d[metric]) is not None]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[metric] = {"min": min(values), "max": max(values), "mean": statistics.mean(values), "sd": spread}
    print(json.dumps({"summary": summary, "recordings": baseline}), flush=True)


if __name__ == "__main__":
    main()
