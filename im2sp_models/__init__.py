"""im2sp_models."""
