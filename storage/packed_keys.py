"""Packed key lists: a commit marker's keys as one zstd frame in base64, when that is shorter than the list.

Keys are a marker's largest field: a 1,024-utterance shard of SpokenCOCO ids (~65 characters each) is ~70 KB
as a JSON list; packed, shared prefixes and digits cost a few bytes per key. Short lists stay plain, readable.
The frame must declare its content size, which is checked against a bound before anything is allocated, so a
damaged marker cannot make a reader allocate gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from storage.errors import CorruptShardError

#: How a packed key list is encoded: UTF-8 keys joined by ``\n``, zstd-compressed, then base64.
KEYS_PACKING = "zstd+base64"
#: Most bytes a packed list may hold per key (keys are ids and file names, far shorter).
MAX_BYTES_PER_KEY = 65_536
_ZSTD_LEVEL = 19
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def pack_keys(keys: Sequence[str]) -> list[str] | dict[str, Any]:
    """Return the on-disk form of a key list: the plain list, or a packed object when that is shorter."""
    from numcodecs import Zstd

    plain = list(keys)
    if not plain or any("\n" in key for key in plain):  # empty, or not joinable unambiguously
        return plain
    data = Zstd(level=_ZSTD_LEVEL).encode("\n".join(plain).encode("utf-8"))
    packed = {"packing": KEYS_PACKING, "count": len(plain), "data": base64.b64encode(data).decode("ascii")}
    return packed if len(json.dumps(packed)) < len(json.dumps(plain, ensure_ascii=False)) else plain


def declared_size(frame: bytes) -> int | None:
    """The content size a zstd frame header declares (RFC 8878 §3.1.1.1), or None when it declares none."""
    if len(frame) < 5 or frame[:4] != _ZSTD_MAGIC:
        raise ValueError("not a zstd frame")
    descriptor = frame[4]
    single_segment = bool(descriptor & 0x20)
    field = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03]
    if field == 0:
        return None
    if len(frame) < start + field:
        raise ValueError("truncated zstd frame header")
    size = int.from_bytes(frame[start : start + field], "little")
    return size + 256 if field == 2 else size


def _decoded(value: dict[str, Any], count: int) -> str:
    from numcodecs import Zstd

    frame = base64.b64decode(value["data"], validate=True)
    size = declared_size(frame)
    if size is None or size > MAX_BYTES_PER_KEY * count:
        raise ValueError(f"the frame declares {size} bytes for {count} keys")
    return bytes(Zstd().decode(frame)).decode("utf-8")


def unpack_keys(value: object, where: str) -> tuple[str, ...]:
    """Inverse of :func:`pack_keys`.

    Raises:
        CorruptShardError: If the value is neither a list of strings nor a packed object that decodes to
            exactly ``count`` (a non-negative integer) keys.
    """
    if isinstance(value, list) and all(isinstance(key, str) for key in value):
        return tuple(value)
    if not isinstance(value, dict) or value.get("packing") != KEYS_PACKING:
        raise CorruptShardError(f"{where}: keys are neither a list of strings nor {KEYS_PACKING}-packed")
    count = value.get("count")
    if type(count) is not int or count < 1:
        raise CorruptShardError(f"{where}: packed keys declare {count!r} keys, not a positive integer")
    try:
        keys = tuple(_decoded(value, count).split("\n"))
    except (KeyError, TypeError, ValueError, RuntimeError, binascii.Error, MemoryError) as error:
        raise CorruptShardError(f"{where}: packed keys do not decode ({error})") from error
    if len(keys) != count:
        raise CorruptShardError(f"{where}: packed keys hold {len(keys)} keys, not the {count} they declare")
    return keys
