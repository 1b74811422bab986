"""hw2's and hw4's CUDA code where there is no GPU: it compiles, builds and fails clearly.

- the reference's, the starter's and every example's kernels build with nvcc
  for the H100/H200 architecture (sm_90) the way `minitorch.cuda_runtime` builds
  them: combine.cu, launch.cu and runtime.cu each compiled on its own with
  relocatable device code, then linked with no undefined symbol; warnings are
  failures for the reference;
- the launchers are out of combine.cu's reach: launch.cu's compilation reads
  launch.cu and kernels.cuh only, so a combine.cu that defines a host product
  and macros meant to rewrite the launchers (`#define cudaGetLastError() ...`)
  builds, and the launchers' object never refers to its function;
- the library exports the launch counters (`launchCounts`), which start at 0
  and count no launch that failed; a host function given a kernel's name
  builds, but the launcher never calls it (on a GPU host: "invalid device
  function", nothing counted);
- hw2.5's checks (`cuda_cases.run_on_gpu`), with the launches computed by a
  NumPy stand-in for the GPU: the reference's backend passes them, one that
  delegates to `SimpleOps` or maps with NumPy on the host fails, saying why;
- `minitorch.cuda_runtime` builds the library once per source (cached by hash),
  reports nvcc's errors with file and line (link errors too), says where nvcc
  was looked for when it is missing, and without a GPU says there is none (on a
  GPU host: the library loads, sees one and counts a launch);
- importing the CUDA backend needs no GPU, and an unknown function is a clear error.
- hw4: the reference's, the starter's and every example's fused kernels build
  the same way (five units: hw2's three, fused.cu and fused_launch.cu), the
  reference without a warning; fused_launch.cu reads nothing of fused.cu; the
  library exports the fused launchers and their counters; hw4.5's functions
  and layers pass its public tests with the launches computed by NumPy
  stand-ins for the GPU (the reference's; a layer that skips its kernel fails).
(That the public tests skip with their reason without a GPU is checked by
tests/test_invariants.py, on a pip-installed copy of the starter.)

nvcc is part of this project's CI machine; elsewhere these tests skip saying so,
unless LLMSYS_REQUIRE_NVCC=1 (as in .ci/run) turns that into a failure.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from grader import examples, gpus, starter
from grader.context import Context, render_context
from grader.manifest import Course
from tests.conftest import REPO

COURSE = Course.load(REPO)
HW2 = COURSE.get("hw2")
HW4 = COURSE.get("hw4")
ARCH = "sm_90"


@pytest.fixture(scope="module")
def nvcc() -> str:
    found = shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None
    )
    if found is None:
        if os.environ.get("LLMSYS_REQUIRE_NVCC") == "1":
            pytest.fail("LLMSYS_REQUIRE_NVCC=1 but nvcc is not installed")
        pytest.skip("nvcc (the CUDA compiler) is not installed here")
    return found


@pytest.fixture(scope="module")
def context() -> Context:
    return render_context(COURSE, HW2)


@pytest.fixture(scope="module")
def hw4_context() -> Context:
    return render_context(COURSE, HW4)


def runtime_of(tree: Path) -> ModuleType:
    """The tree's `minitorch/cuda_runtime.py`, loaded on its own (not the package)."""
    spec = importlib.util.spec_from_file_location(
        "hw2_cuda_runtime", tree / "minitorch" / "cuda_runtime.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_kernels(
    nvcc: str, tree: Path, *flags: str, provided: dict[str, Path] | None = None
) -> tuple[Path, str]:
    """Build `tree`'s kernels with the nvcc commands of its `cuda_runtime.build`,
    the objects kept in `tree/build`; `provided` maps units to objects already
    compiled (the same launch.cu and runtime.cu serve every example). Returns the
    library and the output of the step that failed ("" when none did)."""
    rt = runtime_of(tree)
    work = tree / "build"
    work.mkdir(exist_ok=True)
    library = work / "lib.so"
    compiles, link = rt.commands(nvcc, [*rt.flags(ARCH), *flags], tree / "kernels", work, library)
    provided = provided or {}
    for unit, step in zip(rt.units(tree / "kernels"), compiles, strict=True):
        if unit in provided:
            shutil.copy(provided[unit], step[step.index("-o") + 1])
            continue
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return library, done.stdout + done.stderr
    done = subprocess.run(link, capture_output=True, text=True, check=False)
    return library, (done.stdout + done.stderr if done.returncode != 0 else "")


