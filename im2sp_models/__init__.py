"""Models: image tokenizers, speech feature extractors, … — no Prefect, no store access."""
