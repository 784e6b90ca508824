"""Commit-marker key lists: packed when shorter, plain otherwise, and exactly the keys either way."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import CorruptShardError
from storage.marker import KEYS_PACKING, pack_keys, unpack_keys


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
