"""A bad-input corpus: tiny COCO and Flickr8k datasets (real layouts) whose items are each damaged in one named way.

Layouts: COCO 2014 + Karpathy + SpokenCOCO, and Flickr8k + Flickr Audio. Each :class:`Kind` damages its item(s)
in one way, or writes a valid but unusual one; a few good items per dataset let the codebooks be learned.
``build_corpus(root, KINDS)`` writes every kind into shared datasets (``coco``, ``flickr``); a kind whose damage
spoils a whole annotation file gets a dataset of its own, so it cannot hide the other kinds. Each build returns
the :class:`Target` rows (dataset, manifest table, id) whose outcome the test checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.bad_input_builders import (
    as_directory,
    caption_duplicate_id,
    coco_caption,
    coco_image,
    coco_wav,
    flickr_caption_line,
    flickr_image_in_two_splits,
    flickr_invalid_utf8,
    flickr_unlisted_image_caption,
    flickr_wav2capt_line,
    flickr_wav_dotdot,
    good_jpeg,
    good_wav,
    image_absolute,
    image_at,
    image_backslash,
    image_changed_after_manifest,
    image_dotdot,
    image_duplicate_id,
    isolated_image,
    karpathy_unknown_split,
    raw,
    spoken_without_wav_key,
    symlink_to,
    utterance_duplicate_id,
    utterance_empty_text,
    utterance_unlisted_image,
    wav_absolute,
    wav_at,
    wav_deleted_after_manifest,
    wav_dotdot,
)
from tests.bad_input_layouts import (
    RATE,
    Corpus,
    Kind,
    Table,
    Target,
    animated_gif,
    bad_crc_png,
    build_corpus,
    encoded,
    exif_rotated,
    photo,
    png_declaring,
    tone,
    wav_bytes,
    zero_rate_wav,
)

# ---------------------------------------------------------------------------------------------- the kinds

_UNSAFE = ("unsafe path", "nul")

__all__ = ["KINDS", "Corpus", "Kind", "Table", "Target", "build_corpus"]

KINDS: list[Kind] = [
    # images: damaged content
    Kind("image-truncated-jpeg", "image", "rejected", coco_image(lambda: good_jpeg()[:150]), ("truncated",)),
    Kind("image-zero-byte", "image", "rejected", coco_image(lambda: b""), ("empty", "0 bytes", "0-byte")),
    Kind("image-text-named-jpg", "image", "rejected", coco_image(lambda: b"not a JPEG\n"), ("cannot identify",)),
    Kind("image-png-bad-crc", "image", "rejected", coco_image(bad_crc_png), ("undecodable", "crc")),
    Kind("image-bomb-header", "image", "rejected", coco_image(lambda: png_declaring(30_000, 30_000)), ("exceeds",)),
    Kind(
        "image-over-pixel-limit",
        "image",
        "rejected",
        coco_image(lambda: encoded(Image.new("1", (8100, 8100), 1), "PNG"), split="val"),
        ("too large",),
    ),
    Kind("image-missing-file", "image", "rejected", coco_image(lambda: None), ("missing",)),
    Kind("image-changed-after-manifest", "image", "rejected", image_changed_after_manifest, ("changed",)),
    # images: valid but unusual, stored
    Kind("image-png-named-jpg", "image", "stored", coco_image(lambda: encoded(photo(1), "PNG"))),
    Kind("image-one-pixel", "image", "stored", coco_image(lambda: encoded(Image.new("RGB", (1, 1), "blue"), "PNG"))),
    Kind("image-cmyk-jpeg", "image", "stored", coco_image(lambda: encoded(photo(2).convert("CMYK"), "JPEG"))),
    Kind(
        "image-gray16-png",
        "image",
        "stored",
        coco_image(lambda: encoded(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG")),
    ),
    Kind("image-animated-gif", "image", "stored", coco_image(animated_gif)),
    Kind("image-rgba-png", "image", "stored", coco_image(lambda: encoded(photo(5).convert("RGBA"), "PNG"))),
    Kind("image-webp-named-jpg", "image", "stored", coco_image(lambda: encoded(photo(6), "WEBP"))),
    Kind("image-jpeg-trailing-bytes", "image", "stored", coco_image(lambda: good_jpeg() + b"\0garbage" * 8)),
    Kind("image-exif-rotated", "image", "stored", coco_image(exif_rotated)),
    # images: paths
    Kind("image-path-dotdot", "image", "rejected", image_dotdot, ("leaves the folder it is listed in",)),
    Kind("image-path-backslash-dotdot", "image", "rejected", image_backslash, ("leaves the folder it is listed in",)),
    Kind("image-path-absolute", "image", "rejected", image_absolute, ("absolute",)),
    Kind(
        "image-symlink-outside-root",
        "image",
        "rejected",
        image_at(lambda c: "outside-link.jpg", symlink_to(lambda c: c.outside_file("linked.jpg", good_jpeg()))),
        ("outside the folder it is listed in",),
    ),
    Kind(
        "image-symlink-inside-root",
        "image",
        "stored",
        image_at(
            lambda c: "inside-link.jpg",
            symlink_to(lambda c: c.coco().root / "COCO_2014" / c.coco().relpath(c.coco().host)),
        ),
    ),
    Kind(
        "image-dangling-symlink",
        "image",
        "rejected",
        image_at(lambda c: "dangling.jpg", symlink_to(lambda c: Path("no-such-file.jpg"))),
        ("missing",),
    ),
    Kind(
        "image-directory-not-file",
        "image",
        "rejected",
        image_at(lambda c: "a-folder.jpg", as_directory),
        ("directory", "not a file", "not a regular file"),
    ),
    Kind("image-nul-in-path", "image", "rejected", isolated_image("coco-nul-path", "bad\0name.jpg"), _UNSAFE),
    Kind(
        "image-name-too-long",
        "image",
        "rejected",
        isolated_image("coco-long-name", "x" * 300 + ".jpg"),
        ("too long",),
    ),
    # audio: damaged content
    Kind("wav-truncated-header", "audio", "rejected", coco_wav(lambda: good_wav()[:20]), ("unreadable",)),
    Kind("wav-zero-byte", "audio", "rejected", coco_wav(lambda: b""), ("empty", "0-byte", "0 bytes")),
    Kind(
        "wav-zero-frames",
        "audio",
        "rejected",
        coco_wav(lambda: wav_bytes(np.zeros(0, np.float32))),
        ("empty", "0 samples"),
    ),
    Kind("wav-text-named-wav", "audio", "rejected", coco_wav(lambda: b"RIFF? no, text\n"), ("unreadable",)),
    Kind("wav-zero-sample-rate", "audio", "rejected", coco_wav(zero_rate_wav), ("unreadable", "sample rate")),
    Kind(
        "wav-nan-samples",
        "audio",
        "rejected",
        coco_wav(lambda: wav_bytes(np.full(8000, np.nan, np.float32), subtype="FLOAT")),
        ("non-finite",),
    ),
    Kind(
        "wav-inf-samples",
        "audio",
        "rejected",
        coco_wav(lambda: wav_bytes(np.where(tone() > 0, np.inf, 0.1).astype(np.float32), subtype="FLOAT")),
        ("non-finite",),
    ),
    Kind(
        "wav-absurd-amplitude",
        "audio",
        "rejected",
        coco_wav(lambda: wav_bytes(tone() * np.float32(1e20), subtype="FLOAT")),
        ("non-finite", "nan", "inf", "amplitude", "out of range"),
    ),
    Kind("wav-100-samples", "audio", "rejected", coco_wav(lambda: wav_bytes(tone()[:100])), ("too short",)),
    Kind("wav-missing-file", "audio", "rejected", coco_wav(lambda: None), ("missing",)),
    Kind("wav-deleted-after-manifest", "audio", "rejected", wav_deleted_after_manifest, ("missing",)),
    # audio: valid but unusual, stored
    Kind(
        "wav-stereo-44k", "audio", "stored", coco_wav(lambda: wav_bytes(np.stack([tone(rate=44_100)] * 2, 1), 44_100))
    ),
    Kind("wav-8k-mono", "audio", "stored", coco_wav(lambda: wav_bytes(tone(1.0, 8_000), 8_000))),
    Kind("wav-24-bit", "audio", "stored", coco_wav(lambda: wav_bytes(tone(), subtype="PCM_24"))),
    Kind("wav-unsigned-8-bit", "audio", "stored", coco_wav(lambda: wav_bytes(tone(), subtype="PCM_U8"))),
    Kind("wav-float32", "audio", "stored", coco_wav(lambda: wav_bytes(tone(), subtype="FLOAT"))),
    Kind("wav-six-channels", "audio", "stored", coco_wav(lambda: wav_bytes(np.stack([tone()] * 6, 1)))),
    Kind("wav-silence", "audio", "stored", coco_wav(lambda: wav_bytes(np.zeros(RATE, np.float32)))),
    Kind("wav-flac-named-wav", "audio", "stored", coco_wav(lambda: wav_bytes(tone(), fmt="FLAC"))),
    Kind("wav-ogg-named-wav", "audio", "stored", coco_wav(lambda: wav_bytes(tone(), fmt="OGG", subtype="VORBIS"))),
    # audio: paths
    Kind("wav-path-dotdot", "audio", "rejected", wav_dotdot, ("leaves the folder it is listed in",)),
    Kind("wav-path-absolute", "audio", "rejected", wav_absolute, ("absolute",)),
    Kind(
        "wav-symlink-outside-root",
        "audio",
        "rejected",
        wav_at(lambda c: "wavs/train/0/link.wav", symlink_to(lambda c: c.outside_file("linked.wav", good_wav()))),
        ("outside the folder it is listed in",),
    ),
    Kind(
        "wav-directory-not-file",
        "audio",
        "rejected",
        wav_at(lambda c: "wavs/train/0/a-folder.wav", as_directory),
        ("directory", "not a file", "not a regular file"),
    ),
    Kind("flickr-wav-path-dotdot", "audio", "rejected", flickr_wav_dotdot, ("leaves the folder it is listed in",)),
    # annotations: captions (Karpathy sentences)
    Kind("caption-empty", "annotation", "rejected", coco_caption(raw("")), ("empty",)),
    Kind("caption-whitespace-only", "annotation", "rejected", coco_caption(raw(" \t\u3000\n ")), ("empty",)),
    Kind("caption-null", "annotation", "rejected", coco_caption(raw(None)), ("not a string", "expected a string")),
    Kind("caption-number", "annotation", "rejected", coco_caption(raw(42)), ("not a string", "expected a string")),
    Kind(
        "caption-without-raw",
        "annotation",
        "rejected",
        coco_caption(lambda sentid: {"tokens": ["a", "dog"], "sentid": sentid}),
        ("raw", "empty"),
    ),
    Kind(
        "caption-control-characters",
        "annotation",
        "rejected",
        coco_caption(raw("A dog\x00 barks\x07 \x1b[2J loudly.")),
        ("control",),
    ),
    Kind("caption-megabyte", "annotation", "rejected", coco_caption(raw("very " * 200_000)), ("too long",)),
    Kind("caption-duplicate-id", "annotation", "rejected", caption_duplicate_id, ("duplicate",)),
    Kind("caption-unicode", "annotation", "stored", coco_caption(raw("Un cafe\u0301 à São Paulo — 東京の犬 🐕"))),
    # annotations: images and utterances
    Kind("karpathy-duplicate-image-id", "annotation", "rejected", image_duplicate_id, ("duplicate",)),
    Kind("karpathy-unknown-split", "annotation", "rejected", karpathy_unknown_split, ("split",)),
    Kind("spokencoco-duplicate-uttid", "annotation", "rejected", utterance_duplicate_id, ("duplicate",)),
    Kind(
        "spokencoco-image-not-in-karpathy",
        "annotation",
        "rejected",
        utterance_unlisted_image,
        ("without an image", "not listed"),
    ),
    Kind("spokencoco-empty-text", "annotation", "rejected", utterance_empty_text, ("empty",)),
    Kind("spokencoco-no-wav-key", "annotation", "rejected", spoken_without_wav_key, ("wav",)),
    # annotations: Flickr8k token file, split lists, wav2capt
    Kind(
        "flickr-token-line-without-tab",
        "annotation",
        "rejected",
        flickr_caption_line(lambda host: f"{host}#1 A caption after a space, not a tab.".encode()),
        ("malformed",),
    ),
    Kind(
        "flickr-token-key-without-number",
        "annotation",
        "rejected",
        flickr_caption_line(lambda host: f"{host}\tA caption without #n.".encode()),
        ("malformed",),
    ),
    Kind(
        "flickr-caption-of-unlisted-image",
        "annotation",
        "rejected",
        flickr_unlisted_image_caption,
        ("without an image",),
    ),
    Kind("flickr-token-invalid-utf8", "annotation", "rejected", flickr_invalid_utf8, ("utf-8",)),
    Kind("flickr-image-in-two-splits", "annotation", "rejected", flickr_image_in_two_splits, ("split",)),
    Kind(
        "flickr-wav2capt-too-few-fields",
        "annotation",
        "rejected",
        flickr_wav2capt_line(lambda host: f"few_fields.wav {host}"),
        ("malformed",),
    ),
    Kind(
        "flickr-wav2capt-unknown-caption",
        "annotation",
        "rejected",
        flickr_wav2capt_line(lambda host: f"unknown_caption.wav {host} #7"),
        ("without a caption",),
    ),
]
