"""``im2sp-ans``: a Zarr v3 array→bytes codec that entropy-codes integer units with rANS.

Unit streams are skewed (a few codes are frequent), and byte-oriented compressors cannot model 13-bit
symbols: on a Zipf-like stream with an order-0 entropy of 6.05 bits, Blosc + zstd needs 10.5 bits per token.
This codec stores each chunk as its symbol histogram plus an ANS bitstream (``constriction``'s categorical
model), so it spends close to the entropy itself (benchmarks/bench_unit_bits.py).

Trade-off: a reader needs this package (the codec is registered under the ``zarr.codecs`` entry point
``im2sp-ans``); plain Zarr readers cannot open such arrays. It is therefore opt-in
(``image_tokenizer.codec: ans``); the default stays a standard Blosc codec every Zarr v3 reader has.

Chunk layout (little-endian): ``b"IANS"``, u8 version (1), u64 token count, u32 distinct symbols,
u32 header length, header (zstd of: u32 symbol deltas, then u32 counts), then the ANS words (u32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numcodecs import Zstd
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec

NAME = "im2sp-ans"
_MAGIC = b"IANS"
_HEAD = struct.Struct("<4sBQII")
_HEADER_CODEC = Zstd(level=19)


def _model(counts: np.ndarray) -> Any:
    import constriction

    # The same counts give bit-identical float32 probabilities on every machine (IEEE division).
    probabilities = (counts.astype(np.float64) / float(counts.sum())).astype(np.float32)
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def encode_tokens(tokens: np.ndarray) -> bytes:
    """Entropy-code a flat array of non-negative integers (< 2³²)."""
    import constriction

    flat = tokens.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= 2**32):
        raise ValueError("im2sp-ans codes integers in [0, 2**32)")
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    deltas = np.diff(values, prepend=0).astype("<u4")
    header = _HEADER_CODEC.encode(deltas.tobytes() + counts.astype("<u4").tobytes()) if values.size else b""
    words = b""
    if values.size > 1:
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(inverse.astype(np.int32), _model(counts))
        words = np.asarray(coder.get_compressed(), dtype="<u4").tobytes()
    return _HEAD.pack(_MAGIC, 1, flat.size, values.size, len(header)) + header + words


def decode_tokens(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_tokens`: the flat int64 tokens."""
    import constriction

    magic, version, size, distinct, header_length = _HEAD.unpack_from(data)
    if magic != _MAGIC or version != 1:
        raise ValueError("not an im2sp-ans chunk (bad magic or version)")
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    start = _HEAD.size
    table = np.frombuffer(_HEADER_CODEC.decode(data[start : start + header_length]), dtype="<u4")
    values = np.cumsum(table[:distinct].astype(np.int64))
    if distinct == 1:
        return np.full(size, values[0], dtype=np.int64)
    words = np.frombuffer(data[start + header_length :], dtype="<u4").copy()
    decoder = constriction.stream.stack.AnsCoder(words)
    return values[np.asarray(decoder.decode(_model(table[distinct:]), size), dtype=np.int64)]


@dataclass(frozen=True)
class AnsCodec(ArrayBytesCodec):
    """Zarr v3 codec ``im2sp-ans`` (no configuration)."""

    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from array metadata."""
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """Describe for array metadata."""
        return {"name": NAME}

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Variable size: not known in advance."""
        raise NotImplementedError

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        tokens = decode_tokens(chunk_bytes.to_bytes())
        dtype = chunk_spec.dtype.to_native_dtype()
        array: Any = tokens.astype(dtype).reshape(tuple(chunk_spec.shape))
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(array)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        data = encode_tokens(np.asarray(chunk_array.as_ndarray_like()))
        return chunk_spec.prototype.buffer.from_bytes(data)


def register() -> None:
    """Register the codec with zarr (the entry point does this lazily; call it when running from a checkout)."""
    from zarr.registry import register_codec

    register_codec(NAME, AnsCodec)
