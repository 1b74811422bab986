"""How fast hw2's reference CUDA kernels are, against PyTorch, memory copies and variants.

Renders hw2's reference tree (nothing stubbed) into a temporary folder, builds
its kernels with `minitorch.cuda_runtime.build` and loads that module from the
tree. Prints, each figure the median of --repeat timed loops:

  correctness  each measured kernel of each build against NumPy on small
               inputs (a 257 x 129 @ 129 x 65 product, sums along both
               dimensions of a 37 x 1000 matrix, neg): "ok" or "WRONG"; the
               figures of a WRONG kernel are flagged in the tables too;
  matmul       for each n of --sizes: GFLOP/s (2 n^3 / time) of the reference's
               MatrixMultiply on (1, n, n) @ (1, n, n) inputs filled on the GPU,
               of `torch.matmul` in float32 with TF32 off (when PyTorch with
               CUDA is there; else "torch: not available"), and reference /
               torch (the reference's share of torch's speed);
  bandwidth    on a --shape float32 matrix (default 8192 x 8192, 256 MiB):
               GB/s, counting bytes read + written, of a device-to-device copy
               (the library's copyOnDevice), of reduce (sum along the last
               dimension), of map (neg), and of reduce along dimension 0 (for
               information: its reads are strided); each as a share of the copy's;
  variants     for each --variant NAME=PATH (the reference tree with PATH as
               kernels/combine.cu: kernels only, including kernels.cuh and
               defining mm_config, as the starter's; the launchers are the
               tree's kernels/launch.cu) and --define NAME=MACRO=VALUE,... (the
               reference built with -DMACRO=VALUE ..., e.g. MM_TILE=32; every
               unit gets the flag, only combine.cu reads MM_*): matmul GFLOP/s per size
               and variant time / reference time (per size and their geometric
               mean, as the grader combines sizes), and the same time ratio of
               reduce along the last dimension. That is what the grader's
               timing thresholds (assignments/hw2/assignment.toml) compare.

How it times: each launch goes through the same ctypes call that
`cuda_runtime.matrix_multiply`, `tensor_reduce` and `tensor_map` make (layouts
copied to the GPU, then the kernel), on the reference library or a variant's.
After untimed warm-up calls, the number of launches per loop doubles until a
loop lasts --min-time (default 50 ms); a sample is the wall-clock time of such
a loop with the GPU synchronized before and after, divided by its launches.
torch's matmul is timed with CUDA events around the same kind of loop. All
share one CUDA context (the default stream); every sample starts with the GPU
idle. Without a CUDA GPU it prints "error: no CUDA GPU: <reason>" and exits 2.

    .venv/bin/python benchmarks/cuda_kernels.py [--sizes 1024,2048,3072,4096] [--repeat 5]
        [--variant NAME=PATH_TO_combine.cu ...] [--define NAME=MM_TILE=32,MM_THREADS=32 ...]
        [--shape 8192x8192] [--min-time 0.05] [--json OUT]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import starter  # noqa: E402
from grader.manifest import Course  # noqa: E402

REFERENCE = "reference"
#: Untimed launches before a kernel's first timed loop.
WARMUP_CALLS = 3
#: Most launches in one timed loop (tiny kernels would otherwise loop forever).
MAX_CALLS = 1 << 16

Launch = Callable[[], None]
#: Seconds that `calls` launches take, measured one way or another.
Clock = Callable[[Launch, int], float]


class NoGpu(Exception):
    """No CUDA GPU can be used here; the message says why."""


@dataclass
class Build:
    """One build of combine.cu: the reference, or a variant of it."""

    name: str
    combine: Path | None = None  #: replaces kernels/combine.cu; None: the reference's
    defines: list[str] = field(default_factory=list)  #: -D flags for nvcc
    library: Path | None = None
    lib: ctypes.CDLL | None = None
    correct: dict[str, bool] = field(default_factory=dict)

    @property
    def cdll(self) -> ctypes.CDLL:
        """The loaded library (once built)."""
        assert self.lib is not None, f"{self.name} is not built yet"
        return self.lib

    @property
    def source(self) -> str:
        where = str(self.combine) if self.combine else "reference kernels/combine.cu"
        return " ".join([where, *self.defines])


@dataclass
class Bench:
    """What every measurement needs: the loaded runtime module and the timing settings."""

    rt: ModuleType
    repeat: int
    min_time: float
    torch: ModuleType | None

    def sync(self) -> None:
        self.rt.synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def wall_clock(self, launch: Launch, calls: int) -> float:
        self.sync()
        start = time.perf_counter()
        for _ in range(calls):
            launch()
        self.sync()
        return time.perf_counter() - start

    def event_clock(self, launch: Launch, calls: int) -> float:
        assert self.torch is not None
        self.sync()
        start, end = (self.torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        for _ in range(calls):
            launch()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000

    def per_call(self, launch: Launch, clock: Clock | None = None) -> float:
        """Median seconds of one launch over --repeat loops of at least --min-time."""
        clock = clock or self.wall_clock
        clock(launch, WARMUP_CALLS)
        calls = 1
        while (elapsed := clock(launch, calls)) < self.min_time and calls < MAX_CALLS:
            wanted = math.ceil(1.2 * calls * self.min_time / max(elapsed, 1e-9))
            calls = min(MAX_CALLS, max(2 * calls, wanted))
        return statistics.median(clock(launch, calls) / calls for _ in range(self.repeat))


# ---------------------------------------------------------------------------
# Set-up: the GPU, the reference tree, the builds, PyTorch
# ---------------------------------------------------------------------------


def gpu_name() -> str:
    """The first CUDA GPU's name, asked of the NVIDIA driver (no build, no PyTorch);
    NoGpu says why there is none. Honours CUDA_VISIBLE_DEVICES."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise NoGpu("no NVIDIA driver here (libcuda.so.1 not found)") from None
    status = driver.cuInit(0)
    if status != 0:
        raise NoGpu(f"the NVIDIA driver found no usable GPU (cuInit error {status})")
    count, device = ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        raise NoGpu("the NVIDIA driver reports no GPU")
    name = ctypes.create_string_buffer(256)
    driver.cuDeviceGet(ctypes.byref(device), 0)
    driver.cuDeviceGetName(name, len(name), device)
    return name.value.decode(errors="replace") or "unknown GPU"


