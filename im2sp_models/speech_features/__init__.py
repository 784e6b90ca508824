"""Speech feature extractors: ``mfcc`` (weight-free) and ``hubert`` (local transformers checkpoints)."""

from im2sp_models.speech_features.registry import FeatureExtractor, extractor_names, load_extractor

__all__ = ["FeatureExtractor", "extractor_names", "load_extractor"]