def symbols(nvcc: str, path: Path, *options: str) -> set[str]:
    """The symbol names `nm` lists for an object or library (from nvcc's folder if there)."""
    nm = Path(nvcc).with_name("nm")
    done = subprocess.run(
        [str(nm) if nm.exists() else "nm", *options, str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {line.split()[-1] for line in done.stdout.splitlines() if line.strip()}


def write(tree: dict[str, bytes], folder: Path) -> Path:
    return starter.copy_tree(tree, folder)


@pytest.mark.parametrize("which", ["reference", "starter"])
def test_kernels_compile(nvcc, context, which, tmp_path):
    tree = write(getattr(context, which), tmp_path / which)
    # The reference must compile cleanly; the starter's stubs leave variables unused.
    flags = ("-Werror", "all-warnings") if which == "reference" else ()
    library, failed = compile_kernels(nvcc, tree, *flags)
    assert failed == ""
    assert library.stat().st_size > 0
    text = (tree / "kernels" / "combine.cu").read_text()
    if which == "starter":
        for task in ("hw2.1", "hw2.2", "hw2.3", "hw2.4"):
            assert f"// TODO {task}:" in text
        assert "__syncthreads();\n  }\n  if (t == 0)" not in text  # no solution left in
    else:
        assert "BEGIN SOLUTION" not in text and "TODO" not in text
    # The launchers, the counters and the launch shape are in the library.
    exported = symbols(nvcc, library, "-D", "--defined-only")
    launchers = {"tensorMap", "tensorZip", "tensorReduce", "MatrixMultiply", "launchCounts"}
    assert launchers | {"mm_config"} <= exported
    # ... and the launchers are provided code, not the student's.
    assert not [name for name in launchers if f"int {name}(" in text]


def test_every_example_compiles(nvcc, context, tmp_path):
    specs = examples.specs(REPO, "hw2")
    assert len(specs) >= 6
    # Examples differ in submitted files only: the starter's launch.cu and
    # runtime.cu objects serve them all.
    starter_tree = write(context.starter, tmp_path / "provided")  # not an example's name
    _, failed = compile_kernels(nvcc, starter_tree)
    assert failed == ""
    provided = {unit: starter_tree / "build" / f"{Path(unit).stem}.o" for unit in PROVIDED}
    for name, spec in specs.items():
        files = examples.example_files(context, name, spec)
        assert not set(files) & {f"kernels/{unit}" for unit in PROVIDED}
        tree = write({**context.starter, **files}, tmp_path / "examples" / name)
        library, failed = compile_kernels(nvcc, tree, provided=provided)
        assert failed == "", f"example {name}: {failed}"
        assert "launchCounts" in symbols(nvcc, library, "-D", "--defined-only")


#: The units of the library that are provided code: never the student's.
PROVIDED = ("launch.cu", "runtime.cu")

#: Appended to the reference's combine.cu: a host product and macros that would
#: turn the launchers into calls of it if they were compiled with this file.
HIJACK = """
extern "C" int host_matmul(float* out, const float* a) {
  float value = 0.0f;
  cudaMemcpy(&value, a, sizeof(float), cudaMemcpyDeviceToHost);
  return cudaMemcpy(out, &value, sizeof(float), cudaMemcpyHostToDevice);
}
#define cudaGetLastError() host_matmul(out, a_storage)
#define cudaLaunchKernel(...) cudaSuccess
#define MatrixMultiply(...) host_matmul(out, a_storage)
#define launchCounts(counts) (counts[3] = 1 << 30)
"""


def test_combine_cu_cannot_reach_the_launchers(nvcc, context, tmp_path):
    tree = write(context.reference, tmp_path / "hijack")
    combine = tree / "kernels" / "combine.cu"
    combine.write_text(combine.read_text() + HIJACK)
    rt = runtime_of(tree)
    work = tmp_path / "objects"
    compiles, _ = rt.commands(nvcc, rt.flags(ARCH), tree / "kernels", work, work / "lib.so")
    # Every unit is compiled from its own file, and the provided units read
    # nothing of combine.cu: only themselves, kernels.cuh and system headers.
    for unit, step in zip(rt.UNITS, compiles, strict=True):
        assert [arg for arg in step if arg.endswith(".cu")] == [str(tree / "kernels" / unit)]
    for unit, own in (("launch.cu", {"launch.cu", "kernels.cuh"}), ("runtime.cu", {"runtime.cu"})):
        done = subprocess.run(
            [nvcc, f"-arch={ARCH}", "-rdc=true", "-M", str(tree / "kernels" / unit)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        read = {Path(word).name for word in done.stdout.split() if str(tree) in word}
        assert read == own, f"{unit} reads {sorted(read)}"
    # It builds; the hijacking function is compiled in combine.o, and nothing of
    # the launchers' object refers to it.
    library, failed = compile_kernels(nvcc, tree)
    assert failed == ""
    objects = tree / "build"
    assert "host_matmul" in symbols(nvcc, objects / "combine.o", "--defined-only")
    assert "host_matmul" not in symbols(nvcc, objects / "launch.o")
    assert "cudaLaunchKernel" in symbols(nvcc, objects / "launch.o", "--undefined-only")
    assert {"MatrixMultiply", "launchCounts"} <= symbols(nvcc, library, "-D", "--defined-only")


HOST_KERNEL = """
// A host function with the kernel's name and parameters: the launcher's
// reference to the kernel resolves to it, but cudaLaunchKernel never calls it.
void MatrixMultiplyKernel(float* out, const int* out_shape, const int* out_strides,
                          const float* a_storage, const int* a_shape, const int* a_strides,
                          const float* b_storage, const int* b_shape, const int* b_strides) {
  float value = 42.0f;
  cudaMemcpy(out, &value, sizeof(float), cudaMemcpyHostToDevice);
}
"""

HOST_KERNEL_RUN = """
import numpy as np
from minitorch import cuda_runtime as rt
rt.build()
try:
    rt.library()
except rt.CudaUnavailable:
    raise SystemExit("built; no GPU")
out, a = rt.DeviceArray.from_numpy(np.zeros(4)), rt.DeviceArray.from_numpy(np.ones(4))
layout = ([1, 2, 2], [4, 2, 1])
try:
    rt.matrix_multiply(out, *layout, a, *layout, a, *layout)
    rt.synchronize()
    print("ran", out.to_numpy().tolist())
except rt.CudaError as exc:
    print("refused:", exc)
print(rt.launches()["matmul"], out.to_numpy().tolist())
"""


def test_a_host_function_named_like_a_kernel_is_never_called(nvcc, context, tmp_path):
    tree = write(context.reference, tmp_path / "host-kernel")
    header = (tree / "kernels" / "kernels.cuh").read_text()
    start = header.index("__global__ void MatrixMultiplyKernel(")
    header = header[:start] + header[header.index(");\n", start) + 3 :]
    combine = tree / "kernels" / "combine.cu"
    text = combine.read_text().replace('#include "kernels.cuh"\n', header)
    combine.write_text(text[: text.index("__global__ void MatrixMultiplyKernel(")] + HOST_KERNEL)
    done = in_tree(
        tree, HOST_KERNEL_RUN, MINITORCH_BUILD_DIR=str(tmp_path / "build"), MINITORCH_CUDA_ARCH=ARCH
    )
    if not gpus.detect():
        assert done.returncode == 1 and done.stderr.strip() == "built; no GPU", done.stderr
        return
    assert done.returncode == 0, done.stderr
    refused, counted = done.stdout.splitlines()
    # CUDA refuses a launch of a function it has no kernel for ("invalid resource
    # handle" on an H200 with CUDA 13; "invalid device function" elsewhere).
    assert refused.startswith("refused: CUDA error"), refused
    assert counted == "0 [0.0, 0.0, 0.0, 0.0]"


def test_launch_counters_start_at_zero_and_skip_failures(nvcc, context, tmp_path):
    tree = write(context.reference, tmp_path / "reference")
    library, failed = compile_kernels(nvcc, tree)
    assert failed == ""
    lib = ctypes.CDLL(str(library))
    counts = (ctypes.c_int64 * 4)()
    assert lib.launchCounts(counts) == 0 and list(counts) == [0, 0, 0, 0]
    assert list((ctypes.c_int * 2).in_dll(lib, "mm_config")) == [16, 64]
    if gpus.detect():
        return  # the launches themselves: test_library_builds_once_and_needs_a_gpu
    # No GPU: a map cannot run, says so, and is not counted.
    shape = (ctypes.c_int * 1)(4)
    stride = (ctypes.c_int * 1)(1)
    status = lib.tensorMap(None, shape, stride, 4, 1, None, shape, stride, 1, 4)
    assert status != 0
    assert lib.launchCounts(counts) == 0 and list(counts) == [0, 0, 0, 0]


def test_the_starter_tiles_fit_one_output_per_thread(nvcc, context, tmp_path):
    """The handout's first matmul (one output per thread) is correct with the starter's
    defines: a block's tile is its threads' square; the reference's is 4 times wider."""
    for label, tree in (("starter", context.starter), ("reference", context.reference)):
        library, failed = compile_kernels(nvcc, write(tree, tmp_path / label))
        assert failed == ""
        config = list((ctypes.c_int * 2).in_dll(ctypes.CDLL(str(library)), "mm_config"))
        assert config == ([16, 16] if label == "starter" else [16, 64]), label


def test_a_combine_cu_without_its_kernels_does_not_link(nvcc, context, tmp_path):
    tree = write(context.starter, tmp_path / "starter")
    combine = tree / "kernels" / "combine.cu"
    text = combine.read_text().replace('extern "C" const int mm_config[2] =', "int unused[2] =")
    combine.write_text(text.replace("__global__ void zipKernel(", "__global__ void zipKernel2(", 1))
    done = in_tree(
        tree,
        "from minitorch import cuda_runtime as rt\n"
        "try:\n    rt.build()\nexcept rt.CudaError as exc:\n    print(exc)\n",
        MINITORCH_BUILD_DIR=str(tmp_path / "build"),
        MINITORCH_CUDA_ARCH=ARCH,
    )
    assert done.stdout.startswith("nvcc could not link the kernels"), done.stdout + done.stderr
    assert "zipKernel" in done.stdout and "mm_config" in done.stdout
    assert not list((tmp_path / "build").iterdir()), "a failed build left files behind"


def in_tree(tree: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` in a rendered tree, as a student would (minitorch importable)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={"PATH": os.environ["PATH"], "HOME": str(tree), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


BUILD = """
import time
from minitorch import cuda_runtime as rt
start = time.perf_counter()
first = rt.build()
took = time.perf_counter() - start
start = time.perf_counter()
again = rt.build()
print(first == again, took > 0.2, time.perf_counter() - start < 0.2, first.parent)
try:
    rt.library()
    x = rt.DeviceArray.from_numpy(__import__("numpy").ones(5))
    rt.tensor_map(rt.FN_IDS["neg"], x, [5], [1], x, [5], [1])
    print("loaded", x.sum(), rt.launches())
except rt.CudaUnavailable as exc:
    print("unavailable:", exc)
"""


def test_library_builds_once_and_needs_a_gpu(nvcc, context, tmp_path):
    tree = write(context.reference, tmp_path / "reference")
    build_dir = tmp_path / "build"
    done = in_tree(tree, BUILD, MINITORCH_BUILD_DIR=str(build_dir), MINITORCH_CUDA_ARCH=ARCH)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"True True True {build_dir}", done.stdout
    assert len(list(build_dir.glob("minitorch-cuda-*.so"))) == 1
    if gpus.detect():
        counted = {"map": 1, "zip": 0, "reduce": 0, "matmul": 0}
        assert lines[1] == f"loaded -5.0 {counted}", done.stdout
    else:
        assert lines[1].startswith("unavailable: no CUDA GPU to run on: "), done.stdout


def test_nvcc_errors_reach_the_student(nvcc, context, tmp_path):
    tree = write(context.starter, tmp_path / "starter")
    combine = tree / "kernels" / "combine.cu"
    combine.write_text(combine.read_text().replace("int out_index[MAX_DIMS];", "int out_index[", 1))
    done = in_tree(
        tree,
        "from minitorch import cuda_runtime as rt\n"
        "try:\n    rt.build()\nexcept rt.CudaError as exc:\n    print(exc)\n",
        MINITORCH_BUILD_DIR=str(tmp_path / "build"),
        MINITORCH_CUDA_ARCH=ARCH,
    )
    assert done.stdout.startswith("nvcc could not build the kernels:"), done.stdout + done.stderr
    assert "combine.cu(" in done.stdout and "error" in done.stdout
    assert not list((tmp_path / "build").glob("*.so")), "a failed build left a library behind"


def test_missing_nvcc_says_where_it_looked(context, tmp_path):
    tree = write(context.starter, tmp_path / "starter")
    done = in_tree(
        tree,
        "from pathlib import Path\n"
        "from minitorch import cuda_runtime as rt\n"
        "rt.CUDA_DEFAULT = Path('/nonexistent/cuda')\n"
        "try:\n    rt.build()\nexcept rt.CudaUnavailable as exc:\n    print(exc)\n",
        PATH="/usr/bin:/bin",
    )
    assert done.stdout.strip() == (
        "nvcc (the CUDA compiler) was not found on PATH, in $CUDA_HOME/bin or in "
        "/nonexistent/cuda/bin; install the CUDA toolkit or set CUDA_HOME"
    ), done.stdout + done.stderr


def test_importing_the_backend_needs_no_gpu(context, tmp_path):
    tree = write(context.starter, tmp_path / "starter")
    done = in_tree(
        tree,
        "from minitorch.cuda_kernel_ops import CudaKernelBackend, fn_id\n"
        "import minitorch\n"
        "print(CudaKernelBackend.cuda, fn_id(minitorch.operators.add))\n"
        "try:\n    fn_id(abs)\nexcept ValueError as exc:\n    print(exc)\n",
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "True 1"
    assert second.startswith("the CUDA kernels have no function 'abs'; they know add, eq, exp")


#: A stand-in for the GPU, for hw2.5's checks where there is none: the launch
#: functions of `minitorch.cuda_runtime` computed with NumPy, and counted.
FAKE_GPU = """
import numpy as np
from minitorch import cuda_runtime as rt

FNS = {
    "add": np.add, "mul": np.multiply, "id": lambda x: x, "neg": np.negative,
    "lt": lambda x, y: (x < y) * 1.0, "eq": lambda x, y: (x == y) * 1.0,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
    "relu_back": lambda x, d: np.where(x > 0, d, 0), "log": np.log,
    "log_back": lambda x, d: d / x, "exp": np.exp, "inv": lambda x: 1 / x,
    "inv_back": lambda x, d: -d / (x * x), "max": np.maximum,
    "is_close": lambda x, y: (np.abs(x - y) < 1e-2) * 1.0,
}
BY_ID = {rt.FN_IDS[name]: fn for name, fn in FNS.items()}
COUNTS = dict.fromkeys(rt.KINDS, 0)


class DeviceArray:
    def __init__(self, size):
        self.host = np.zeros(int(size), np.float32)

    @classmethod
    def from_numpy(cls, array):
        out = cls(np.asarray(array).size)
        out.host[:] = np.ravel(array)
        return out

    def to_numpy(self):
        return self.host.copy()


def view(array, shape, strides):
    return np.lib.stride_tricks.as_strided(array.host, tuple(shape), [4 * s for s in strides])


def tensor_map(fn, out, out_shape, out_strides, a, *a_layout):
    view(out, out_shape, out_strides)[...] = BY_ID[fn](view(a, *a_layout))
    COUNTS["map"] += 1


def tensor_zip(fn, out, out_shape, out_strides, a, a_shape, a_strides, b, *b_layout):
    zipped = BY_ID[fn](view(a, a_shape, a_strides), view(b, *b_layout))
    view(out, out_shape, out_strides)[...] = zipped
    COUNTS["zip"] += 1


def tensor_reduce(fn, start, out, out_shape, out_strides, a, a_shape, a_strides, dim):
    folded = BY_ID[fn].reduce(view(a, a_shape, a_strides), axis=dim, keepdims=True)
    view(out, out_shape, out_strides)[...] = folded
    COUNTS["reduce"] += 1


def matrix_multiply(out, out_shape, out_strides, a, a_shape, a_strides, b, *b_layout):
    view(out, out_shape, out_strides)[...] = view(a, a_shape, a_strides) @ view(b, *b_layout)
    COUNTS["matmul"] += 1


rt.DeviceArray, rt.tensor_map, rt.tensor_zip = DeviceArray, tensor_map, tensor_zip
rt.tensor_reduce, rt.matrix_multiply = tensor_reduce, matrix_multiply
rt.launches = lambda: dict(COUNTS)
"""

GUARDED_RUN = """
import sys
sys.path[:0] = ["tests"]
import fake_gpu
import test_cuda_backend as public, test_cuda_hidden as hidden

class Student:
    def run(self, probe, *args):
        return probe(*args)

student = Student()
for name, test in [
    ("elementwise", public.test_elementwise_operations),
    ("reductions", public.test_reductions),
    ("matmuls", public.test_matrix_products),
    ("gradients", public.test_gradients_through_the_gpu),
    ("chain", lambda s: hidden.test_gradients_match_the_cpu(s, s, 1)),
    ("map_into", hidden.test_map_into_a_permuted_out),
]:
    try:
        test(student)
        print(name, "passed")
    except AssertionError as exc:
        print(name, "failed:", str(exc).splitlines()[0])
from minitorch import fast_ops as fast, tensor_ops as simple
print("restored", simple.SimpleOps.map.__qualname__, fast.FastTensorBackend.neg_map.__name__)
"""

#: CudaKernelOps of hw2.5 that compute on the host (added after the reference's,
#: renamed _Reference), and the start of what hw2.5's checks say of each.
DELEGATES = """
from .tensor_ops import SimpleOps


class CudaKernelOps(SimpleOps):
    cuda = True
"""
NUMPY_MAP = """
import numpy as np


def _host(t):
    strides = [8 * s for s in t._tensor.strides]
    return np.lib.stride_tricks.as_strided(t._tensor._storage, t.shape, strides)


class CudaKernelOps(_Reference):
    @staticmethod
    def map(fn):
        def ret(a, out=None):
            out = a.zeros(a.shape) if out is None else out
            _host(out)[...] = np.vectorize(fn)(_host(a))
            return out

        return ret
"""
HOST_BACKENDS = {
    "delegates": (DELEGATES, "hw2.5: SimpleOps."),
    "numpy-map": (NUMPY_MAP, "hw2.5: CudaKernelOps.map ran no CUDA map kernel"),
}


@pytest.mark.parametrize("backend", ["reference", *HOST_BACKENDS])
def test_hw2_5_counts_kernels_and_refuses_cpu_backends(context, backend, tmp_path):
    """hw2.5's checks (cuda_cases.run_on_gpu) with the GPU's launches computed by NumPy:
    the reference passes them; backends that compute on the host fail them."""
    tree = write(context.reference, tmp_path / backend)
    hidden = REPO / "assignments" / "hw2" / "hidden" / "test_cuda_hidden.py"
    shutil.copy(hidden, tree / "tests")
    (tree / "tests" / "fake_gpu.py").write_text(FAKE_GPU)
    if backend != "reference":
        ops = tree / "minitorch" / "cuda_kernel_ops.py"
        text = ops.read_text().replace("class CudaKernelOps(", "class _Reference(", 1)
        cut = text.index("CudaKernelBackend = TensorBackend(")
        ops.write_text(text[:cut] + HOST_BACKENDS[backend][0] + "\n\n" + text[cut:])
    done = in_tree(tree, GUARDED_RUN)
    assert done.returncode == 0, done.stderr
    *results, restored = done.stdout.splitlines()
    assert restored == "restored SimpleOps.map ret", done.stdout  # the CPU backends work again
    assert len(results) == 6, done.stdout
    for line in results:
        if backend == "reference":
            assert line.endswith(" passed"), line
        else:
            assert f" failed: {HOST_BACKENDS[backend][1]}" in line, line


# ---------------------------------------------------------------------------
# hw4: the fused kernels
# ---------------------------------------------------------------------------

#: hw4's launchers and counters, exported by the library.
FUSED_LAUNCHERS = {
    "attnSoftmax",
    "attnSoftmaxBackward",
    "layerNorm",
    "layerNormBackward",
    "fusedLaunchCounts",
}


@pytest.mark.parametrize("which", ["reference", "starter"])
def test_hw4_kernels_compile(nvcc, hw4_context, which, tmp_path):
    tree = write(getattr(hw4_context, which), tmp_path / which)
    rt = runtime_of(tree)
    assert rt.units(tree / "kernels") == (*rt.UNITS, "fused.cu", "fused_launch.cu")
    flags = ("-Werror", "all-warnings") if which == "reference" else ()
    library, failed = compile_kernels(nvcc, tree, *flags)
    assert failed == ""
    text = (tree / "kernels" / "fused.cu").read_text()
    if which == "starter":
        for task in ("hw4.1", "hw4.2", "hw4.3", "hw4.4"):
            assert f"// TODO {task}:" in text
        # no solution left in (the exps of hw4.1, the running sums of hw4.4)
        assert "expf(" not in text and "sum_dy_xhat" not in text and "dgamma +=" not in text
    else:
        assert "BEGIN SOLUTION" not in text and "TODO" not in text
    exported = symbols(nvcc, library, "-D", "--defined-only")
    assert FUSED_LAUNCHERS | {"tensorMap", "launchCounts"} <= exported
    assert not [name for name in FUSED_LAUNCHERS if f"int {name}(" in text]
    lib = ctypes.CDLL(str(library))
    counts = (ctypes.c_int64 * 5)()
    assert lib.fusedLaunchCounts(counts) == 0 and list(counts) == [0] * 5


def test_hw4_fused_launch_reads_nothing_of_fused_cu(nvcc, hw4_context, tmp_path):
    tree = write(hw4_context.reference, tmp_path / "reference")
    done = subprocess.run(
        [nvcc, f"-arch={ARCH}", "-rdc=true", "-M", str(tree / "kernels" / "fused_launch.cu")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    read = {Path(word).name for word in done.stdout.split() if str(tree) in word}
    assert read == {"fused_launch.cu", "fused.cuh"}


def test_hw4_every_example_compiles(nvcc, hw4_context, tmp_path):
    specs = examples.specs(REPO, "hw4")
    assert len(specs) >= 10
    # Examples differ in submitted files only (fused.cu among the kernels): the
    # starter's objects of the other units serve them all.
    starter_tree = write(hw4_context.starter, tmp_path / "provided")
    _, failed = compile_kernels(nvcc, starter_tree)
    assert failed == ""
    units = runtime_of(starter_tree).units(starter_tree / "kernels")
    others = [unit for unit in units if unit != "fused.cu"]
    provided = {unit: starter_tree / "build" / f"{Path(unit).stem}.o" for unit in others}
    for name, spec in specs.items():
        files = examples.example_files(hw4_context, name, spec)
        assert not set(files) & {f"kernels/{unit}" for unit in others}
        tree = write({**hw4_context.starter, **files}, tmp_path / "examples" / name)
        library, failed = compile_kernels(nvcc, tree, provided=provided)
        assert failed == "", f"example {name}: {failed}"
        assert "fusedLaunchCounts" in symbols(nvcc, library, "-D", "--defined-only")


def test_hw4_library_builds_and_needs_a_gpu(nvcc, hw4_context, tmp_path):
    tree = write(hw4_context.reference, tmp_path / "reference")
    done = in_tree(
        tree,
        "from minitorch import cuda_runtime as rt, fused_runtime as fr\n"
        "print(rt.build().name.startswith('minitorch-cuda-'))\n"
        "try:\n    fr.launches()\nexcept rt.CudaUnavailable as exc:\n"
        "    print('unavailable:', exc)\nelse:\n    print('loaded', fr.launches())\n",
        MINITORCH_BUILD_DIR=str(tmp_path / "build"),
        MINITORCH_CUDA_ARCH=ARCH,
    )
    assert done.returncode == 0, done.stderr
    built, second = done.stdout.splitlines()
    assert built == "True"
    if gpus.detect():
        assert second == f"loaded {FUSED_ZERO}", done.stdout
    else:
        assert second.startswith("unavailable: no CUDA GPU to run on: "), done.stdout


FUSED_ZERO = dict.fromkeys(
    ("softmax", "softmax_backward", "layernorm", "layernorm_backward", "layernorm_params"), 0
)

#: A stand-in for hw4's launchers where there is no GPU: `minitorch.fused_runtime`
#: computed with NumPy (float64 on the float32 arrays of FAKE_GPU), and counted.
FAKE_FUSED = """
import numpy as np
from minitorch import fused_runtime as fr

COUNTS = dict.fromkeys(fr.KINDS, 0)


def attn_softmax_forward(out, scores, key_padding, batch, heads, queries, keys, causal):
    shape = (batch, heads, queries, keys)
    x = scores.host[: np.prod(shape)].reshape(shape).astype(np.float64)
    masked = np.zeros(shape, bool)
    if causal:
        masked |= np.triu(np.ones((queries, keys), bool), 1)
    if key_padding is not None:
        pad = key_padding.host[: batch * keys].reshape(batch, keys)
        masked |= (pad != 0)[:, None, None, :]
    v = np.where(masked, -np.inf, x)
    m = v.max(-1, keepdims=True)
    empty = np.isneginf(m)
    e = np.exp(v - np.where(empty, 0.0, m))
    p = np.where(empty, 0.0, e / np.where(empty, 1.0, e.sum(-1, keepdims=True)))
    out.host[: p.size] = p.ravel()
    COUNTS["softmax"] += 1


def attn_softmax_backward(grad_in, grad_out, out, rows, cols):
    g = grad_out.host[: rows * cols].reshape(rows, cols).astype(np.float64)
    y = out.host[: rows * cols].reshape(rows, cols).astype(np.float64)
    grad_in.host[: rows * cols] = (y * (g - (g * y).sum(1, keepdims=True))).ravel()
    COUNTS["softmax_backward"] += 1


def layernorm_forward(out, mean, inv_std, x, gamma, beta, rows, width, eps):
    h = x.host[: rows * width].reshape(rows, width).astype(np.float64)
    mu = h.mean(1)
    r = 1 / np.sqrt(((h - mu[:, None]) ** 2).mean(1) + eps)
    y = (h - mu[:, None]) * r[:, None] * gamma.host[:width] + beta.host[:width]
    out.host[: rows * width], mean.host[:rows], inv_std.host[:rows] = y.ravel(), mu, r
    COUNTS["layernorm"] += 1


def layernorm_backward(grad_in, grad_gamma, grad_beta, grad_out, x, gamma, mean, inv_std,
                       rows, width):
    dy = grad_out.host[: rows * width].reshape(rows, width).astype(np.float64)
    h = x.host[: rows * width].reshape(rows, width).astype(np.float64)
    mu, r = mean.host[:rows, None].astype(np.float64), inv_std.host[:rows, None].astype(np.float64)
    xhat, hg = (h - mu) * r, dy * gamma.host[:width]
    dx = r * (hg - hg.mean(1, keepdims=True) - xhat * (hg * xhat).mean(1, keepdims=True))
    grad_in.host[: rows * width] = dx.ravel()
    grad_gamma.host[:width], grad_beta.host[:width] = (dy * xhat).sum(0), dy.sum(0)
    COUNTS["layernorm_backward"] += 1
    COUNTS["layernorm_params"] += 1


fr.attn_softmax_forward, fr.attn_softmax_backward = attn_softmax_forward, attn_softmax_backward
fr.layernorm_forward, fr.layernorm_backward = layernorm_forward, layernorm_backward
fr.launches = lambda: dict(COUNTS)
"""

FUSED_RUN = """
import sys
sys.path[:0] = ["tests"]
import fake_gpu, fake_fused
import test_fused_layers as public

class Student:
    def run(self, probe, *args):
        return probe(*args)

student = Student()
for name, test in sorted(vars(public).items()):
    if not name.startswith("test_"):
        continue
    try:
        test(student)
        print(name, "passed")
    except AssertionError as exc:
        print(name, "failed:", str(exc).strip().splitlines()[0])
"""

#: A fused attention that runs hw3's softmax instead of its kernel (added to the
#: reference's modules_attention.py).
UNFUSED_SOFTMAX = """

def _forward(self, x, key_padding_mask=None):
    saved, self.use_fused_kernel = self.use_fused_kernel, False
    try:
        return _original_forward(self, x, key_padding_mask)
    finally:
        self.use_fused_kernel = saved


_original_forward = MultiHeadAttention.forward
MultiHeadAttention.forward_fused = _forward
"""


@pytest.mark.parametrize("variant", ["reference", "unfused-softmax"])
def test_hw4_5_layers_with_numpy_launchers(hw4_context, variant, tmp_path):
    """hw4.5's public tests on the reference's functions and layers, with the
    launches (hw2's and hw4's) computed by NumPy: all pass; an attention whose
    "fused" path runs hw3's softmax fails, its kernel never launched."""
    tree = write(hw4_context.reference, tmp_path / variant)
    (tree / "tests" / "fake_gpu.py").write_text(FAKE_GPU)
    (tree / "tests" / "fake_fused.py").write_text(FAKE_FUSED)
    if variant != "reference":
        module = tree / "minitorch" / "modules_attention.py"
        module.write_text(module.read_text() + UNFUSED_SOFTMAX)
    done = in_tree(tree, FUSED_RUN)
    assert done.returncode == 0, done.stderr
    results = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert len(results) == 5, done.stdout
    if variant == "reference":
        assert set(results.values()) == {"passed"}, done.stdout
        return
    for name in ("test_attn_softmax_function", "test_layernorm_function"):
        assert results[name] == "passed", done.stdout
    for name in ("test_fused_attention_causal", "test_fused_transformer_layer"):
        assert results[name].startswith("failed: "), done.stdout
        assert "launches of the softmax kernel, expected 1" in results[name], done.stdout
