"""The harness/worker message format: plain data only, bounded, never pickled."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
import threading
import time
import tracemalloc
from pathlib import Path

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


# -- hostile frames ------------------------------------------------------------------
# A worker runs student code and has seen the hidden tests' probes and inputs: what it
# sends must never reach a message (which students read), nor allocate without bound.

MARKER = "HIDDEN-TEST-SOURCE-7f3a"


def frame(header, blobs=(), count=None):
    """Raw frame bytes: `header` (bytes, or a value dumped as JSON) and raw blobs."""
    if not isinstance(header, bytes):
        header = json.dumps(header).encode()
    parts = [struct.pack(">I", len(header)), header]
    parts.append(struct.pack(">I", len(blobs) if count is None else count))
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    return b"".join(parts)


def npy(descr, shape, data=b"", fortran=False, version=1):
    """An .npy blob with a header written here (any descr and shape, even lies)."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    header = text.encode("latin-1")
    if version == 1:
        start = b"\x93NUMPY\x01\x00"
        pad = -(len(start) + 2 + len(header) + 1) % 64
        return start + struct.pack("<H", len(header) + pad + 1) + header + b" " * pad + b"\n" + data
    start = b"\x93NUMPY\x02\x00"
    pad = -(len(start) + 4 + len(header) + 1) % 64
    return start + struct.pack("<I", len(header) + pad + 1) + header + b" " * pad + b"\n" + data


def unpack_bytes(data):
    stream = io.BytesIO(data)
    return wire.unpack(lambda n: stream.read(n))


def refused(data) -> str:
    with pytest.raises(wire.WireError) as info:
        unpack_bytes(data)
    return str(info.value)


def pickled_blob():
    buffer = io.BytesIO()
    np.save(buffer, np.array([MARKER], dtype=object), allow_pickle=True)
    return buffer.getvalue()


