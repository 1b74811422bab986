"""The CUDA library of miniTorch: building it, loading it, GPU memory (provided).

`library()` builds one shared library from three translation units, the first
time it is needed, and loads it with ctypes:

- `kernels/combine.cu`: your kernels (tasks hw2.1-hw2.4);
- `kernels/launch.cu`: the host functions that launch them (provided), which
  also count every launch (`launches()`);
- `kernels/runtime.cu`: GPU memory helpers (provided);

and, from hw4 on (where `kernels/fused_launch.cu` is), two more: `kernels/fused.cu`
(the fused kernels) and `kernels/fused_launch.cu` (their launchers, provided;
`minitorch.fused_runtime` calls them).

nvcc compiles each file on its own, with relocatable device code
(`nvcc -rdc=true -c`), and links the three objects (device link included) into
the library; `kernels/kernels.cuh`, which combine.cu and launch.cu include,
declares the kernels they share (`kernels/fused.cuh` those of fused.cu and
fused_launch.cu). So no macro or function of combine.cu (or fused.cu) can
change how its kernels are launched. The build is cached by the hash of the
sources and the compiler flags, so editing a kernel rebuilds it and nothing
else does. Where it goes: `$MINITORCH_BUILD_DIR`, or a folder of your own in
the system's temporary folder.

Environment:
- `CUDA_HOME`: where the CUDA toolkit is (its `bin/nvcc`), if nvcc is not on PATH;
- `MINITORCH_CUDA_ARCH`: the GPU architecture to build for (default `native`,
  the GPU of this machine; `sm_90` for an H100 or H200);
- `MINITORCH_NVCC_FLAGS`: more nvcc flags (e.g. `-lineinfo` for profilers).

The rest of this module is the thin layer over the library that
`minitorch.cuda_kernel_ops` uses: `DeviceArray` (float32 numbers in GPU memory)
and one function per kernel (`tensor_map`, `tensor_zip`, `tensor_reduce`,
`matrix_multiply`), which take GPU arrays and host shapes and strides; and
`launches()`, how many kernels of each kind have run in this process.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "FN_IDS",
    "CudaError",
    "CudaUnavailable",
    "DeviceArray",
    "build",
    "launches",
    "library",
    "matrix_multiply",
    "synchronize",
    "tensor_map",
    "tensor_reduce",
    "tensor_zip",
]

#: The kernel sources, next to the `minitorch` package.
KERNELS = Path(__file__).resolve().parent.parent / "kernels"
#: The library's translation units, each compiled on its own.
UNITS = ("combine.cu", "launch.cu", "runtime.cu")
#: Every file a build reads (and hashes): the units and the header they share.
SOURCES = (*UNITS, "kernels.cuh")
#: hw4's units and header, built in where the provided `fused_launch.cu` is.
FUSED_UNITS = ("fused.cu", "fused_launch.cu")
FUSED_SOURCES = (*FUSED_UNITS, "fused.cuh")
#: Names the way the library is built: a build of another recipe is never reused.
RECIPE = "units-rdc-1"
#: The kernels `launches()` counts, in the order of launch.cu's launchCounts.
KINDS = ("map", "zip", "reduce", "matmul")

#: Function ids of the kernels' `fn` (the #defines of kernels.cuh).
FN_IDS = {
    "add": 1,
    "mul": 2,
    "id": 3,
    "neg": 4,
    "lt": 5,
    "eq": 6,
    "sigmoid": 7,
    "relu": 8,
    "relu_back": 9,
    "log": 10,
    "log_back": 11,
    "exp": 12,
    "inv": 13,
    "inv_back": 14,
    "is_close": 15,
    "max": 16,
}

MAX_DIMS = 10
#: Where the CUDA toolkit usually is, when neither PATH nor CUDA_HOME says.
CUDA_DEFAULT = Path("/usr/local/cuda")


class CudaUnavailable(RuntimeError):
    """The CUDA library cannot be built or has no GPU to run on."""


class CudaError(RuntimeError):
    """A CUDA call failed; the message is CUDA's."""


_library: ctypes.CDLL | None = None


