"""The harness/worker message format: plain data only, bounded, never pickled."""

from __future__ import annotations

import io
import math
import pickle
import struct

import numpy as np
import pytest

from grader import wire


def roundtrip(message):
    data = wire.pack(message)
    stream = io.BytesIO(data)

    def read(n):
        chunk = stream.read(n)
        if len(chunk) < n:
            raise EOFError
        return chunk

    return wire.unpack(read)


def test_plain_values_roundtrip():
    message = {"a": [1, 2.5, "x", None, True, (3, 4)], "b": {"c": -0.0}}
    assert roundtrip(message) == {"a": [1, 2.5, "x", None, True, [3, 4]], "b": {"c": -0.0}}


def test_non_finite_floats_roundtrip():
    back = roundtrip({"v": [math.inf, -math.inf, math.nan]})["v"]
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2])


def test_arrays_roundtrip_exactly():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = roundtrip({"x": array, "y": [np.int64(7), np.float64(0.5)]})
    assert back["x"].dtype == np.float32 and np.array_equal(back["x"], array)
    assert back["y"] == [7, 0.5] and type(back["y"][0]) is int


@pytest.mark.parametrize(
    "value", [object(), {1: 2}, np.array([object()]), {"__ndarray__": 0}, b"bytes", {1.5}]
)
def test_anything_else_is_refused(value):
    with pytest.raises(wire.WireError):
        wire.pack({"v": value})


def test_pickled_arrays_are_never_loaded():
    # A hostile worker sends an .npy blob holding a pickle: loading must refuse it.
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    header = b'{"v":{"__ndarray__":0}}'
    blob = buffer.getvalue()
    frame = (
        struct.pack(">I", len(header))
        + header
        + struct.pack(">I", 1)
        + struct.pack(">Q", len(blob))
        + blob
    )
    stream = io.BytesIO(frame)
    with pytest.raises(wire.WireError, match="malformed array"):
        wire.unpack(lambda n: stream.read(n))


def test_oversized_frames_are_refused_before_allocation():
    stream = io.BytesIO(struct.pack(">I", wire.MAX_FRAME + 1))
    with pytest.raises(wire.WireError, match="frame larger than"):
        wire.unpack(lambda n: stream.read(n))


def test_malformed_header_is_refused():
    bad = b"{not json"
    stream = io.BytesIO(struct.pack(">I", len(bad)) + bad)
    with pytest.raises(wire.WireError, match="malformed header"):
        wire.unpack(lambda n: stream.read(n))


def test_a_pickle_is_not_a_frame():
    payload = pickle.dumps({"score": 100})
    stream = io.BytesIO(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(wire.WireError):
        wire.unpack(lambda n: stream.read(n))
