"""What evaluate-im2sp feeds a model: the test images' stored unit grids, or their files, and the generation loop.

A model kind says what it reads (:data:`~im2sp_models.im2sp_kinds.Reads`): ``image-units`` kinds get the
32 × 32 grids the training shards hold (exactly what was tokenized); ``images`` kinds get each test image's
file, read from the dataset root at the manifests' path and checked against the manifests' sha256 (as
tokenize-images reads it), then the kind's own ``preprocess``. An image that cannot be read or decoded now is
left out and named, never scored as silence.

Which units a kind may read is judged from lineage (:func:`check_image_units`): the training-shards version's
``version.json`` names its image-units version, whose ``version.json`` records what tokenized them; a kind that
only reads units of one tokenizer (:class:`ChecksImageUnits`) refuses any other, however in range their ids.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from im2sp_models.im2sp_kinds import Im2SpModel
from storage.errors import Im2SpError
from storage.kinds import IMAGE_UNITS, TRAINING_SHARDS
from storage.manifests import ok_rows
from storage.reader import iter_webdataset
from storage.shard_plan import split_of
from storage.store import Store
from storage.versions import StoreVersion
from tasks.jobs import read_verified


@runtime_checkable
class ChecksImageUnits(Protocol):
    """A model kind that reads only units of one tokenizer (``official-im2sp-unit``: SeiT's, as the authors')."""

    def image_units_problem(self, produced_by: Mapping[str, Any]) -> str | None:
        """Why units whose image-units ``version.json`` records ``produced_by`` are not this model's, or None."""


def check_image_units(model: Im2SpModel, store: Store, dataset: str, training_version: str) -> None:
    """Refuse to evaluate ``model`` on training shards whose image units it cannot read as it was trained to.

    Raises:
        Im2SpError: One line: which units, what differs, and how to make units that match.
    """
    if model.reads != "image-units" or not isinstance(model, ChecksImageUnits):
        return
    joined = StoreVersion(store, dataset, TRAINING_SHARDS, training_version).info()["produced_by"]
    units_id = str(joined["image_units"])
    produced_by = StoreVersion(store, dataset, IMAGE_UNITS, units_id).info()["produced_by"]
    problem = model.image_units_problem(produced_by)
    if problem is not None:
        raise Im2SpError(
            f"{model.name} cannot be evaluated on {dataset} training shards {training_version} (image units "
            f"{units_id}): {problem}"
        )


def split_images(store: Store, dataset: str, version_id: str, split: str) -> dict[str, dict[str, Any]]:
    """The split's images in the training shards, by image id (sorted).

    Each is ``{"grid": …, "refs": [(key, units), …], "shards": {key: shard id}, "texts": {key: caption text}}``:
    its utterances' deduplicated units (as trained on), the training shard each is in, and its caption text.
    """
    version = StoreVersion(store, dataset, TRAINING_SHARDS, version_id)
    images: dict[str, dict[str, Any]] = {}
    for shard in sorted(s for s in version.committed() if split_of(s) == split):
        for key, fields in iter_webdataset(version, shard):
            meta = json.loads(fields["json"])
            grid = np.load(io.BytesIO(fields["image.npy"]))
            entry = images.setdefault(meta["image_id"], {"grid": grid, "refs": [], "shards": {}, "texts": {}})
            entry["refs"].append((key, np.load(io.BytesIO(fields["units.npy"]))))
            entry["shards"][key] = shard  # a training shard covers the speech shard of the same id
            entry["texts"][key] = fields.get("txt", b"").decode("utf-8")
    return dict(sorted(images.items()))


def model_inputs(
    model: Im2SpModel, grids: Mapping[str, np.ndarray], manifests: StoreVersion, root: Path
) -> tuple[dict[str, np.ndarray], list[str]]:
    """What ``model.generate`` takes for each image id of ``grids``, and why any image was left out.

    Args:
        model: The loaded kind (its ``reads`` decides).
        grids: Image id → its stored 32 × 32 image-unit grid (the images to evaluate, in order).
        manifests: The manifests the training shards were built from (image paths and sha256).
        root: The dataset's root folder.
    """
    if model.reads == "image-units":
        return dict(grids), []
    rows = ok_rows(manifests, "images", ["path", "sha256"])
    inputs: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for image_id in grids:
        row = rows.get(image_id)
        data = read_verified(root, (image_id, row["path"], row["sha256"])) if row else "not in the manifests"
        if isinstance(data, str):
            problems.append(f"{image_id}: {data}")
            continue
        try:
            inputs[image_id] = model.preprocess(data)
        except (OSError, ValueError) as error:  # PIL's errors for an undecodable file, a too-small image
            problems.append(f"{image_id}: undecodable image ({error})")
    return inputs, problems


def generate_units(
    model: Im2SpModel, inputs: Mapping[str, np.ndarray], *, beams: int | None, max_units: int | None, batch_size: int
) -> dict[str, np.ndarray]:
    """KM200 units for every input (by image id, in order), ``batch_size`` inputs per ``generate`` call."""
    ids = list(inputs)
    generated: dict[str, np.ndarray] = {}
    for first in range(0, len(ids), batch_size):
        batch = ids[first : first + batch_size]
        produced = model.generate(np.stack([inputs[i] for i in batch]), beams=beams, max_units=max_units)
        generated.update((i, np.asarray(units, dtype=np.int64)) for i, units in zip(batch, produced, strict=True))
    return generated
