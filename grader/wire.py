"""The message format between the harness and its worker processes.

A frame is a JSON header plus binary blobs, each blob a NumPy `.npy` array:

    u32 header length | header (UTF-8 JSON) | u32 blob count | (u64 length | .npy bytes)*

Values are plain data only: None, bool, int, float, str, lists (tuples become
lists), dicts with string keys, nested at most `MAX_DEPTH` deep, and NumPy arrays
of numbers or booleans. Nothing here ever unpickles: a worker runs student code,
so whatever it sends is hostile input. Hence:
- reads are bounded (`MAX_FRAME` in all, `MAX_HEADER` for the JSON, which becomes
  Python objects of up to 25 times its size), so a worker cannot make the harness
  allocate without limit;
- an array's `.npy` header is checked before any array exists: a plain numeric
  dtype, and a shape whose size is exactly the bytes that follow;
- every failure to decode is a `WireError` whose message is written here and
  quotes nothing from the frame (no text, no sizes it claims): a worker has seen
  the hidden tests' probes and inputs, and a message reaches students.

Why above 300 lines: both ends of the protocol (encode and the bounded decode)
are kept side by side, so a change to one is seen against the other.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib import format as np_format

#: Largest frame accepted, in bytes. The largest answer a probe returns is a 4096 x
#: 4096 float32 array (64 MiB: hw2's timed matrix product), so this leaves 4x margin.
MAX_FRAME = 256 * 1024 * 1024
#: Largest JSON header accepted, in bytes (16 MiB of JSON is up to 400 MiB of objects).
MAX_HEADER = 16 * 1024 * 1024
#: Deepest nesting of lists and dicts (the frame's own dict is level 1).
MAX_DEPTH = 64
_ARRAY_KEY = "__ndarray__"
_FLOAT_KEY = "__float__"
#: Array dtype kinds that travel: booleans, signed and unsigned integers, floats, complex.
_NUMERIC_KINDS = frozenset("biufc")
#: The shortest reference to an array in a header, `{"__ndarray__":0}`: a header of n
#: bytes names at most n // this many arrays.
_SHORTEST_REFERENCE = len(f'{{"{_ARRAY_KEY}":0}}')
#: Bytes of a blob's start given to NumPy's header parser (magic, length, header):
#: NumPy refuses longer headers anyway, and nothing bigger is ever copied for it.
_NPY_PREFIX = 16 * 1024
#: Most dimensions of an array (NumPy's own limit is 64).
_MAX_DIMS = 32
#: Errors that decoding hostile bytes can raise, all turned into `WireError`.
_DECODE_ERRORS = (
    ValueError,  # UnicodeDecodeError, json.JSONDecodeError and NumPy's header errors too
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    SyntaxError,
    struct.error,
    OverflowError,
    MemoryError,
    RecursionError,
)


class WireError(Exception):
    """A frame is malformed, too large, or holds something that is not plain data."""


def encode(value: Any) -> tuple[Any, list[bytes]]:
    """Split a value into a JSON-ready structure and its array blobs."""
    blobs: list[bytes] = []

    def walk(v: Any, depth: int) -> Any:
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            # JSON has no NaN/inf; spell them so both sides agree exactly.
            return v if math.isfinite(v) else {_FLOAT_KEY: repr(v)}
        if isinstance(v, np.generic):
            return walk(v.item(), depth)
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in _NUMERIC_KINDS or v.dtype.fields is not None:
                raise WireError(
                    f"only arrays of numbers or booleans can be sent, not of dtype {v.dtype.str}"
                )
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(v), allow_pickle=False)
            blobs.append(buffer.getvalue())
            return {_ARRAY_KEY: len(blobs) - 1}
        if isinstance(v, (list, tuple, dict)) and depth >= MAX_DEPTH:
            # Also stops a list that contains itself.
            raise WireError(f"lists and dicts nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, (list, tuple)):
            return [walk(item, depth + 1) for item in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v) or _ARRAY_KEY in v or _FLOAT_KEY in v:
                raise WireError("dict keys must be strings (and not reserved names)")
            return {k: walk(item, depth + 1) for k, item in v.items()}
        raise WireError(
            f"a {type(v).__name__} is not plain data: return numbers, strings, "
            "lists, dicts or NumPy arrays"
        )

    return walk(value, 0), blobs


def decode(structure: Any, blobs: list[bytes] | list[bytearray]) -> Any:
    """Rebuild a value from `encode`'s output (JSON-parsed), in place.

    Iterative, so that no nesting exhausts the stack; lists and dicts nested deeper
    than `MAX_DEPTH`, array references that are not each blob exactly once, and
    malformed blobs are a `WireError`.
    """
    arrays: list[np.ndarray | None] = [None] * len(blobs)

    def leaf(v: dict[str, Any]) -> Any:
        """An array or a non-finite float for a marker dict; `v` itself otherwise."""
        if len(v) != 1:
            return v
        if _ARRAY_KEY in v:
            index = v[_ARRAY_KEY]
            if type(index) is not int or not 0 <= index < len(blobs):
                raise WireError("array reference out of range")
            if arrays[index] is not None:
                # One blob named many times would be as many arrays of it.
                raise WireError("an array is named more than once")
            arrays[index] = _load_array(blobs[index])
            return arrays[index]
        if _FLOAT_KEY in v:
            text = v[_FLOAT_KEY]
            if not isinstance(text, str) or text not in ("nan", "inf", "-inf"):
                raise WireError("malformed float")
            return float(text)
        return v

    root = [structure]
    pending: list[tuple[list[Any] | dict[str, Any], int]] = [(root, 0)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise WireError(f"lists and dicts nested deeper than {MAX_DEPTH} levels")
        keys = range(len(container)) if isinstance(container, list) else list(container)
        for key in keys:
            item = container[key]  # type: ignore[index]
            if isinstance(item, dict):
                item = container[key] = leaf(item)  # type: ignore[index]
            if isinstance(item, (list, dict)):
                pending.append((item, depth + 1))
    if any(array is None for array in arrays):
        raise WireError("an array is sent but not named")
    return root[0]


def _load_array(blob: bytes | bytearray) -> np.ndarray:
    """The array of one `.npy` blob, checked before any array is made.

    No array is allocated from what the header claims: its shape must account for
    exactly the bytes present. The array is a view of `blob` when that is writable
    (the readers here give a bytearray), so a large answer is not held twice.
    """
    try:
        prefix = io.BytesIO(bytes(memoryview(blob)[:_NPY_PREFIX]))
        version = np_format.read_magic(prefix)
        if version == (1, 0):
            shape, fortran_order, dtype = np_format.read_array_header_1_0(prefix)
        elif version == (2, 0):
            shape, fortran_order, dtype = np_format.read_array_header_2_0(prefix)
        else:
            raise WireError("malformed array (unknown .npy version)")
        offset = prefix.tell()
    except WireError:
        raise
    except Exception:
        # NumPy's messages quote the header: never pass them on.
        raise WireError("malformed array (unreadable .npy header)") from None
    if (
        dtype.kind not in _NUMERIC_KINDS
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dtype.hasobject
        or dtype.itemsize == 0
    ):
        raise WireError("malformed array (not an array of numbers or booleans)")
    if (
        not isinstance(shape, tuple)
        or len(shape) > _MAX_DIMS
        or not all(type(n) is int and n >= 0 for n in shape)
    ):
        raise WireError("malformed array (bad shape)")
    count = math.prod(shape)  # a Python int: no overflow, and nothing allocated
    if count * dtype.itemsize != len(blob) - offset:
        raise WireError("malformed array (its shape does not match its size)")
    try:
        flat = np.frombuffer(memoryview(blob)[offset:], dtype=dtype, count=count)
        if not (flat.flags.writeable and flat.flags.aligned and dtype.isnative):
            flat = flat.astype(dtype.newbyteorder("="))  # a copy: writable, aligned, native
        return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)
    except Exception:
        raise WireError("malformed array (bad shape)") from None


def pack(message: dict[str, Any]) -> bytes:
    """One frame holding `message` (whose values may contain arrays)."""
    structure, blobs = encode(message)
    header = json.dumps(structure, allow_nan=False, separators=(",", ":")).encode()
    parts = [struct.pack(">I", len(header)), header, struct.pack(">I", len(blobs))]
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    return b"".join(parts)


def unpack(read: Any) -> dict[str, Any]:
    """Read one frame with `read(n) -> bytes-like` (exactly n bytes or EOFError).

    Whatever `read` raises passes through (EOFError, a time limit); anything wrong
    with the bytes is a `WireError` whose message quotes none of them.
    """
    try:
        return _unpack(read)
    except WireError:
        raise
    except _DECODE_ERRORS:
        raise WireError("unreadable frame") from None


def _unpack(read: Any) -> dict[str, Any]:
    (size,) = struct.unpack(">I", _read_exactly(read, 4))
    total = 4 + size + 4
    _check_size(total)
    if size > MAX_HEADER:
        raise WireError(f"header larger than {MAX_HEADER // 2**20} MiB")
    header = _read_exactly(read, size)
    try:
        structure = json.loads(header.decode("utf-8"), parse_constant=_refuse_constant)
    except Exception:
        # Also RecursionError (JSON nested past the stack) and MemoryError; the
        # decoder's message would quote the header.
        raise WireError("malformed header (not UTF-8 JSON)") from None
    del header
    (count,) = struct.unpack(">I", _read_exactly(read, 4))
    if count > size // _SHORTEST_REFERENCE:
        raise WireError("more arrays than the header can name")
    total += 8 * count
    _check_size(total)
    blobs = []
    for _ in range(count):
        (length,) = struct.unpack(">Q", _read_exactly(read, 8))
        total += length
        _check_size(total)
        blobs.append(_read_exactly(read, length))
    message = decode(structure, blobs)
    if not isinstance(message, dict):
        raise WireError("a frame must hold a JSON object")
    return message


def _read_exactly(read: Any, n: int) -> bytes | bytearray:
    data = read(n)
    if not isinstance(data, (bytes, bytearray)) or len(data) != n:
        raise WireError("truncated frame")
    return data


def _refuse_constant(name: str) -> Any:
    """`encode` spells NaN and infinities out; JSON's extensions for them are refused."""
    raise ValueError


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

    def read(n: int) -> bytearray:
        return read_into(fd, n, lambda: None)

    return read


def read_into(fd: int, n: int, wait: Callable[[], None]) -> bytearray:
    """Exactly `n` bytes from `fd` into one buffer (EOFError if it ends first).

    `wait()` runs before each read (a deadline check). The bytes land in place:
    joining chunks would hold a large frame twice, and `unpack`'s arrays are
    views of this buffer.
    """
    buffer = bytearray(n)
    with memoryview(buffer) as view:
        done = 0
        while done < n:
            wait()
            got = os.readv(fd, [view[done : done + (1 << 20)]])
            if not got:
                raise EOFError
            done += got
    return buffer