def render_reference(dest: Path) -> starter.Tree:
    """hw2's reference tree (nothing stubbed), written to `dest`."""
    course = Course.load(REPO)
    tree = starter.render_tree(course, course.get("hw2"), stub_tags=())
    starter.copy_tree(tree, dest)
    return tree


def load_runtime(tree: Path) -> ModuleType:
    """`minitorch/cuda_runtime.py` of the rendered tree, loaded on its own (importing
    the `minitorch` package would import all of it); its KERNELS is `tree/kernels`."""
    path = tree / "minitorch" / "cuda_runtime.py"
    spec = importlib.util.spec_from_file_location("bench_cuda_runtime", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def nvcc_flags(extra: Sequence[str]) -> Iterator[None]:
    """MINITORCH_NVCC_FLAGS with `extra` appended, for the builds inside."""
    before = os.environ.get("MINITORCH_NVCC_FLAGS")
    os.environ["MINITORCH_NVCC_FLAGS"] = " ".join([before or "", *extra]).strip()
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINITORCH_NVCC_FLAGS"]
        else:
            os.environ["MINITORCH_NVCC_FLAGS"] = before


def build_variant(rt: ModuleType, build: Build, tree: starter.Tree, scratch: Path) -> None:
    """Compile and load `build` (the library's default build folder caches it)."""
    sources = scratch / "reference" / "kernels"
    if build.combine is not None:
        folder = starter.copy_tree(
            {**tree, "kernels/combine.cu": build.combine.read_bytes()}, scratch / build.name
        )
        sources = folder / "kernels"
    start = time.perf_counter()
    with nvcc_flags(build.defines):
        build.library = rt.build(sources=sources)
    lib = ctypes.CDLL(str(build.library))
    rt._declare(lib)
    build.lib = lib
    print(f"  {build.name}: {build.source} ({time.perf_counter() - start:.1f} s)", flush=True)


def load_torch() -> tuple[ModuleType | None, str]:
    """PyTorch with CUDA and TF32 off, or None; and what to say about it."""
    try:
        import torch
    except ImportError as exc:
        return None, f"torch: not available ({exc})"
    if not torch.cuda.is_available():
        return None, f"torch: not available (torch {torch.__version__} has no CUDA GPU)"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch, f"torch: {torch.__version__}, float32 matmul with TF32 off"


# ---------------------------------------------------------------------------
# Launches, as cuda_runtime makes them, on any build's library
# ---------------------------------------------------------------------------


def strides_of(shape: Sequence[int]) -> list[int]:
    """Row-major (contiguous) strides of `shape`."""
    return [int(np.prod(shape[k + 1 :], dtype=np.int64)) for k in range(len(shape))]


def layout(rt: ModuleType, shape: Sequence[int]) -> list[Any]:
    return [rt._ints(shape), rt._ints(strides_of(shape))]


def matmul(
    rt: ModuleType, lib: ctypes.CDLL, out: Any, a: Any, b: Any, rows: int, inner: int, cols: int
) -> None:
    """out = a @ b of contiguous (1, rows, inner) @ (1, inner, cols): the call of
    `cuda_runtime.matrix_multiply`, on `lib`."""
    shapes = [(1, rows, cols), (1, rows, inner), (1, inner, cols)]
    args: list[Any] = []
    for array, shape in zip((out, a, b), shapes, strict=True):
        args += [array.ptr, *layout(rt, shape)]
    rt.check(lib.MatrixMultiply(*args))


def reduce_sum(
    rt: ModuleType, lib: ctypes.CDLL, out: Any, a: Any, shape: Sequence[int], dim: int
) -> None:
    """out = a summed along `dim` (contiguous layouts): the call of `cuda_runtime.tensor_reduce`."""
    out_shape = [1 if k == dim else n for k, n in enumerate(shape)]
    status = lib.tensorReduce(
        out.ptr,
        *layout(rt, out_shape),
        rt._size(out_shape),
        a.ptr,
        *layout(rt, shape),
        len(shape),
        dim,
        0.0,
        rt.FN_IDS["add"],
    )
    rt.check(status)


def map_neg(rt: ModuleType, lib: ctypes.CDLL, out: Any, a: Any, shape: Sequence[int]) -> None:
    """out = -a (contiguous layouts): the call of `cuda_runtime.tensor_map`."""
    status = lib.tensorMap(
        out.ptr,
        *layout(rt, shape),
        rt._size(shape),
        len(shape),
        a.ptr,
        *layout(rt, shape),
        len(shape),
        rt.FN_IDS["neg"],
    )
    rt.check(status)


# ---------------------------------------------------------------------------
# Correctness on small inputs
# ---------------------------------------------------------------------------


def agrees(compute: Callable[[], np.ndarray], expected: np.ndarray, rt: ModuleType) -> bool:
    try:
        got = compute()
        rt.synchronize()
    except rt.CudaError as exc:
        print(f"    ({exc})")
        return False
    return bool(np.allclose(got, expected, rtol=1e-4, atol=1e-4))


def check_build(bench: Bench, build: Build, with_copy: bool) -> None:
    """Fill `build.correct`: each kernel against NumPy on small inputs."""
    rt, lib = bench.rt, build.cdll
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (257, 129)), rng.uniform(-1, 1, (129, 65))
    m = rng.uniform(-1, 1, (37, 1000))
    a_gpu, b_gpu, m_gpu = (rt.DeviceArray.from_numpy(x) for x in (a, b, m))

    def run_matmul() -> np.ndarray:
        out = rt.DeviceArray(257 * 65)
        matmul(rt, lib, out, a_gpu, b_gpu, 257, 129, 65)
        return out.to_numpy().reshape(257, 65)

    def run_reduce(dim: int) -> np.ndarray:
        out = rt.DeviceArray(m.size // m.shape[dim])
        reduce_sum(rt, lib, out, m_gpu, m.shape, dim)
        return out.to_numpy()

    def run_map() -> np.ndarray:
        out = rt.DeviceArray(m.size)
        map_neg(rt, lib, out, m_gpu, m.shape)
        return out.to_numpy().reshape(m.shape)

    def run_copy() -> np.ndarray:
        out = rt.DeviceArray(m.size)
        rt.check(rt.library().copyOnDevice(out.ptr, m_gpu.ptr, m_gpu.nbytes))
        return out.to_numpy().reshape(m.shape)

    checks: dict[str, tuple[Callable[[], np.ndarray], np.ndarray]] = {
        "matmul": (run_matmul, a @ b),
        "reduce_last": (lambda: run_reduce(1), m.sum(axis=1)),
        "reduce_first": (lambda: run_reduce(0), m.sum(axis=0)),
        "map_neg": (run_map, -m),
    }
    if with_copy:
        checks["copy"] = (run_copy, m)
    build.correct = {name: agrees(fn, want, rt) for name, (fn, want) in checks.items()}


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def time_matmuls(bench: Bench, builds: list[Build], n: int) -> dict[str, float]:
    """Seconds of one (1, n, n) @ (1, n, n) product on each build, and with torch."""
    rt = bench.rt
    a, b, out = rt.DeviceArray(n * n), rt.DeviceArray(n * n), rt.DeviceArray(n * n)
    a.fill_uniform(1)
    b.fill_uniform(2)
    times = {
        build.name: bench.per_call(partial(matmul, rt, build.cdll, out, a, b, n, n, n))
        for build in builds
    }
    del a, b, out
    if bench.torch is not None:
        torch = bench.torch
        ta, tb = (torch.rand(n, n, device="cuda") * 2 - 1 for _ in range(2))
        tout = torch.empty(n, n, device="cuda")
        times["torch"] = bench.per_call(partial(torch.matmul, ta, tb, out=tout), bench.event_clock)
        del ta, tb, tout
        torch.cuda.empty_cache()
    return times


def time_streams(
    bench: Bench, builds: list[Build], shape: tuple[int, int]
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds of the copy, map and reduces on the reference; and of the last-dim
    reduce on each variant; over a `shape` matrix."""
    rt, reference = bench.rt, builds[0].cdll
    size = shape[0] * shape[1]
    src, dst = rt.DeviceArray(size), rt.DeviceArray(size)
    row_sums, col_sums = rt.DeviceArray(shape[0]), rt.DeviceArray(shape[1])
    src.fill_uniform(3)
    copy = rt.library().copyOnDevice
    times = {
        "copy": bench.per_call(lambda: rt.check(copy(dst.ptr, src.ptr, src.nbytes))),
        "reduce_last": bench.per_call(partial(reduce_sum, rt, reference, row_sums, src, shape, 1)),
        "map_neg": bench.per_call(partial(map_neg, rt, reference, dst, src, shape)),
        "reduce_first": bench.per_call(partial(reduce_sum, rt, reference, col_sums, src, shape, 0)),
    }
    variants = {
        build.name: bench.per_call(partial(reduce_sum, rt, build.cdll, row_sums, src, shape, 1))
        for build in builds[1:]
    }
    return times, variants


def stream_bytes(shape: tuple[int, int]) -> dict[str, int]:
    """Bytes read + written by each kernel over a float32 `shape` matrix."""
    size = 4 * shape[0] * shape[1]
    return {
        "copy": 2 * size,
        "reduce_last": size + 4 * shape[0],
        "map_neg": 2 * size,
        "reduce_first": size + 4 * shape[1],
    }


# ---------------------------------------------------------------------------
# Report: one JSON-able dict, printed as tables
# ---------------------------------------------------------------------------


def geomean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def report(
    builds: list[Build],
    matmul_times: dict[int, dict[str, float]],
    streams: dict[str, float],
    variant_reduces: dict[str, float],
    shape: tuple[int, int],
) -> dict[str, Any]:
    """Every figure, derived from the measured seconds."""
    sizes = sorted(matmul_times)
    names = list(matmul_times[sizes[0]])
    mm: dict[str, Any] = {}
    for name in names:
        seconds = {n: matmul_times[n][name] for n in sizes}
        ratios = {n: seconds[n] / matmul_times[n][REFERENCE] for n in sizes}
        mm[name] = {
            "seconds": seconds,
            "gflops": {n: 2 * n**3 / seconds[n] / 1e9 for n in sizes},
            "time_ratio_to_reference": ratios,
            "time_ratio_geomean": geomean(list(ratios.values())),
        }
    nbytes = stream_bytes(shape)
    bandwidth = {
        kernel: {
            "seconds": streams[kernel],
            "bytes": nbytes[kernel],
            "gbps": nbytes[kernel] / streams[kernel] / 1e9,
            "share_of_copy": streams["copy"] / streams[kernel],
        }
        for kernel in ("copy", "reduce_last", "map_neg", "reduce_first")
    }
    variants = {
        name: {
            "seconds": seconds,
            "time_ratio_to_reference": seconds / streams["reduce_last"],
        }
        for name, seconds in variant_reduces.items()
    }
    return {
        "builds": {
            b.name: {"source": b.source, "library": str(b.library), "correct": b.correct}
            for b in builds
        },
        "matmul": mm,
        "bandwidth": {"shape": list(shape), "kernels": bandwidth},
        "variants_reduce_last": variants,
    }


def wrong(build: Build, *kernels: str) -> str:
    """A flag for the figures of `kernels` that failed their correctness check on `build`."""
    bad = [k for k in kernels if not build.correct.get(k, True)]
    return f"  WRONG: {', '.join(bad)}" if bad else ""


def print_correctness(builds: list[Build]) -> None:
    print("\ncorrectness against NumPy (small inputs)")
    for build in builds:
        cells = "  ".join(f"{k} {'ok' if ok else 'WRONG'}" for k, ok in build.correct.items())
        print(f"  {build.name:<14} {cells}")


def print_matmul(figures: dict[str, Any], builds: dict[str, Build], repeat: int) -> None:
    mm = figures["matmul"]
    reference, torch = mm[REFERENCE], mm.get("torch")
    print(f"\nmatmul (1, n, n) @ (1, n, n) float32, GFLOP/s = 2 n^3 / time, median of {repeat}")
    header = f"  {'n':>6} {'reference':>11}"
    print(header + (f" {'torch':>11} {'ref / torch':>12}" if torch else ""))
    for n, gflops in reference["gflops"].items():
        line = f"  {n:>6} {gflops:>11.1f}"
        if torch:
            line += f" {torch['gflops'][n]:>11.1f} {gflops / torch['gflops'][n]:>12.2f}"
        print(line + wrong(builds[REFERENCE], "matmul"))


def print_bandwidth(figures: dict[str, Any], builds: dict[str, Build], repeat: int) -> None:
    bw = figures["bandwidth"]
    rows, cols = bw["shape"]
    labels = {
        "copy": "copy (copyOnDevice)",
        "reduce_last": "reduce sum, last dim",
        "map_neg": "map neg",
        "reduce_first": "reduce sum, dim 0 (info)",
    }
    mib = 4 * rows * cols / 2**20
    print(
        f"\nbandwidth on a ({rows}, {cols}) float32 matrix ({mib:.0f} MiB), "
        f"GB/s counting bytes read + written, median of {repeat}"
    )
    print(f"  {'kernel':<26} {'ms':>9} {'GB/s':>9} {'/ copy':>7}")
    for kernel, f in bw["kernels"].items():
        print(
            f"  {labels[kernel]:<26} {f['seconds'] * 1e3:>9.3f} {f['gbps']:>9.1f} "
            f"{f['share_of_copy']:>7.2f}" + wrong(builds[REFERENCE], kernel)
        )


def print_variants(figures: dict[str, Any], builds: dict[str, Build]) -> None:
    names = [name for name in builds if name != REFERENCE]
    if not names:
        return
    mm = figures["matmul"]
    sizes = list(mm[REFERENCE]["gflops"])
    print("\nvariants: matmul GFLOP/s (time / reference's), reduce last dim time / reference's")
    cells = "".join(f" {'n=' + str(n):>18}" for n in sizes)
    print(f"  {'variant':<14}{cells} {'matmul geomean':>15} {'reduce':>8}")
    for name in names:
        row = mm[name]
        cells = "".join(
            f" {row['gflops'][n]:>10.1f} ({row['time_ratio_to_reference'][n]:>5.2f}x)"
            for n in sizes
        )
        reduce_ratio = figures["variants_reduce_last"][name]["time_ratio_to_reference"]
        print(
            f"  {name:<14}{cells} {row['time_ratio_geomean']:>14.2f}x {reduce_ratio:>7.2f}x"
            + wrong(builds[name], "matmul", "reduce_last")
        )


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def named(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="1024,2048,3072,4096",
        type=lambda s: [int(n) for n in s.split(",")],
        help="matrix sizes n of the matmul (default 1024,2048,3072,4096)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed loops per figure")
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds a timed loop lasts at least"
    )
    parser.add_argument(
        "--shape",
        default="8192x8192",
        type=lambda s: tuple(int(n) for n in s.lower().split("x")),
        help="ROWSxCOLS of the bandwidth matrix (default 8192x8192, 256 MiB)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=named,
        metavar="NAME=PATH",
        help="also build the reference tree with PATH as kernels/combine.cu (repeatable)",
    )
    parser.add_argument(
        "--define",
        action="append",
        default=[],
        type=named,
        metavar="NAME=MACRO=VALUE,...",
        help="also build the reference with nvcc -DMACRO=VALUE ..., e.g. "
        "small=MM_TILE=32,MM_THREADS=32 (repeatable)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every figure here")
    args = parser.parse_args()
    if len(args.shape) != 2 or args.repeat < 1 or not args.sizes:
        parser.error("--shape takes ROWSxCOLS, --repeat at least 1, --sizes at least one n")
    return args


def variant_builds(args: argparse.Namespace) -> list[Build]:
    builds = [Build(name, combine=Path(path).resolve()) for name, path in args.variant]
    builds += [
        Build(name, defines=[f"-D{d}" for d in macros.split(",")]) for name, macros in args.define
    ]
    names = [b.name for b in builds]
    for build in builds:
        if build.name in (REFERENCE, "torch") or names.count(build.name) > 1:
            sys.exit(f"error: variant name {build.name!r} is taken; give each variant its own")
        if build.combine is not None and not build.combine.is_file():
            sys.exit(f"error: variant {build.name}: no such file {build.combine}")
    return builds


def set_up(args: argparse.Namespace, scratch: Path) -> tuple[Bench, list[Build]]:
    """Render and build everything, load the reference library and PyTorch."""
    variants = variant_builds(args)
    print("rendering hw2's reference tree", flush=True)
    tree = render_reference(scratch / "reference")
    rt = load_runtime(scratch / "reference")
    print("building (nvcc)", flush=True)
    start = time.perf_counter()
    try:
        reference = Build(REFERENCE, library=rt.build(), lib=rt.library())
    except rt.CudaUnavailable as exc:
        raise NoGpu(str(exc).removeprefix("no CUDA GPU to run on: ")) from None
    print(f"  {REFERENCE}: {reference.source} ({time.perf_counter() - start:.1f} s)", flush=True)
    for build in variants:
        try:
            build_variant(rt, build, tree, scratch)
        except rt.CudaError as exc:
            sys.exit(f"error: variant {build.name} does not build:\n{exc}")
    torch, about_torch = load_torch()
    print(about_torch, flush=True)
    return Bench(rt, args.repeat, args.min_time, torch), [reference, *variants]


def main() -> None:
    args = parse_args()
    try:
        gpu = gpu_name()
    except NoGpu as exc:
        print(f"error: no CUDA GPU: {exc}", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="llmsys-bench-") as tmp:
        try:
            bench, builds = set_up(args, Path(tmp))
        except NoGpu as exc:
            print(f"error: no CUDA GPU: {exc}", file=sys.stderr)
            sys.exit(2)
        print(f"GPU: {gpu}", flush=True)
        for build in builds:
            check_build(bench, build, with_copy=build.name == REFERENCE)
        print_correctness(builds)
        matmul_times = {}
        for n in args.sizes:
            print(f"timing matmul n={n}", flush=True)
            matmul_times[n] = time_matmuls(bench, builds, n)
        print(f"timing copy, reduce and map on {args.shape[0]}x{args.shape[1]}", flush=True)
        streams, variant_reduces = time_streams(bench, builds, args.shape)
    figures = report(builds, matmul_times, streams, variant_reduces, args.shape)
    by_name = {b.name: b for b in builds}
    print_matmul(figures, by_name, args.repeat)
    print_bandwidth(figures, by_name, args.repeat)
    print_variants(figures, by_name)
    if args.json:
        settings = {"repeat": args.repeat, "min_time_s": args.min_time, "sizes": args.sizes}
        torch_version = bench.torch.__version__ if bench.torch is not None else None
        document = {"gpu": gpu, "torch": torch_version, "settings": settings, **figures}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
