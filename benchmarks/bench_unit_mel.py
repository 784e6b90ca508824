"""unit-mel on the demo's speech: Whisper-base WER of recordings, Griffin-Lim of their log-mel, and resynthesis.

unit-mel resynthesises mfcc units (K = 200) after a short CPU training.

Data: ``im2sp sample-data DIR`` (SpokenCOCO train + val captions, Piper speech, 16 kHz). Units: the ``mfcc``
extractor's frames, k-means with K = 200 (this repo's k-means), nearest centroid. A seeded ``--held-out``
utterances are kept out of training and transcribed by Whisper base (the ``[demo]`` packages) four ways: the
recordings, Griffin-Lim of their own log-mel (the ceiling of any mel vocoder here), unit-mel from full-rate
units, and from deduplicated units (durations predicted). WER against the captions (lowercased, punctuation
dropped). The units, log-mels and reference WERs are cached under ``--cache`` so configurations can be
compared on the same footing; ``--settings '{"hidden": 192}'`` changes unit-mel's settings.
Run: ``.venv/bin/python -m benchmarks.bench_unit_mel --data /tmp/um-sample [--steps 500]``.

Latest (2-core x86_64 VM shared with other jobs, torch 2 threads; 206 training utterances, 20 held-out
captions): recordings 0.156, Griffin-Lim of their log-mel 0.164; defaults + ``decay_steps: 480``, 500 steps
(about 75 s of an unloaded machine, 0.15 s/step): full-rate 0.422, deduplicated 0.529, held-out mel L1 0.432.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word-level edit distance and the reference's word count."""
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1], len(ref)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    counts = [word_errors(r, h) for r, h in zip(references, hypotheses, strict=True)]
    return sum(e for e, _ in counts) / max(1, sum(n for _, n in counts))


def utterances(root: Path) -> list[tuple[Path, str]]:
    """(wav, caption) of every spoken caption of the sample data: SpokenCOCO train + val, Flickr Audio."""
    found = []
    for split in ("train", "val"):
        document = json.loads((root / "coco" / "SpokenCOCO" / f"SpokenCOCO_{split}.json").read_text())
        for image in document["data"]:
            for caption in image["captions"]:
                found.append((root / "coco" / "SpokenCOCO" / caption["wav"], str(caption["text"])))
    flickr = root / "flickr8k"
    lines = (flickr / "Flickr8k_text" / "Flickr8k.token.txt").read_text().splitlines()
    captions = dict(line.split("\t", 1) for line in lines if "\t" in line)
    for line in (flickr / "flickr_audio" / "wav2capt.txt").read_text().splitlines():
        wav, image, number = line.split()
        if f"{image}{number}" in captions:
            found.append((flickr / "flickr_audio" / "wavs" / wav, captions[f"{image}{number}"]))
    return found