HOSTILE = {
    "float": frame({"v": {"__float__": MARKER}}),
    "json": frame(f'{{"v": "{MARKER}" oops'.encode()),
    "utf8": frame(b'{"v": "' + MARKER.encode() + b'\xff\xfe"}'),
    "constant": frame(f'{{"{MARKER}": NaN}}'.encode()),
    "reference": frame({"v": {"__ndarray__": MARKER}}),
    "descr": frame({"v": {"__ndarray__": 0}}, [npy(MARKER, (1,), b"\0" * 8)]),
    "shape": frame({"v": {"__ndarray__": 0}}, [npy("<f8", (MARKER,), b"\0" * 8)]),
    "structured": frame({"v": {"__ndarray__": 0}}, [npy([(MARKER, "<f8")], (1,), b"\0" * 8)]),
    "strings": frame({"v": {"__ndarray__": 0}}, [npy("<U23", (1,), MARKER.encode("utf-32-le"))]),
    "subarray": frame({"v": {"__ndarray__": 0}}, [npy(("<f8", (2,)), (1,), b"\0" * 16)]),
    "pickle": frame({"v": {"__ndarray__": 0}}, [pickled_blob()]),
    "magic": frame({"v": {"__ndarray__": 0}}, [MARKER.encode() * 4]),
    "negative": frame({"v": {"__ndarray__": 0}}, [npy("<f8", (-1, -8), b"\0" * 64)]),
    "bool index": frame({"v": {"__ndarray__": True}}, [npy("<f8", (1,), b"\0" * 8)] * 2),
    "version": frame(
        {"v": {"__ndarray__": 0}}, [npy("<f8", (1,), b"\0" * 8).replace(b"\x01", b"\x03", 1)]
    ),
    "not an object": frame([MARKER]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_frames_are_refused_without_quoting_them(name):
    message = refused(HOSTILE[name])
    assert MARKER not in message and MARKER[:8] not in message


def test_a_malformed_float_names_nothing_it_was_sent():
    assert refused(frame({"v": {"__float__": MARKER}})) == "malformed float"


def test_a_huge_array_claim_is_refused_at_once_without_allocating():
    # 10**12 float64 = 7.28 TiB claimed by a 200-byte header: refused before any array.
    start = time.monotonic()
    message = refused(frame({"v": {"__ndarray__": 0}}, [npy("<f8", (10**12,), b"\0" * 8)]))
    assert time.monotonic() - start < 1.0
    assert "shape does not match" in message
    # 1 GiB could be allocated: that it is not shows the check comes first.
    tracemalloc.start()
    try:
        refused(frame({"v": {"__ndarray__": 0}}, [npy("<f4", (2**28,), b"\0" * 16)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


@pytest.mark.parametrize("shape", [(3,), (4, 0, 2**62), (2, 2**62)])
def test_an_array_must_be_exactly_the_bytes_present(shape):
    assert "malformed array" in refused(
        frame({"v": {"__ndarray__": 0}}, [npy("<f4", shape, b"\0" * 16)])
    )


def test_fortran_order_big_endian_and_version_2_arrays_load():
    values = np.arange(6, dtype=">f8").reshape(2, 3)
    fortran = npy(">f8", (2, 3), values.tobytes(order="F"), fortran=True, version=2)
    message = unpack_bytes(frame({"v": {"__ndarray__": 0}}, [fortran]))
    assert np.array_equal(message["v"], values) and message["v"].dtype == np.float64
    assert message["v"].dtype.isnative and message["v"].flags.writeable


def test_deep_json_is_refused():
    depth = 200_000
    assert "header" in refused(frame(b'{"v":' + b"[" * depth + b"]" * depth + b"}"))


def test_nesting_is_bounded_on_both_sides():
    def nested(levels):
        value = {}
        for _ in range(levels - 1):
            value = {"v": value}
        return value

    assert roundtrip(nested(wire.MAX_DEPTH)) == nested(wire.MAX_DEPTH)
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.pack(nested(wire.MAX_DEPTH + 1))
    message = refused(frame(nested(wire.MAX_DEPTH + 1)))
    assert message == f"lists and dicts nested deeper than {wire.MAX_DEPTH} levels"
    looped = []
    looped.append(looped)
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.pack({"v": looped})


def test_decode_walks_without_recursion():
    # Deeper than the interpreter's stack: refused, not RecursionError.
    value = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(wire.WireError, match="nested deeper"):
        wire.decode({"v": value}, [])


def test_a_header_over_its_limit_is_refused_before_reading_it():
    asked = []
    stream = io.BytesIO(struct.pack(">I", wire.MAX_HEADER + 1) + b"{}" * 100)

    def read(n):
        asked.append(n)
        return stream.read(n)

    with pytest.raises(wire.WireError, match="header larger than 16 MiB"):
        wire.unpack(read)
    assert asked == [4]


def test_blob_counts_and_sizes_are_bounded():
    assert refused(frame({}, count=2**32 - 1)) == "more arrays than the header can name"
    big = struct.pack(">Q", wire.MAX_FRAME)
    header = json.dumps({"v": {"__ndarray__": 0}}).encode()
    data = struct.pack(">I", len(header)) + header + struct.pack(">I", 1) + big
    assert refused(data) == f"frame larger than {wire.MAX_FRAME // 2**20} MiB"


def test_each_array_is_named_exactly_once():
    blob = wire.encode(np.zeros(4))[1][0]
    twice = frame({"a": {"__ndarray__": 0}, "b": {"__ndarray__": 0}}, [blob])
    assert refused(twice) == "an array is named more than once"
    unnamed = frame({"a": {"__ndarray__": 0}, "padding": "x" * 40}, [blob, blob])
    assert refused(unnamed) == ("an array is sent but not named")


def test_a_short_read_is_a_truncated_frame():
    whole = frame({"v": {"__ndarray__": 0}}, [wire.encode(np.zeros(4))[1][0]])
    for cut in (2, 10, len(whole) - 3):
        assert refused(whole[:cut]) == "truncated frame"


def test_only_arrays_of_numbers_are_sent():
    for array in (np.array(["text"]), np.zeros(2, dtype=[("a", "<f8")]), np.array([1], "M8[s]")):
        with pytest.raises(wire.WireError, match="numbers or booleans"):
            wire.pack({"v": array})
    for dtype in ("?", "i1", "u8", "f2", "c16"):
        back = roundtrip({"v": np.ones(3, dtype=dtype)})["v"]
        assert back.dtype == np.dtype(dtype) and back.flags.writeable


def test_the_largest_answer_still_roundtrips_through_a_pipe():
    # A 4096 x 4096 float32 array (hw2's timed matrix product), through wire.reader.
    array = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    data = wire.pack({"kept": array})
    assert len(data) < wire.MAX_FRAME
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=wire.write_frame, args=(write_fd, {"kept": array}))
    writer.start()
    try:
        back = wire.unpack(wire.reader(read_fd))["kept"]
    finally:
        writer.join()
        os.close(read_fd)
        os.close(write_fd)
    assert back.dtype == np.float32 and np.array_equal(back, array) and back.flags.writeable


# -- through a real worker ----------------------------------------------------------
# A probe runs inside the worker process, whose response fd is sys.argv[2]: it can
# write any bytes there, as hostile student code would.

FORGE = """
def probe_forge(data):
    import os, sys, time
    view = memoryview(data.encode("latin-1"))
    while view:
        view = view[os.write(int(sys.argv[2]), view):]
    time.sleep(60)
"""


@pytest.fixture
def worker(tmp_path: Path):
    from grader.workers import Worker

    tree = tmp_path / "tree"
    tree.mkdir()
    worker = Worker(tree, tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.kill()


def forge(worker, data: bytes):
    from grader.workers import WorkerDied

    start = time.monotonic()
    with pytest.raises(WorkerDied) as info:
        worker.call({"source": FORGE, "name": "probe_forge"}, (data.decode("latin-1"),), 20)
    assert time.monotonic() - start < 10
    assert not worker.alive
    return str(info.value)


@pytest.mark.parametrize("name", ["float", "descr", "utf8", "not an object"])
def test_a_worker_forging_frames_gets_no_text_of_its_own_back(worker, name):
    message = forge(worker, HOSTILE[name])
    assert message.startswith("the worker sent malformed data (")
    assert MARKER not in message and MARKER[:8] not in message


def test_a_worker_claiming_a_huge_array_is_killed(worker):
    data = frame({"id": 1, "ok": True, "v": {"__ndarray__": 0}}, [npy("<f8", (10**12,))])
    assert forge(worker, data) == (
        "the worker sent malformed data (malformed array (its shape does not match its size))"
    )


def test_a_worker_sending_deep_json_or_a_huge_header_is_killed(worker):
    deep = frame(b"[" * 200_000 + b"]" * 200_000)
    assert "malformed header" in forge(worker, deep)
    huge = struct.pack(">I", wire.MAX_HEADER + 1)
    assert forge(worker, huge) == "the worker sent malformed data (header larger than 16 MiB)"


def test_a_worker_returns_the_largest_answer(worker):
    source = (
        "def probe_big():\n    import numpy as np\n"
        "    return {'kept': np.full((4096, 4096), 1.5, dtype=np.float32)}\n"
    )
    kept = worker.call({"source": source, "name": "probe_big"}, (), 60)["kept"]
    assert kept.shape == (4096, 4096) and kept.dtype == np.float32
    assert bool((kept == 1.5).all()) and kept.flags.writeable


def test_a_student_exception_class_name_is_never_quoted(worker):
    from grader.workers import StudentException

    source = (
        "def probe_raise(kind):\n"
        f"    class {MARKER.replace('-', '_')}(Exception):\n        pass\n"
        "    raise (ValueError if kind == 'builtin' else "
        f"{MARKER.replace('-', '_')})('the message')\n"
    )
    probe = {"source": source, "name": "probe_raise"}
    with pytest.raises(StudentException) as info:
        worker.call(probe, ("own",), 20)
    assert str(info.value) == "the message"
    assert MARKER.replace("-", "_") in info.value.student_traceback  # staff still see it
    with pytest.raises(ValueError, match=r"^the message$"):
        worker.call(probe, ("builtin",), 20)


@pytest.mark.parametrize(("env", "threads"), [({}, "1"), ({"OMP_NUM_THREADS": "3"}, "3")])
def test_a_worker_starts_blas_with_its_own_thread_count(tmp_path, env, threads):
    """NumPy's BLAS would start a thread per core of the host (and reserve memory for
    each): on a many-core host that alone filled a 1 GiB address-space limit."""
    from grader.workers import Worker

    worker = Worker(tmp_path, tmp_path / "worker.log", env=env)
    try:
        worker.start()
        source = (
            "def probe():\n    import os\n"
            "    return [os.environ.get(k) for k in ('OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')]\n"
        )
        assert worker.call({"source": source, "name": "probe"}, (), timeout=30) == [threads] * 2
    finally:
        worker.kill()
