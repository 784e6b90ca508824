"""Flow ``evaluate-im2sp``: the reference speech, its units resynthesized and the generated units, scored.

For each dataset's test images: the model (``evaluation.model``: an Im2Sp model kind and its checkpoint; by
default the newest checkpoint of the configured training run) generates speech units, scored by unit error
rate against the reference utterances. Three rows are scored against the text captions with pycocoevalcap's
scorers (SPICE only when installed): the **topline** (the reference speech transcribed by the configured ASR),
the **resynthesis** (the reference utterances' stored units → vocoder → ASR: what units and vocoder lose) and
the **generated** speech (the model's units → vocoder → ASR); the caption metrics score one transcript per
image (the topline's and resynthesis's: the image's first reference utterance). The first two are also scored
by word error rate over every reference utterance of the scored images, each against its own caption (the row
says over how many utterances). The vocoder is ``evaluation.vocoder_checkpoint``, else the store's vocoder for
the speech codebook that made the training shards' units (train-vocoder's); without one both spoken rows say
"not configured: no vocoder for speech codebook …". The examples artifact shows one image's three log-mel
spectrograms side by side; each run's results are kept in the store as ``reports/evaluation/<time>.json``
(unless they repeat the newest kept run's) and trended (``evaluate-im2sp-trend``; ``im2sp report
evaluation``). The paper's BLEU-4 for the model and dataset is shown
beside ours with the difference (for our own ``im2sp`` the paper's image-unit model, as context only).

What the units were made by is read from lineage (the training shards' ``version.json`` → their image units'),
never from the config: ``official-im2sp-unit`` is refused on units not tokenized as the authors did (SeiT's
ViT-VQGAN with the model's codebook, ``image_preprocess: official``, fp32), so its figure beside the paper's
compares like with like. Each evaluation's WAVs go to a folder of their own (:func:`tasks.evaluate.wav_folder`).
"""

from __future__ import annotations

import base64
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import PipelineConfig
from flows.evaluation_config import TRAINED_KIND
from flows.evaluation_report import TREND_RUNS, evaluation_document, trend_markdown
from flows.plans import training_plan
from im2sp_models.vocoders import VOCODERS
from storage.errors import Im2SpError
from storage.evaluation_reports import EVALUATION_REPORTS, keep_evaluation, kept_evaluations
from storage.kinds import SHARED, TRAIN_RUNS, TRAINING_SHARDS
from storage.reader import verified_local_copy
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.evaluate import EvalModels, EvalResult, EvalSettings, evaluate_dataset_task
from tasks.models import AsrRef, Im2SpModelRef, VocoderRef, packaged_whisper_ref
from tasks.train import latest_checkpoint, run_id

#: BLEU-4 reported by the paper (Kim et al., 2023, the released models) per model kind and dataset kind.
PAPER_BLEU4 = {
    ("official-im2sp", "coco"): 25.9,
    ("official-im2sp", "flickr8k"): 20.6,
    ("official-im2sp-unit", "coco"): 20.1,
    ("official-im2sp-unit", "flickr8k"): 16.7,
}
#: Kinds without a figure of their own, shown beside the paper's model of the same input, as context.
PAPER_CONTEXT = {TRAINED_KIND: "official-im2sp-unit"}
METRIC_COLUMNS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
#: The official kinds' scripts generate 16 images per call; ours, 8.
BATCH_SIZES = {TRAINED_KIND: 8}
OFFICIAL_BATCH = 16
#: The metrics table's ``system`` of each row.
SYSTEMS = {
    "topline": "reference speech → ASR (topline)",
    "resynthesis": "reference units → vocoder → ASR (resynthesis)",
    "generated": "generated units → vocoder → ASR",
}


def _model_folder(config: PipelineConfig) -> str:
    """The im2sp checkpoint to evaluate: the configured one, else the training run's newest (verified copy)."""
    if config.evaluation.model.checkpoint is not None:
        return str(config.evaluation.model.checkpoint)
    store = config.store.open()
    data, settings, _ = training_plan(config)
    run = StoreVersion(store, SHARED, TRAIN_RUNS, run_id(settings, data))
    latest = latest_checkpoint(run)
    if latest is None:
        raise Im2SpError(f"training run {run.version} has no checkpoint yet: run train-im2sp first")
    return str(verified_local_copy(run, latest))  # evaluate only a checkpoint that matches its marker