def prepare(root: Path, cache: Path, clusters: int) -> dict[str, Any]:
    """Waves, mfcc units (K-means), log-mel targets and captions, computed once and kept in ``cache``."""
    import soundfile

    from im2sp_models.kmeans import assign, build_index, train_kmeans
    from im2sp_models.speech_features.mfcc import MfccExtractor
    from im2sp_models.unit_mel import log_mel

    if cache.exists():
        with np.load(cache, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    pairs = utterances(root)
    waves = [soundfile.read(str(path), dtype="float32")[0] for path, _ in pairs]
    features = MfccExtractor.load(None).extract(waves)
    centroids, _ = train_kmeans(np.concatenate(features), clusters, seed=0, niter=20, swap_rounds=2)
    index = build_index(centroids)
    units = [assign(index, f) for f in features]
    mels = [log_mel(w, 16_000, len(u)) for w, u in zip(waves, units, strict=True)]
    data = {
        "offsets": np.cumsum([0, *(len(u) for u in units)]),
        "units": np.concatenate(units),
        "mels": np.concatenate(mels).astype(np.float16),
        "wave_offsets": np.cumsum([0, *(len(w) for w in waves)]),
        "waves": np.concatenate(waves),
        "texts": np.array([text for _, text in pairs]),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, allow_pickle=False, **data)
    return data


def split(data: dict[str, Any], held_out: int) -> tuple[list[int], list[int]]:
    """Training rows and one utterance of each of ``held_out`` captions no training utterance speaks."""
    texts = [normalise(str(t)) for t in data["texts"]]
    distinct = sorted(set(texts))
    held = {distinct[i] for i in np.random.default_rng(0).permutation(len(distinct))[:held_out]}
    evaluated = sorted({text: row for row, text in reversed(list(enumerate(texts))) if text in held}.values())
    return [row for row, text in enumerate(texts) if text not in held], evaluated


def piece(data: dict[str, Any], key: str, index: int, offsets: str = "offsets") -> np.ndarray:
    start, end = data[offsets][index], data[offsets][index + 1]
    return np.asarray(data[key][start:end])


def train(data: dict[str, Any], rows: list[int], settings: Any, steps: int, clusters: int) -> tuple[Any, int]:
    """Train ``steps`` optimizer steps (a shared machine's load stretches seconds, not steps)."""
    from im2sp_models.unit_mel import UnitMelTrainer

    pairs = [(piece(data, "units", i), piece(data, "mels", i).astype(np.float32)) for i in rows]
    trainer = UnitMelTrainer(settings, clusters)
    rng = np.random.default_rng(settings.seed)
    start = time.perf_counter()
    losses: list[dict[str, float]] = []
    while trainer.step < steps:
        chosen = rng.choice(len(pairs), size=min(settings.batch_size, len(pairs)), replace=False)
        losses.append(trainer.train_step([pairs[i] for i in chosen]))
        if trainer.step % 50 == 0:
            recent = losses[-50:]
            print(
                f"  step {trainer.step:4d}  {time.perf_counter() - start:5.1f} s  "
                f"mel_l1 {np.mean([x['mel_l1'] for x in recent]):.3f}  "
                f"duration {np.mean([x['duration_loss'] for x in recent]):.3f}",
                flush=True,
            )
    return trainer, trainer.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/um-sample"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/um-bench/data.npz"))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--held-out", type=int, default=20)
    parser.add_argument("--settings", default="{}", help="unit-mel settings as JSON")
    parser.add_argument("--no-asr", action="store_true", help="only the held-out mel L1 (no Whisper)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from im2sp_models.asr import load_asr
    from im2sp_models.asr.whisper import assemble_packaged_whisper_base
    from im2sp_models.unit_mel import UnitMelSettings, UnitMelVocoder, griffin_lim, run_lengths

    if args.threads:
        torch.set_num_threads(args.threads)
    clusters = 200
    data = prepare(args.data, args.cache, clusters)
    rows, held = split(data, args.held_out)
    texts = [str(data["texts"][i]) for i in held]
    whisper = load_asr("faster-whisper", assemble_packaged_whisper_base(Path.home() / ".cache/im2sp/whisper-base"))
    settings = UnitMelSettings.model_validate(json.loads(args.settings))
    print(f"{len(rows)} training utterances, {args.held_out} held out; settings {args.settings}")

    reference_file = args.cache.with_name("reference.json")
    if not reference_file.exists():
        recordings = [piece(data, "waves", i, "wave_offsets") for i in held]
        rebuilt = [griffin_lim(piece(data, "mels", i).astype(np.float32), settings) for i in held]
        reference = {"recordings": wer(texts, whisper.transcribe(recordings))}
        reference["griffin_lim"] = wer(texts, whisper.transcribe(rebuilt))
        reference_file.write_text(json.dumps(reference))
    reference = json.loads(reference_file.read_text())

    cpu, wall = time.process_time(), time.perf_counter()
    trainer, steps = train(data, rows, settings, args.steps, clusters)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    errors = [np.abs(trainer.log_mel_of(piece(data, "units", i)) - piece(data, "mels", i)).mean() for i in held]
    held_l1 = float(np.mean(errors))
    print(f"training: {steps} steps in {wall:.1f} s wall, {cpu:.1f} s CPU ({torch.get_num_threads()} threads)")
    print(f"held-out mel L1 {held_l1:.3f}")
    if args.no_asr:
        return
    folder = args.cache.with_name("vocoder")
    trainer.export(folder, {"codebook": "bench"})
    vocoder = UnitMelVocoder.load(folder, device="cpu")
    started = time.perf_counter()
    full = [vocoder.synthesize(piece(data, "units", i), deduplicated=False) for i in held]
    synthesis = time.perf_counter() - started
    dedup = [vocoder.synthesize(run_lengths(piece(data, "units", i))[0]) for i in held]
    print(f"recordings                 WER {reference['recordings']:.3f}")
    print(f"Griffin-Lim of their mel   WER {reference['griffin_lim']:.3f}")
    print(f"unit-mel, full-rate units  WER {wer(texts, whisper.transcribe(full)):.3f}")
    print(f"unit-mel, deduplicated     WER {wer(texts, whisper.transcribe(dedup)):.3f}")
    print(f"synthesis {synthesis / len(held):.2f} s per utterance")


if __name__ == "__main__":
    main()
