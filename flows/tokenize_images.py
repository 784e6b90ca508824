"""Flow ``tokenize-images``: image units (Zarr v3, N × 32 × 32) per dataset, versioned by tokenizer fingerprint.

One task per planned shard; committed shards are skipped, so a rerun only builds what is missing. The
dataset's ``current`` pointer moves to the new version only when every shard is committed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
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
from storage.errors import Im2SpError
from storage.kinds import IMAGE_UNITS, MANIFESTS
from storage.manifests import ok_rows, planned_shards
from storage.report import image_unit_entries
from storage.store import Store
from storage.versions import StoreVersion, current_version
from tasks.image_codebook import current_codebook
from tasks.image_preview import ReconstructionReport, check_reconstruction_task
from tasks.image_units import tokenize_shard_task
from tasks.jobs import ShardJob, ShardOutcome
from tasks.tokenizers import TokenizerRef, tokenizer_for


@dataclass(frozen=True)
class DatasetUnits:
    """What tokenize-images did for one dataset."""

    dataset: str
    version: str
    url: str
    shards_built: int
    shards_skipped: int
    stored: int
    rejected: int
    stored_bytes: int
    reconstruction: ReconstructionReport | None


def tokenizer_ref(config: PipelineConfig, store: Store) -> TokenizerRef:
    """Resolve the configured tokenizer to a loadable reference (patch-vq falls back to the store's codebook)."""
    section = config.image_tokenizer
    checkpoint = section.checkpoint
    if checkpoint is None:
        found = current_codebook(store)
        if found is None:
            raise Im2SpError("no image codebook yet: run learn-image-codebook first, or set image_tokenizer.checkpoint")
        checkpoint = found[1]
    options: dict[str, Any] = {"trust_pickle": True} if section.trust_pickle else {}
    return TokenizerRef(section.name, str(checkpoint), config.device, options)


def _jobs(store: Store, dataset: str) -> tuple[str, list[ShardJob], dict[str, str]]:
    manifests = current_version(store, dataset, MANIFESTS)
    if manifests is None:
        raise Im2SpError(f"dataset {dataset!r} has no manifests yet; run build-manifests first")
    rows = ok_rows(manifests, "images", ["path", "sha256"])
    jobs = [
        ShardJob(
            dataset,
            shard.shard_id,
            shard.fingerprint,
            tuple((key, rows[key]["path"], rows[key]["sha256"]) for key in shard.items),
        )
        for shard in planned_shards(manifests, "image")
    ]
    return manifests.version, jobs, {key: row["path"] for key, row in rows.items()}


@flow(name="tokenize-images")
def tokenize_images_flow(config: PipelineConfig) -> list[DatasetUnits]:
    """Tokenize every configured dataset's images with the configured tokenizer."""
    logger = get_run_logger()
    store = Store(config.store.url, config.store.storage_options or None)
    options = config.store.storage_options or None
    section = config.image_tokenizer
    ref = tokenizer_ref(config, store)
    tokenizer = tokenizer_for(ref)
    results = []
    for dataset, spec in config.datasets.items():
        manifest_version, jobs, paths = _jobs(store, dataset)
        version = StoreVersion(store, dataset, IMAGE_UNITS, tokenizer.fingerprint)
        version.ensure_created(
            {
                "tokenizer": ref.name,
                "fingerprint": tokenizer.fingerprint,
                "codebook_size": tokenizer.codebook_size,
                "manifests": manifest_version,
            }
        )
        progress = create_progress_artifact(
            progress=0.0, key=f"tokenize-images-{dataset}", description=f"{dataset}: shards committed"
        )
        assert isinstance(progress, UUID)  # the sync API returns the id
        futures = [
            tokenize_shard_task.submit(
                config.store.url,
                options,
                str(spec.root),
                job,
                version.version,
                ref,
                section.batch_size,
                config.sharding.io_workers,
                section.codec,
            )
            for job in jobs
        ]
        outcomes: list[ShardOutcome] = []
        for future in futures:
            outcomes.append(future.result())
            update_progress_artifact(artifact_id=progress, progress=100.0 * len(outcomes) / max(1, len(futures)))
        # Shards of an earlier plan (items moved after a manifest change) would be counted twice: drop them.
        version.prune(job.shard_id for job in jobs)
        version.publish([job.shard_id for job in jobs])
        report = None
        if section.reconstruction_sample:
            report = check_reconstruction_task(
                config.store.url,
                options,
                str(spec.root),
                dataset,
                version.version,
                [job.shard_id for job in jobs],
                paths,
                ref,
                section.reconstruction_sample,
            )
        result = DatasetUnits(
            dataset,
            version.version,
            version.url,
            sum(o.built for o in outcomes),
            sum(not o.built for o in outcomes),
            sum(o.stored for o in outcomes),
            sum(o.rejected for o in outcomes),
            store.disk_usage(version.prefix),
            report,
        )
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
    lines = [
        f"# Reconstruction check: {result.dataset}",
        "",
        f"{report.items} stored items decoded back to pixels: PSNR mean **{report.psnr_mean:.2f} dB**, "
        f"min {report.psnr_min:.2f} dB. Preview (original | reconstruction): `{store.url_of(report.preview_key)}`",
    ]
    preview = store.read_bytes(report.preview_key)
    if len(preview) < 400_000:  # inline small previews so the artifact shows them without store access
        lines += ["", f"![preview](data:image/png;base64,{base64.b64encode(preview).decode()})"]
    create_markdown_artifact(key=f"image-reconstruction-{result.dataset}", markdown="\n".join(lines))
