"""Names of the store kinds (the ``<kind>`` folder of ``<root>/<dataset>/<kind>/<version>``)."""

from __future__ import annotations

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

#: The flow whose rerun rebuilds (or, for ``current.json``/``version.json``, rewrites) each store kind.
REBUILT_BY = {
    MANIFESTS: "build-manifests",
    IMAGE_CODEBOOK: "learn-image-codebook",
    IMAGE_UNITS: "tokenize-images",
    SPEECH_FEATURES: "extract-speech-features",
    SPEECH_CODEBOOK: "learn-speech-codebook",
    SPEECH_UNITS: "unitize-speech",
    TRAINING_SHARDS: "build-training-shards",
    TRAIN_RUNS: "train-im2sp",
}