def nvcc() -> str:
    """The path of nvcc, or CudaUnavailable saying where it was looked for."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [shutil.which("nvcc")]
    if home:
        candidates.append(str(Path(home) / "bin" / "nvcc"))
    candidates.append(str(CUDA_DEFAULT / "bin" / "nvcc"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise CudaUnavailable(
        f"nvcc (the CUDA compiler) was not found on PATH, in $CUDA_HOME/bin or in "
        f"{CUDA_DEFAULT}/bin; install the CUDA toolkit or set CUDA_HOME"
    )


def flags(arch: str | None = None) -> list[str]:
    """nvcc's flags for every step of a build: `MINITORCH_CUDA_ARCH` (default
    `native`) unless `arch` is given, and `MINITORCH_NVCC_FLAGS` last."""
    arch = arch or os.environ.get("MINITORCH_CUDA_ARCH", "native")
    return [
        "-O3",
        f"-arch={arch}",
        "-rdc=true",
        "-Xcompiler",
        "-fPIC",
        *os.environ.get("MINITORCH_NVCC_FLAGS", "").split(),
    ]


def fused(sources: Path = KERNELS) -> bool:
    """Whether a build from `sources` includes hw4's fused kernels (their provided
    launchers are there)."""
    return (sources / "fused_launch.cu").is_file()


def units(sources: Path = KERNELS) -> tuple[str, ...]:
    """The translation units of a build from `sources`, in order."""
    return (*UNITS, *FUSED_UNITS) if fused(sources) else UNITS


def source_files(sources: Path = KERNELS) -> tuple[str, ...]:
    """Every file a build from `sources` reads: its units and their headers."""
    return (*SOURCES, *FUSED_SOURCES) if fused(sources) else SOURCES


def commands(
    compiler: str, nvcc_flags: Sequence[str], sources: Path, work: Path, target: Path
) -> tuple[list[list[str]], list[str]]:
    """The nvcc commands of a build: one compilation per unit of `sources` (each
    names its own file only, its object in `work`), and the link of the objects
    into `target` (device link included; an undefined symbol is an error)."""
    built = units(sources)
    objects = [work / f"{Path(unit).stem}.o" for unit in built]
    compiles = [
        [compiler, *nvcc_flags, "-c", str(sources / unit), "-o", str(obj)]
        for unit, obj in zip(built, objects, strict=True)
    ]
    link = [
        compiler,
        *nvcc_flags,
        "-shared",
        "-Xlinker",
        "--no-undefined",
        *map(str, objects),
        "-o",
        str(target),
    ]
    return compiles, link


def build(out_dir: Path | None = None, arch: str | None = None, sources: Path = KERNELS) -> Path:
    """Compile the kernels into a shared library (or reuse an identical earlier build).

    Raises CudaUnavailable without nvcc, and CudaError with nvcc's messages when
    the code does not compile or link.
    """
    compiler = nvcc()
    nvcc_flags = flags(arch)
    digest = hashlib.sha256("\0".join([RECIPE, compiler, *nvcc_flags]).encode())
    files = source_files(sources)
    for name in files:
        path = sources / name
        if not path.is_file():
            raise CudaError(f"{path} is missing: the library is built from {', '.join(files)}")
        digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    out_dir = out_dir or _build_dir()
    target = out_dir / f"minitorch-cuda-{digest.hexdigest()[:16]}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=out_dir))
    try:
        compiles, link = commands(compiler, nvcc_flags, sources, work, work / target.name)
        errors = _run_all(compiles)
        if errors:
            raise CudaError("nvcc could not build the kernels:\n" + "\n".join(errors))
        errors = _run_all([link])
        if errors:
            hw4 = " (and fused.cu every kernel that fused.cuh declares)" if fused(sources) else ""
            raise CudaError(
                "nvcc could not link the kernels (combine.cu must define every kernel "
                f"that kernels.cuh declares, with the same parameters, and mm_config{hw4}; "
                "and nothing that launch.cu or runtime.cu defines):\n" + "\n".join(errors)
            )
        # Whole or not at all, also with builds side by side.
        os.replace(work / target.name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _run_all(steps: list[list[str]]) -> list[str]:
    """Run the commands side by side; the output of each that failed."""
    running = [
        subprocess.Popen(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for step in steps
    ]
    failed = []
    try:
        for process in running:
            output, _ = process.communicate()
            if process.returncode != 0:
                failed.append(output.strip() or f"{process.args[0]} failed ({process.returncode})")
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    return failed


def _build_dir() -> Path:
    chosen = os.environ.get("MINITORCH_BUILD_DIR")
    if chosen:
        return Path(chosen)
    # A folder of this user's own: a library someone else placed is never loaded.
    folder = Path(tempfile.gettempdir()) / f"minitorch-cuda-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o022:
        raise CudaUnavailable(f"{folder} belongs to another user; set MINITORCH_BUILD_DIR")
    return folder


def library() -> ctypes.CDLL:
    """The loaded CUDA library, built on first use; CudaUnavailable without a GPU."""
    global _library
    if _library is not None:
        return _library
    lib = ctypes.CDLL(str(build()))
    _declare(lib)
    count = ctypes.c_int(0)
    status = lib.deviceCount(ctypes.byref(count))
    if status != 0 or count.value == 0:
        reason = lib.errorString(status).decode() if status else "the driver reports no device"
        raise CudaUnavailable(f"no CUDA GPU to run on: {reason}")
    _library = lib
    return lib


def check(status: int, what: str = "") -> None:
    """CudaError with CUDA's message unless `status` is 0; `what` (e.g. the
    kernel that ran) starts the message when given."""
    if status != 0:
        message = library().errorString(status).decode()
        raise CudaError(f"{what + ': ' if what else ''}CUDA error {status}: {message}")


def synchronize() -> None:
    """Wait until the GPU has finished all work (and report any error of it)."""
    check(library().deviceSynchronize())


def _declare(lib: ctypes.CDLL) -> None:
    p, i, f, i64, size = (
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_float,
        ctypes.c_int64,
        ctypes.c_size_t,
    )
    ints = ctypes.POINTER(ctypes.c_int)
    signatures = {
        "deviceCount": [ints],
        "deviceMalloc": [ctypes.POINTER(p), size],
        "deviceFree": [p],
        "copyToDevice": [p, p, size],
        "copyToHost": [p, p, size],
        "copyOnDevice": [p, p, size],
        "deviceSynchronize": [],
        "fillUniform": [p, i64, ctypes.c_uint64, f, f],
        "deviceSum": [p, i64, ctypes.POINTER(ctypes.c_double)],
        "tensorMap": [p, ints, ints, i, i, p, ints, ints, i, i],
        "tensorZip": [p, ints, ints, i, i, p, ints, ints, i, p, ints, ints, i, i],
        "tensorReduce": [p, ints, ints, i, p, ints, ints, i, i, f, i],
        "MatrixMultiply": [p, ints, ints, p, ints, ints, p, ints, ints],
        "launchCounts": [ctypes.POINTER(i64)],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    lib.errorString.argtypes = [ctypes.c_int]
    lib.errorString.restype = ctypes.c_char_p


def launches() -> dict[str, int]:
    """How many kernels of each kind (map, zip, reduce, matmul) this process has
    launched so far: the provided launchers (kernels/launch.cu) count each
    successful launch. hw2.5's tests read them around every operation of
    `CudaKernelOps`, which must each launch a kernel of their own kind."""
    counts = (ctypes.c_int64 * len(KINDS))()
    check(library().launchCounts(counts))
    return {kind: int(count) for kind, count in zip(KINDS, counts, strict=True)}


class DeviceArray:
    """`size` float32 numbers in GPU memory; freed when garbage-collected."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.nbytes = 4 * self.size
        pointer = ctypes.c_void_p()
        check(library().deviceMalloc(ctypes.byref(pointer), self.nbytes))
        self.ptr: int = pointer.value or 0

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> DeviceArray:
        """A GPU copy of `array`'s numbers (converted to float32), in storage order."""
        host = np.ascontiguousarray(array, dtype=np.float32).ravel()
        out = cls(host.size)
        if host.size:
            check(library().copyToDevice(out.ptr, host.ctypes.data, out.nbytes))
        return out

    def to_numpy(self) -> np.ndarray:
        """The numbers, copied to a new float32 host array (waits for the GPU)."""
        host = np.empty(self.size, dtype=np.float32)
        if self.size:
            check(library().copyToHost(host.ctypes.data, self.ptr, self.nbytes))
        return host

    def fill_uniform(self, seed: int, low: float = -1.0, high: float = 1.0) -> None:
        """Numbers in [low, high) made on the GPU from `seed` (the same on every GPU)."""
        check(library().fillUniform(self.ptr, self.size, seed % 2**64, low, high))

    def sum(self) -> float:
        """The sum of all numbers, in double precision, on the GPU."""
        total = ctypes.c_double()
        check(library().deviceSum(self.ptr, self.size, ctypes.byref(total)))
        return total.value

    def __del__(self) -> None:
        if getattr(self, "ptr", 0) and _library is not None:
            _library.deviceFree(self.ptr)
            self.ptr = 0


