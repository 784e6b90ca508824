"""Flow ``learn-image-codebook``: train a patch-vq codebook, publish it, emit ``im2sp.codebook.updated``."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.config import PipelineConfig
from flows.plans import CODEBOOK_EVENT
from storage.errors import Im2SpError
from storage.manifests import KIND as MANIFESTS
from storage.manifests import ok_rows
from storage.versions import current_version
from tasks.image_codebook import (
    CodebookRef,
    ImageCodebookSettings,
    codebook_inputs,
    learn_image_codebook_task,
    sample_images,
)

#: The codebook learns from these splits only, so test images never shape it.
TRAINING_SPLITS = ("train", "restval")


@flow(name="learn-image-codebook")
def learn_image_codebook_flow(config: PipelineConfig) -> CodebookRef:
    """Learn the image codebook from a bounded sample of every dataset's training images."""
    section = config.image_tokenizer
    if not section.entry.learns_codebook:
        raise Im2SpError(f"image_tokenizer {section.name} loads its codebook from a checkpoint: there is none to learn")
    store_ref = config.store.ref()
    store = store_ref.open()
    sources = []
    for name, spec in config.datasets.items():
        manifests = current_version(store, name, MANIFESTS)
        if manifests is None:
            raise Im2SpError(f"dataset {name!r} has no manifests yet; run build-manifests first")
        rows = ok_rows(manifests, "images", ["split", "path", "sha256"])
        training = [(k, r["path"], r["sha256"]) for k, r in rows.items() if r["split"] in TRAINING_SPLITS]
        sources.append((name, str(spec.root), training))
    picked = sample_images(sources, section.sample_images, section.seed)
    settings = ImageCodebookSettings(
        codebook_size=section.codebook_size,
        seed=section.seed,
        niter=section.niter,
        device=config.device,
        io_workers=config.sharding.io_workers,
    )
    inputs = codebook_inputs([(str(path), sha256) for path, sha256 in picked], settings)
    ref = learn_image_codebook_task(store_ref, [str(path) for path, _ in picked], settings, inputs)
    if ref.reused:  # learned before from exactly these images: nothing changed, nothing to announce
        get_run_logger().info("image codebook %s is up to date (same images and settings)", ref.codebook_id)
        return ref
    emit_event(
        event=CODEBOOK_EVENT,
        resource={"prefect.resource.id": f"im2sp.codebook.image.{ref.codebook_id}"},
        payload={"kind": "image", "codebook_id": ref.codebook_id, "url": ref.url},
    )
    get_run_logger().info(
        "image codebook %s (K=%d, %d images) at %s", ref.codebook_id, ref.codebook_size, ref.images, ref.url
    )
    return ref
