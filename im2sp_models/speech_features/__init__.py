"""Speech feature extractors: ``mfcc`` (weight-free) and ``hubert`` (local transformers checkpoints)."""

from im2sp_models.speech_features.registry import (
    EXTRACTORS,
    FeatureExtractor,
    extractor_names,
    load_extractor,
    register_extractor,
)

__all__ = ["EXTRACTORS", "FeatureExtractor", "extractor_names", "load_extractor", "register_extractor"]