def _ints(values: Sequence[int]) -> ctypes.Array[ctypes.c_int]:
    values = [int(v) for v in values]
    if len(values) > MAX_DIMS:
        raise ValueError(f"the CUDA kernels take at most {MAX_DIMS} dimensions, not {len(values)}")
    return (ctypes.c_int * max(1, len(values)))(*values)


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def tensor_map(
    fn_id: int,
    out: DeviceArray,
    out_shape: Sequence[int],
    out_strides: Sequence[int],
    a: DeviceArray,
    a_shape: Sequence[int],
    a_strides: Sequence[int],
) -> None:
    """Launch mapKernel: `out[i] = fn(a[broadcast(i)])` (GPU arrays, host layouts)."""
    check(
        library().tensorMap(
            out.ptr,
            _ints(out_shape),
            _ints(out_strides),
            _size(out_shape),
            len(out_shape),
            a.ptr,
            _ints(a_shape),
            _ints(a_strides),
            len(a_shape),
            fn_id,
        )
    )


def tensor_zip(
    fn_id: int,
    out: DeviceArray,
    out_shape: Sequence[int],
    out_strides: Sequence[int],
    a: DeviceArray,
    a_shape: Sequence[int],
    a_strides: Sequence[int],
    b: DeviceArray,
    b_shape: Sequence[int],
    b_strides: Sequence[int],
) -> None:
    """Launch zipKernel: `out[i] = fn(a[broadcast(i)], b[broadcast(i)])`."""
    check(
        library().tensorZip(
            out.ptr,
            _ints(out_shape),
            _ints(out_strides),
            _size(out_shape),
            len(out_shape),
            a.ptr,
            _ints(a_shape),
            _ints(a_strides),
            len(a_shape),
            b.ptr,
            _ints(b_shape),
            _ints(b_strides),
            len(b_shape),
            fn_id,
        )
    )