def _model_ref(config: PipelineConfig) -> Im2SpModelRef:
    """The configured Im2Sp model kind as a loadable reference (im2sp without a checkpoint: the newest trained)."""
    model = config.evaluation.model
    checkpoint = _model_folder(config) if model.kind == TRAINED_KIND else str(model.checkpoint)
    return Im2SpModelRef(model.kind, checkpoint, config.device, model.settings())


def _settings(config: PipelineConfig) -> EvalSettings:
    """Generation settings: ``beams``/``max_units`` only where set in the config (else the kind's defaults)."""
    section = config.evaluation
    given = section.model_fields_set
    return EvalSettings(
        section.split,
        section.max_images,
        section.beams if "beams" in given else None,
        section.max_units if "max_units" in given else None,
        BATCH_SIZES.get(section.model.kind, OFFICIAL_BATCH),
    )


def _asr(config: PipelineConfig) -> AsrRef | None:
    section = config.evaluation
    if section.asr_checkpoint is not None or not section.asr_entry.needs_checkpoint:
        return AsrRef(section.asr, str(section.asr_checkpoint or ""), config.device)
    return packaged_whisper_ref(config.device) if section.asr == "faster-whisper" else None  # the demo's ASR


def _vocoder(config: PipelineConfig) -> VocoderRef | None:
    section = config.evaluation
    if section.vocoder_checkpoint is None and VOCODERS.entry(section.vocoder).needs_checkpoint:
        return None
    return VocoderRef(section.vocoder, str(section.vocoder_checkpoint or ""), config.device)


def _cell(value: float | None) -> str:
    return "skipped" if value is None else f"{100 * value:.1f}"


def _paper(result: EvalResult) -> tuple[str, str]:
    """The paper's BLEU-4 for the result's model and dataset, and ours less it (marked when only context)."""
    kind = PAPER_CONTEXT.get(result.model, result.model)
    paper = PAPER_BLEU4.get((kind, result.dataset_kind or result.dataset))
    if paper is None:
        return "-", "-"
    mark = "" if kind == result.model else f" (context: the paper's {kind})"
    ours = (result.generated or {}).get("Bleu_4")
    difference = "-" if ours is None else f"{100 * ours - paper:+.1f}"
    return f"{paper}{mark}", difference + (" (context)" if mark and ours is not None else "")


def _wer(value: float | None, scored: bool, utterances: int) -> dict[str, str]:
    """The ``wer`` (×100) and ``wer_utterances`` cells of a row."""
    if value is not None:
        return {"wer": f"{100 * value:.1f}", "wer_utterances": str(utterances)}
    return {"wer": "-" if scored else "not configured", "wer_utterances": "-"}


def _row(result: EvalResult, system: str, scores: dict[str, float | None] | None, **cells: str) -> dict[str, str]:
    """One row of the metrics table: the caption metrics (×100), then ``cells``."""
    return {
        "dataset": result.dataset,
        "model": result.model,
        "system": system,
        **{m: (_cell(scores.get(m)) if scores else "not configured") for m in METRIC_COLUMNS},
        **cells,
    }


def metric_rows(results: list[EvalResult]) -> list[dict[str, str]]:
    """The metrics table: topline, resynthesis and generated rows per dataset and model, the paper's BLEU-4 beside.

    ``wer`` (×100) is the ASR's word error rate over every reference utterance of the scored images, each against
    its own caption (topline, resynthesis), ``wer_utterances`` how many utterances it covers; the caption metrics
    score one transcript per image (its first utterance's).
    """
    rows = []
    for result in results:
        paper, difference = _paper(result)
        generated_note = (
            f"{result.images} images; {result.generated_length:.0f} units generated on average vs "
            f"{result.reference_length:.0f} in the references; {result.generated_note}"
        )
        common = {"unit_error_rate": "-", "paper_bleu4": "-", "bleu4_vs_paper": "-"}
        topline_wer = _wer(result.topline_wer, result.topline is not None, result.topline_wer_utterances)
        resynthesis_wer = _wer(
            result.resynthesis_wer, result.resynthesis is not None, result.resynthesis_wer_utterances
        )
        rows += [
            _row(
                result,
                SYSTEMS["topline"],
                result.topline,
                **topline_wer,
                **common,
                note=result.topline_note,
            ),
            _row(
                result,
                SYSTEMS["resynthesis"],
                result.resynthesis,
                **resynthesis_wer,
                **common,
                note=result.resynthesis_note,
            ),
            _row(
                result,
                SYSTEMS["generated"],
                result.generated,
                wer="-",
                wer_utterances="-",
                unit_error_rate=f"{result.unit_error_rate:.3f}",
                paper_bleu4=paper,
                bleu4_vs_paper=difference,
                note=generated_note,
            ),
        ]
    return rows


