"""One sha256 helper: model checksums computed through ``storage.hashing`` keep their former bytes.

The two expected values below are written out as vit-vqgan and unit-hifigan computed them before they used
``storage.hashing`` (a plain sha256 of the checkpoint; the config's bytes then the checkpoint's), so a
fingerprint, and the store versions named by it, cannot change silently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage.hashing import sha256_file, sha256_files


@pytest.mark.parametrize("size", [0, 7, (1 << 20) + 3])
def test_checksums_of_model_files_are_unchanged(tmp_path: Path, size: int) -> None:
    weights, config = tmp_path / "model.pt", tmp_path / "config.json"
    weights.write_bytes(bytes(i % 251 for i in range(size)))
    config.write_bytes(b'{"upsample_rates": [5, 4]}')
    assert sha256_file(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()  # vit-vqgan
    expected = hashlib.sha256(config.read_bytes() + weights.read_bytes()).hexdigest()  # unit-hifigan
    assert sha256_files([config, weights]) == expected
