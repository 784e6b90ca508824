"""Image tokenizers: ``patch-vq`` (weight-free, learned by k-means) and ``vit-vqgan`` (checkpoints)."""

from im2sp_models.image_tokenizers.registry import (
    TOKENIZERS,
    ImageTokenizer,
    load_tokenizer,
    register_tokenizer,
    tokenizer_names,
)

__all__ = ["TOKENIZERS", "ImageTokenizer", "load_tokenizer", "register_tokenizer", "tokenizer_names"]