def _examples_markdown(results: list[EvalResult], store: Store, header: str) -> str:
    """The examples artifact: per dataset a few images' transcripts, and the log-mel picture of one with its WAVs."""
    lines = [header]
    for result in results:
        lines.append(
            f"## {result.dataset}\n\n| image | references | reference speech (ASR) | resynthesized speech (ASR) "
            "| generated speech (ASR) | units |"
        )
        lines.append("|---|---|---|---|---|---|")
        for example in result.examples:
            references = "<br>".join(example["references"])
            lines.append(
                f"| {example['image_id']} | {references} | {example['reference_speech_asr']} | "
                f"{example.get('resynthesized_speech_asr', '-')} | {example['generated_speech_asr']} | "
                f"{example['generated_units']} … |"
            )
        lines.append("")
        lines += _picture_lines(result, store)
    return "\n".join(lines)


def _picture_lines(result: EvalResult, store: Store) -> list[str]:
    """The log-mel picture of one image's speech (reference, resynthesized, generated), inlined, and its WAVs."""
    if not result.picture:
        return ["No spectrograms: no speech was synthesized (no vocoder, or no ASR).", ""]
    png = base64.b64encode(store.read_bytes(result.picture)).decode()
    wavs = result.picture_wavs
    return [
        f"### Image {wavs['image']}: reference, resynthesized and generated speech (log-mel)",
        "",
        f"![log-mel spectrograms](data:image/png;base64,{png})",
        "",
        f"- reference recording: `{wavs['reference']}`",
        f"- resynthesized (stored units → vocoder): `{wavs['resynthesized']}`",
        f"- generated (model units → vocoder): `{wavs['generated']}`",
        "",
    ]


@flow(name="evaluate-im2sp")
def evaluate_im2sp_flow(config: PipelineConfig) -> list[EvalResult]:
    """Score the model's generated units and the ASR topline on each dataset's test images."""
    logger = get_run_logger()
    section = config.evaluation
    store_ref = config.store.ref()
    store = store_ref.open()
    model = _model_ref(config)
    asr = _asr(config)
    vocoder = _vocoder(config)
    models = EvalModels(model, asr, vocoder)
    settings = _settings(config)
    results = []
    for dataset, spec in config.selected(section.datasets).items():
        shards = current_version(store, dataset, TRAINING_SHARDS)
        if shards is None:
            raise Im2SpError(f"dataset {dataset!r} has no training shards: run build-training-shards first")
        result = evaluate_dataset_task(store_ref, str(spec.root), dataset, shards.version, models, settings)
        result.dataset_kind = spec.kind
        logger.info(
            "%s: %d test images, unit error rate %.3f, topline BLEU-4 %s",
            dataset,
            result.images,
            result.unit_error_rate,
            _cell((result.topline or {}).get("Bleu_4")),
        )
        results.append(result)
    rows = metric_rows(results)
    create_table_artifact(key="evaluate-im2sp-metrics", table=rows, description="Caption and unit metrics")
    recognizer = asr.checkpoint if asr else "not configured"
    header = f"# evaluate-im2sp\n\nModel: {model.name} `{model.checkpoint}`; ASR: `{recognizer}`.\n"
    markdown = _examples_markdown(results, store, header)
    create_markdown_artifact(key="evaluate-im2sp-examples", markdown=markdown, description="Examples")
    _keep_report(store, evaluation_document(results, store, asr, section.split))
    return results


def _keep_report(store: Store, document: dict[str, Any]) -> None:
    """Keep the run's report (unless it repeats the newest kept one) and publish the trend of the kept runs."""
    logger = get_run_logger()
    name, written = keep_evaluation(store, document)
    skipped: list[str] = []
    reports = kept_evaluations(store, TREND_RUNS, unreadable=skipped)
    markdown = "\n".join(
        [
            "# evaluate-im2sp: trend of the kept runs (×100)",
            "",
            trend_markdown(reports),
            *(["", f"Left out (kept report unreadable): {', '.join(skipped)}"] if skipped else []),
        ]
    )
    create_markdown_artifact(key="evaluate-im2sp-trend", markdown=markdown, description="Kept evaluation runs")
    for unreadable in skipped:
        logger.warning("evaluation report %s/%s.json unreadable; left out of the trend", EVALUATION_REPORTS, unreadable)
    state = "kept" if written else "the same as the newest kept report, kept nothing new:"
    logger.info("evaluation report %s %s/%s.json", state, store.url_of(EVALUATION_REPORTS), name)
