"""The message format between the harness and its worker processes.

A frame is a JSON header plus binary blobs, each blob a NumPy `.npy` array:

    u32 header length | header (UTF-8 JSON) | u32 blob count | (u64 length | .npy bytes)*

Values are plain data only: None, bool, int, float, str, lists (tuples become
lists), dicts with string keys, and NumPy arrays of non-object dtype. Arrays are
read back with `allow_pickle=False`, and nothing here ever unpickles: a worker
runs student code, so whatever it sends is hostile input. Reads are bounded
(`MAX_FRAME`), so a worker cannot make the harness allocate without limit.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from typing import Any

import numpy as np

#: Largest frame the harness accepts from a worker, in bytes.
MAX_FRAME = 512 * 1024 * 1024
_ARRAY_KEY = "__ndarray__"
_FLOAT_KEY = "__float__"


class WireError(Exception):
    """A frame is malformed, too large, or holds something that is not plain data."""


def encode(value: Any) -> tuple[Any, list[bytes]]:
    """Split a value into a JSON-ready structure and its array blobs."""
    blobs: list[bytes] = []

    def walk(v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            # JSON has no NaN/inf; spell them so both sides agree exactly.
            return v if math.isfinite(v) else {_FLOAT_KEY: repr(v)}
        if isinstance(v, np.generic):
            return walk(v.item())
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise WireError("arrays of Python objects cannot be sent; use a numeric dtype")
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(v), allow_pickle=False)
            blobs.append(buffer.getvalue())
            return {_ARRAY_KEY: len(blobs) - 1}
        if isinstance(v, (list, tuple)):
            return [walk(item) for item in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v) or _ARRAY_KEY in v or _FLOAT_KEY in v:
                raise WireError("dict keys must be strings (and not reserved names)")
            return {k: walk(item) for k, item in v.items()}
        raise WireError(
            f"a {type(v).__name__} is not plain data: return numbers, strings, "
            "lists, dicts or NumPy arrays"
        )

    return walk(value), blobs


def decode(structure: Any, blobs: list[bytes]) -> Any:
    """Rebuild a value from `encode`'s output."""

    def walk(v: Any) -> Any:
        if isinstance(v, list):
            return [walk(item) for item in v]
        if isinstance(v, dict):
            if set(v) == {_ARRAY_KEY}:
                index = v[_ARRAY_KEY]
                if not isinstance(index, int) or not 0 <= index < len(blobs):
                    raise WireError("array reference out of range")
                try:
                    return np.load(io.BytesIO(blobs[index]), allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    raise WireError(f"malformed array: {exc}") from None
            if set(v) == {_FLOAT_KEY}:
                text = v[_FLOAT_KEY]
                if text not in ("nan", "inf", "-inf"):
                    raise WireError(f"malformed float {text!r}")
                return float(text)
            return {k: walk(item) for k, item in v.items()}
        return v

    return walk(structure)


def pack(message: dict[str, Any]) -> bytes:
    """One frame holding `message` (whose values may contain arrays)."""
    structure, blobs = encode(message)
    header = json.dumps(structure, allow_nan=False, separators=(",", ":")).encode()
    parts = [struct.pack(">I", len(header)), header, struct.pack(">I", len(blobs))]
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    return b"".join(parts)


def unpack(read: Any) -> dict[str, Any]:
    """Read one frame with `read(n) -> bytes` (exactly n bytes or EOFError)."""
    (size,) = struct.unpack(">I", read(4))
    _check_size(size)
    try:
        structure = json.loads(read(size))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"malformed header: {exc}") from None
    (count,) = struct.unpack(">I", read(4))
    _check_size(count * 8)
    blobs = []
    total = size
    for _ in range(count):
        (length,) = struct.unpack(">Q", read(8))
        total += length
        _check_size(total)
        blobs.append(read(length))
    message = decode(structure, blobs)
    if not isinstance(message, dict):
        raise WireError("a frame must hold a JSON object")
    return message


def _check_size(size: int) -> None:
    if size > MAX_FRAME:
        raise WireError(f"frame larger than {MAX_FRAME // 2**20} MiB")


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write a whole frame to a file descriptor."""
    view = memoryview(pack(message))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def reader(fd: int) -> Any:
    """A `read(n)` over a blocking file descriptor for `unpack`."""

    def read(n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    return read
