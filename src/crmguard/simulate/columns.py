"""Vectorised builders for string columns (Arrow ``string`` arrays) from numpy data.

Background traffic is millions of rows a day, so no value is built by a Python loop: fixed-width
strings (ids, tokens, timestamps) are filled as byte matrices and handed to Arrow without copying,
categorical values are ``take``-n from small dictionaries, and composite values are joined
column-wise by Arrow kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Column: TypeAlias = pa.Array | np.ndarray | Sequence[str] | str
"""Anything :func:`as_strings` can turn into a string column."""

ALNUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
DIGITS2 = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], np.uint8)
DIGITS3 = np.array([[48 + i // 100, 48 + i // 10 % 10, 48 + i % 10] for i in range(1000)], np.uint8)


def from_matrix(mat: np.ndarray, lengths: np.ndarray | None = None) -> pa.StringArray:
    """Turn a ``(n, width)`` uint8 matrix of ASCII bytes into ``n`` strings.

    Without ``lengths`` every row is ``width`` bytes; with ``lengths`` row ``i`` keeps its first
    ``lengths[i]`` bytes (so padded templates give variable-width strings). Returns a string array.
    """
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    n, width = mat.shape
    if lengths is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        data = mat.reshape(-1)
    else:
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = mat[np.arange(width)[None, :] < lengths[:, None]]
    if offsets[-1] >= 2**31:
        return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def const(value: str, n: int) -> pa.StringArray:
    """Return ``n`` copies of ``value`` as a string array."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)])


def ints(values: np.ndarray) -> pa.StringArray:
    """Decimal text of an integer array."""
    return pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())


def doubles(values: np.ndarray) -> pa.StringArray:
    """Text of whole numbers written as JSON doubles (``1234.0``), as Salesforce serialises them."""
    return pc.binary_join_element_wise(ints(values), lit(".0"), lit(""))


def take(dictionary: pa.Array | Sequence[str], indices: np.ndarray) -> pa.StringArray:
    """Pick ``dictionary[indices]`` for every row."""
    if not isinstance(dictionary, pa.Array):
        dictionary = pa.array(list(dictionary), pa.string())
    return dictionary.take(pa.array(np.asarray(indices, dtype=np.int64)))


@lru_cache(maxsize=4096)
def lit(text: str) -> pa.StringScalar:
    """A typed Arrow string scalar (cached: building untyped scalars is slow in pyarrow)."""
    return pa.scalar(text, pa.string())


def join(*parts: pa.Array | str) -> pa.StringArray:
    """Concatenate string columns and literal strings row by row."""
    args = [lit(p) if isinstance(p, str) else p for p in parts]
    if not any(isinstance(a, pa.Array | pa.ChunkedArray) for a in args):
        raise ValueError("join needs at least one column")
    return pc.binary_join_element_wise(*args, lit(""))


def tokens(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray = ALNUM) -> pa.StringArray:
    """``n`` random tokens of ``width`` characters drawn from ``alphabet`` (uint8 codes)."""
    if len(alphabet) == 64:
        # Random bytes masked to 6 bits: uniform over a 64-letter alphabet and much faster.
        codes = np.frombuffer(rng.bytes(n * width), np.uint8).reshape(n, width) & 63
    else:
        codes = rng.integers(0, len(alphabet), (n, width), dtype=np.uint8)
    return from_matrix(alphabet[codes])


def uuids(rng: np.random.Generator, n: int, version: int = 4) -> pa.StringArray:
    """``n`` random lowercase UUID strings (8-4-4-4-12) of the given version nibble."""
    mat = np.empty((n, 36), np.uint8)
    mat[:] = HEX[np.frombuffer(rng.bytes(n * 36), np.uint8).reshape(n, 36) & 15]
    mat[:, [8, 13, 18, 23]] = ord("-")
    mat[:, 14] = ord(str(version))
    mat[:, 19] = HEX[8 + rng.integers(0, 4, n)]
    return from_matrix(mat)


def as_strings(value: Column, n: int) -> pa.Array:
    """Coerce a column given as a string array, numpy ints, Python strings or one scalar string
    to a string array of length ``n``."""
    if isinstance(value, str):
        return const(value, n)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if isinstance(value, pa.Array):
        arr = value if pa.types.is_string(value.type) or pa.types.is_large_string(value.type) else value.cast(pa.string())
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        arr = ints(value)
    elif isinstance(value, np.ndarray) and value.dtype.kind == "b":
        arr = take(["false", "true"], value.astype(np.int64))
    else:
        arr = pa.array(list(value), pa.string())
    if len(arr) != n:
        raise ValueError(f"column has {len(arr)} rows, expected {n}")
    return arr


def base62(values: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width base-62 digits (``0-9A-Za-z``) of non-negative integers, as a uint8 matrix."""
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
    values = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((len(values), width), np.uint8)
    for k in range(width - 1, -1, -1):
        out[:, k] = alphabet[values % 62]
        values //= 62
    return out


def check_json_safe(values: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` if any built-in string would need JSON escaping.

    JSON lines are assembled without escaping (for speed), so every dictionary that feeds them is
    checked once here instead.
    """
    for v in values:
        if '"' in v or "\\" in v or any(ord(c) < 32 for c in v):
            raise ValueError(f"{what} value needs JSON escaping: {v!r}")
