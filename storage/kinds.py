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