def tensor_reduce(
    fn_id: int,
    start: float,
    out: DeviceArray,
    out_shape: Sequence[int],
    out_strides: Sequence[int],
    a: DeviceArray,
    a_shape: Sequence[int],
    a_strides: Sequence[int],
    dim: int,
) -> None:
    """Launch reduceKernel: fold `fn` over dimension `dim` of `a` from `start`
    (the identity of `fn`); `out_shape` is `a_shape` with `dim` of size 1."""
    check(
        library().tensorReduce(
            out.ptr,
            _ints(out_shape),
            _ints(out_strides),
            _size(out_shape),
            a.ptr,
            _ints(a_shape),
            _ints(a_strides),
            len(a_shape),
            dim,
            start,
            fn_id,
        )
    )


def matrix_multiply(
    out: DeviceArray,
    out_shape: Sequence[int],
    out_strides: Sequence[int],
    a: DeviceArray,
    a_shape: Sequence[int],
    a_strides: Sequence[int],
    b: DeviceArray,
    b_shape: Sequence[int],
    b_strides: Sequence[int],
) -> None:
    """Launch MatrixMultiplyKernel on 3-D layouts: (n, I, K) @ (n, K, J) -> (n, I, J)."""
    for shape in (out_shape, a_shape, b_shape):
        if len(shape) != 3:
            raise ValueError(f"matrix_multiply takes 3-D layouts, not {list(shape)}")
    check(
        library().MatrixMultiply(
            out.ptr,
            _ints(out_shape),
            _ints(out_strides),
            a.ptr,
            _ints(a_shape),
            _ints(a_strides),
            b.ptr,
            _ints(b_shape),
            _ints(b_strides),
        )
    )
