"""Flow ``tokenize-images``: image units (Zarr v3, N × 32 × 32) per dataset, versioned by tokenizer fingerprint.

One task per planned shard; committed shards are skipped, so a rerun only builds what is missing. The
dataset's ``current`` pointer moves to the new version only when every shard is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.config import PipelineConfig
from flows.plans import image_units_version_id, tokenizer_ref
from flows.runner import shard_runner
from flows.sharded import ShardedResult, manifest_jobs, run_and_publish
from im2sp_models.official_im2sp_unit import tokenizer_provenance
from storage.kinds import IMAGE_UNITS
from storage.report import image_unit_entries
from storage.store import Store
from storage.versions import StoreVersion
from tasks.image_preview import ReconstructionReport, StoredUnits, check_reconstruction_task, inline_preview_uri
from tasks.image_units import TokenizeSettings, tokenize_shard_task
from tasks.models import tokenizer_for


@dataclass(frozen=True)
class DatasetUnits(ShardedResult):
    """What tokenize-images did for one dataset, with its reconstruction check."""

    reconstruction: ReconstructionReport | None = None


@flow(name="tokenize-images")
def tokenize_images_flow(config: PipelineConfig, datasets: list[str] | None = None) -> list[DatasetUnits]:
    """Tokenize the images of every configured dataset (or of those named in ``datasets``)."""
    logger = get_run_logger()
    store_ref = config.store.ref()
    store = store_ref.open()
    section = config.image_tokenizer
    ref = tokenizer_ref(config, store)
    tokenizer = tokenizer_for(ref)
    settings = TokenizeSettings(section.batch_size, config.sharding.io_workers, section.codec, section.image_preprocess)
    version_id = image_units_version_id(config, tokenizer.fingerprint)
    provenance_precision = str(getattr(ref.options, "precision", "fp32"))
    results = []
    with shard_runner(config, uses_device=True) as runner:
        for dataset, spec in config.selected(datasets).items():
            manifest_version, jobs, paths = manifest_jobs(store, dataset, "image")
            version = StoreVersion(store, dataset, IMAGE_UNITS, version_id)
            _ensure_recorded(
                version,
                {
                    "tokenizer": ref.name,
                    "fingerprint": tokenizer.fingerprint,
                    "codebook_size": tokenizer.codebook_size,
                    "manifests": manifest_version,
                    **({} if version_id == tokenizer.fingerprint else {"image_preprocess": section.image_preprocess}),
                    "provenance": tokenizer_provenance(ref.name, ref.checkpoint, provenance_precision),
                },
            )
            progress = create_progress_artifact(
                progress=0.0, key=f"tokenize-images-{dataset}", description=f"{dataset}: shards committed"
            )
            assert isinstance(progress, UUID)  # the sync API returns the id
            summary = run_and_publish(
                version,
                jobs,
                runner.bind(
                    tokenize_shard_task,
                    store=store_ref,
                    root=str(spec.root),
                    version_id=version.version,
                    ref=ref,
                    settings=settings,
                ),
                partial(_progress, progress),
            )
            report = None
            if section.reconstruction_sample:
                units = StoredUnits(dataset, version.version, tuple(job.shard_id for job in jobs), paths)
                report = check_reconstruction_task(
                    store_ref, str(spec.root), units, ref, section.reconstruction_sample, section.image_preprocess
                )
            result = DatasetUnits(**vars(summary), reconstruction=report)
            logger.info(
                "%s: %d stored, %d rejected, %d shards built, %d skipped → %s",
                dataset,
                result.stored,
                result.rejected,
                result.shards_built,
                result.shards_skipped,
                result.url,
            )
            _artifacts(store, result)
            results.append(result)
    return results


def _ensure_recorded(version: StoreVersion, produced_by: dict[str, Any]) -> None:
    """``version.json`` as :meth:`StoreVersion.ensure_created` writes it, ``provenance`` added where it lacks it.

    Versions made before ``provenance`` was recorded get it from the next run that opens them: the version id
    hashes the tokenizer's checkpoint bytes, precision and preprocessing, so what this run records is true of them
    (the id is unchanged). A version that has it is not written again.
    """
    version.ensure_created(produced_by)
    info = version.info()
    if "provenance" not in info["produced_by"]:
        recorded = {**info, "produced_by": {**info["produced_by"], "provenance": produced_by["provenance"]}}
        version.store.write_json(f"{version.prefix}/version.json", recorded)


def _progress(artifact: UUID, done: int, total: int) -> None:
    update_progress_artifact(artifact_id=artifact, progress=100.0 * done / max(1, total))


def _artifacts(store: Store, result: DatasetUnits) -> None:
    rows = []
    for entry in image_unit_entries(store, result.dataset):
        rows.append(
            {
                "dataset": entry.dataset,
                "items": entry.items,
                "rejected": result.rejected,
                "source_bytes": entry.source_bytes,
                "raw_bits": entry.raw_bits,
                "unit_bits": entry.unit_bits,
                "stored_bytes": entry.stored_bytes,
                "stored_vs_raw": f"{entry.stored_bytes * 8 / max(1, entry.raw_bits):.3%}",
                "stored_vs_source": f"{entry.stored_bytes / max(1, entry.source_bytes):.3%}",
            }
        )
    create_table_artifact(
        key=f"image-units-{result.dataset}",
        table=rows,
        description=f"Image units of {result.dataset}, version {result.version}",
    )
    report = result.reconstruction
    if report is None:
        return
    markdown = reconstruction_markdown(report, store.read_bytes(report.preview_key), store.url_of(report.preview_key))
    create_markdown_artifact(key=f"image-reconstruction-{result.dataset}", markdown=markdown)


def reconstruction_markdown(report: ReconstructionReport, preview: bytes, preview_url: str) -> str:
    """The reconstruction artifact: PSNR, the preview inlined as a small JPEG, the full PNG's URL as a footnote.

    The preview is always inlined (a browser showing the Prefect UI cannot open a path in the store).

    Args:
        report: The reconstruction check.
        preview: The preview PNG as kept in the store.
        preview_url: Where the PNG is kept.
    """
    return "\n".join(
        [
            f"# Reconstruction check: {report.dataset}",
            "",
            f"{report.items} stored items decoded back to pixels: PSNR mean **{report.psnr_mean:.2f} dB**, "
            f"min {report.psnr_min:.2f} dB.",
            "",
            f"![preview: original | reconstruction]({inline_preview_uri(preview)})",
            "",
            "---",
            "",
            f"Preview (original | reconstruction), full size: `{preview_url}`",
        ]
    )
