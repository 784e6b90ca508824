"""Flow ``im2sp-pipeline``: the whole DAG in order (the demo runs this)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.build_manifests import build_manifests_flow
from flows.build_training_shards import build_training_shards_flow
from flows.config import PipelineConfig
from flows.evaluate_im2sp import evaluate_im2sp_flow
from flows.extract_speech_features import extract_speech_features_flow
from flows.learn_image_codebook import learn_image_codebook_flow
from flows.learn_speech_codebook import learn_speech_codebook_flow
from flows.report import storage_report_flow
from flows.tokenize_images import tokenize_images_flow
from flows.train_im2sp import train_im2sp_flow
from flows.train_vocoder import train_vocoder_flow
from flows.unitize_speech import unitize_speech_flow


@flow(name="im2sp-pipeline")
def pipeline_flow(config: PipelineConfig) -> dict[str, Any]:
    """Run every implemented stage in order and return each stage's results by flow name."""
    results: dict[str, Any] = {"build-manifests": build_manifests_flow(config)}
    section = config.image_tokenizer
    if section.entry.learns_codebook and section.checkpoint is None:
        results["learn-image-codebook"] = learn_image_codebook_flow(config)
    results["tokenize-images"] = tokenize_images_flow(config)
    results["extract-speech-features"] = extract_speech_features_flow(config)
    results["learn-speech-codebook"] = learn_speech_codebook_flow(config)
    results["unitize-speech"] = unitize_speech_flow(config)
    results["train-vocoder"] = train_vocoder_flow(config)
    results["build-training-shards"] = build_training_shards_flow(config)
    results["train-im2sp"] = train_im2sp_flow(config)
    results["evaluate-im2sp"] = evaluate_im2sp_flow(config)
    results["storage-report"] = storage_report_flow(config)
    return results
