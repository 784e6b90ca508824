"""Flow ``learn-speech-codebook``: faiss k-means over a capped frame sample; emits ``im2sp.codebook.updated``."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.config import PipelineConfig
from flows.plans import CODEBOOK_EVENT
from tasks.speech_codebook import SpeechCodebookRef, SpeechCodebookSettings, learn_speech_codebook_task


@flow(name="learn-speech-codebook")
def learn_speech_codebook_flow(config: PipelineConfig) -> SpeechCodebookRef:
    """Learn K speech units from every dataset's stored features (at most ``speech.max_frames`` frames)."""
    speech = config.speech
    settings = SpeechCodebookSettings(
        clusters=speech.clusters,
        max_frames=speech.max_frames,
        seed=speech.seed,
        niter=speech.niter,
        swap_rounds=speech.swap_rounds,
        device=config.device,
    )
    ref = learn_speech_codebook_task(config.store.ref(), list(config.datasets), settings)
    if ref.reused:  # learned before from exactly these features: nothing changed, nothing to announce
        get_run_logger().info("speech codebook %s is up to date (same features and settings)", ref.codebook_id)
        return ref
    emit_event(
        event=CODEBOOK_EVENT,
        resource={"prefect.resource.id": f"im2sp.codebook.speech.{ref.codebook_id}"},
        payload={"kind": "speech", "codebook_id": ref.codebook_id, "url": ref.url},
    )
    get_run_logger().info(
        "speech codebook %s: K=%d from %d frames, inertia %.4g",
        ref.codebook_id,
        ref.clusters,
        ref.sample_frames,
        ref.inertia,
    )
    return ref
