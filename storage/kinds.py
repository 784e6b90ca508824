"""Names of the store kinds (the ``<kind>`` folder of ``<root>/<dataset>/<kind>/<version>``).

What each kind is (writer, reader, scope, the flow that rebuilds it, how the report measures it) is its spec in
``storage/kind_specs.py``; the names here are what the flows and tasks write under.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache

MANIFESTS = "manifests"
IMAGE_UNITS = "image-units"
IMAGE_CODEBOOK = "image-codebook"
SPEECH_FEATURES = "speech-features"
#: Pseudo-dataset for stores shared by all datasets (codebooks); dataset names cannot start with "_".
SHARED = "_shared"
SPEECH_CODEBOOK = "speech-codebook"
SPEECH_UNITS = "speech-units"
TRAINING_SHARDS = "training-shards"
TRAIN_RUNS = "train-runs"
#: Unit vocoders learned by train-vocoder (``_shared/vocoders/<version>``), one ``current-<codebook>.json`` each.
VOCODERS = "vocoders"


@cache
def _flows() -> dict[str, str]:
    # Read at first use, not at import: the specs name writers and readers, which import storage.versions,
    # which imports this module for its "rerun <flow>" messages.
    from storage.kind_specs import STORE_KINDS

    return {spec.name: spec.rebuilt_by for spec in STORE_KINDS}


class _RebuiltBy(Mapping[str, str]):
    """A read-only view of each spec's ``rebuilt_by``, by kind name."""

    def __getitem__(self, kind: str) -> str:
        return _flows()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(_flows())

    def __len__(self) -> int:
        return len(_flows())


#: The flow whose rerun rebuilds (or, for ``current.json``/``version.json``, rewrites) each store kind.
REBUILT_BY: Mapping[str, str] = _RebuiltBy()
