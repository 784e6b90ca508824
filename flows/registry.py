"""Flows by their user-facing names (flow name = deployment name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.build_manifests import build_manifests_flow
from flows.build_training_shards import build_training_shards_flow
from flows.evaluate_im2sp import evaluate_im2sp_flow
from flows.extract_speech_features import extract_speech_features_flow
from flows.learn_image_codebook import learn_image_codebook_flow
from flows.learn_speech_codebook import learn_speech_codebook_flow
from flows.pipeline import pipeline_flow
from flows.report import storage_report_flow
from flows.retokenize_images import retokenize_images_flow
from flows.tokenize_images import tokenize_images_flow
from flows.train_im2sp import train_im2sp_flow
from flows.unitize_speech import unitize_speech_flow
from storage.errors import UsageError

FLOWS: dict[str, Any] = {
    "build-manifests": build_manifests_flow,
    "learn-image-codebook": learn_image_codebook_flow,
    "tokenize-images": tokenize_images_flow,
    "extract-speech-features": extract_speech_features_flow,
    "learn-speech-codebook": learn_speech_codebook_flow,
    "unitize-speech": unitize_speech_flow,
    "retokenize-images": retokenize_images_flow,
    "build-training-shards": build_training_shards_flow,
    "train-im2sp": train_im2sp_flow,
    "evaluate-im2sp": evaluate_im2sp_flow,
    "storage-report": storage_report_flow,
    "im2sp-pipeline": pipeline_flow,
}


def get_flow(name: str) -> Callable[..., Any]:
    """Return the flow of a name.

    Raises:
        UsageError: If no flow has that name (the message lists the known names).
    """
    if name not in FLOWS:
        raise UsageError(f"unknown flow {name!r}; known flows: {', '.join(sorted(FLOWS))}")
    flow: Callable[..., Any] = FLOWS[name]
    return flow
