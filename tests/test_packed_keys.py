"""Packed key lists (storage/packed_keys.py): packed when shorter, plain otherwise, exactly the keys either way."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import CorruptShardError
from storage.packed_keys import KEYS_PACKING, declared_size, pack_keys, unpack_keys


@given(st.lists(st.text(min_size=0, max_size=40), max_size=60, unique=True))
def test_pack_then_unpack_gives_the_keys_back(keys: list[str]) -> None:
    assert unpack_keys(json.loads(json.dumps(pack_keys(keys))), "m") == tuple(keys)


def test_short_lists_stay_plain_and_long_ones_shrink() -> None:
    assert pack_keys(["0", "1", "2"]) == ["0", "1", "2"]
    keys = [f"utterance-{i:07d}" for i in range(1024)]
    packed = pack_keys(keys)
    assert isinstance(packed, dict) and packed["packing"] == KEYS_PACKING and packed["count"] == 1024
    assert len(json.dumps(packed)) * 10 < len(json.dumps(keys))


def test_keys_with_newlines_stay_plain() -> None:
    keys = [f"a\nb{i}" for i in range(100)]
    assert pack_keys(keys) == keys


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"packing": "lz4", "count": 1, "data": ""}, "neither a list"),
        (["a", 3], "neither a list"),
        ({"packing": KEYS_PACKING, "count": 1, "data": "not base64!"}, "do not decode"),
        ({"packing": KEYS_PACKING, "count": 1}, "do not decode"),
        ({"packing": KEYS_PACKING, "count": 1.7, "data": ""}, "not a positive integer"),
        ({"packing": KEYS_PACKING, "count": True, "data": ""}, "not a positive integer"),
        ({"packing": KEYS_PACKING, "count": 0, "data": ""}, "not a positive integer"),
        ({"packing": KEYS_PACKING, "count": float("inf"), "data": ""}, "not a positive integer"),
    ],
)
def test_malformed_key_lists_are_corrupt(value: object, message: str) -> None:
    with pytest.raises(CorruptShardError, match=message):
        unpack_keys(value, "m")


def test_a_count_that_does_not_match_is_corrupt() -> None:
    packed = pack_keys([f"utterance-{i:07d}" for i in range(100)])
    assert isinstance(packed, dict)
    with pytest.raises(CorruptShardError, match="hold 100 keys, not the 99"):
        unpack_keys({**packed, "count": 99}, "m")


def test_the_declared_size_is_read_from_the_frame_header() -> None:
    from numcodecs import Zstd

    for size in (1, 200, 300, 70_000, 5_000_000):
        assert declared_size(Zstd(level=19).encode(b"k" * size)) == size


def test_a_frame_declaring_more_than_its_keys_can_hold_is_refused_unread() -> None:
    import base64
    import struct

    # A hand-made frame header declaring 1 TiB of content (single segment, 8-byte size): never allocated.
    bomb = b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", 1 << 40) + b"\x01\x00\x00"
    value = {"packing": KEYS_PACKING, "count": 3, "data": base64.b64encode(bomb).decode()}
    with pytest.raises(CorruptShardError, match="declares 1099511627776 bytes for 3 keys"):
        unpack_keys(value, "m")
