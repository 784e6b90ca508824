"""Names of the store kinds (the ``<kind>`` folder of ``<root>/<dataset>/<kind>/<version>``).

What each kind is (writer, reader, scope, the flow that rebuilds it, how the report measures it) is its spec in
``storage/kind_specs.py``; the names here are what the flows and tasks write under.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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


#: The flow whose rerun rebuilds (or, for ``current.json``/``version.json``, rewrites) each store kind; each
#: kind's spec (``storage/kind_specs.py``) takes its ``rebuilt_by`` from here.
REBUILT_BY: Mapping[str, str] = MappingProxyType(
    {
        MANIFESTS: "build-manifests",
        IMAGE_CODEBOOK: "learn-image-codebook",
        IMAGE_UNITS: "tokenize-images",
        SPEECH_FEATURES: "extract-speech-features",
        SPEECH_CODEBOOK: "learn-speech-codebook",
        SPEECH_UNITS: "unitize-speech",
        TRAINING_SHARDS: "build-training-shards",
        TRAIN_RUNS: "train-im2sp",
        VOCODERS: "train-vocoder",
    }
)
