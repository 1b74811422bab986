"""Helpers of the hw2 tests: tensors as plain data, the probe that runs one kernel,
and the checks that hw2.5's backend computes on the GPU.

A tensor travels as `[storage, shape, strides]` (storage a float64 NumPy array).
`probe_kernel` runs in your process (the grader's sandboxed worker when graded):
it copies the tensors to the GPU, launches one kernel of your library through
`minitorch.cuda_runtime`, and copies the output's storage back. Around the
output it leaves guard numbers (NaN), and it fills the output's storage with
NaN before the launch, so the tests can tell

- a kernel that wrote nothing (the starter's stubs): NotImplementedError;
- a kernel that wrote outside its output (e.g. a bounds check off by one):
  the guards or the gaps between the output's numbers changed.

`run_on_gpu` runs a probe of hw2.5 (the CUDA backend) through `probe_on_gpu`,
which checks that every operation of `CudaKernelBackend` launched a CUDA kernel
of its own kind (the provided launchers count their launches:
`cuda_runtime.launches()`), and makes the CPU backends (`SimpleOps`, `FastOps`)
refuse all work while the probe runs. An operation computed on the host, or by
another backend, fails with an AssertionError saying so.
"""

from __future__ import annotations

import inspect
import textwrap

import numpy as np


def spec(x, order=None, gap=1):
    """`x` as `[storage, shape, strides]`, its dimensions stored in the order `order`
    (None: row-major), each number followed by `gap - 1` NaNs."""
    x = np.asarray(x, dtype=np.float64)
    order = list(range(x.ndim)) if order is None else list(order)
    stored = np.ascontiguousarray(np.transpose(x, order))
    storage = np.full(max(stored.size, 1) * gap, np.nan)
    storage[::gap] = stored.ravel()
    stored_strides = [gap * int(np.prod(stored.shape[k + 1 :])) for k in range(x.ndim)]
    strides = [0] * x.ndim
    for k, dim in enumerate(order):
        strides[dim] = stored_strides[k]
    return [storage, list(x.shape), strides]


def out_spec(shape, order=None, gap=1):
    """An output of `shape`: every number of its storage NaN."""
    return spec(np.full(shape, np.nan), order, gap)


def broadcast_spec(x, shape):
    """`x` seen with `shape` through strides of 0 (no copy), like `expand`."""
    storage, x_shape, x_strides = spec(x)
    pad = len(shape) - len(x_shape)
    strides = [0] * pad + [0 if n == 1 and m != 1 else s for n, m, s in
                           zip(x_shape, shape[pad:], x_strides, strict=True)]  # fmt: skip
    return [storage, list(shape), strides]


def values(result, what="output"):
    """The NumPy array of a tensor given as `[storage, shape, strides]`."""
    storage, shape, strides = result
    storage = np.asarray(storage, dtype=np.float64)
    last = sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
    assert len(storage) > last, f"{what}: storage of {len(storage)} numbers for shape {shape}"
    return np.lib.stride_tricks.as_strided(
        storage, tuple(shape), tuple(s * storage.itemsize for s in strides)
    ).copy()


def positions(shape, strides):
    """The storage positions of every element of a layout."""
    index = np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), int)
    return np.asarray(strides, dtype=np.int64) @ index


def check(result, expected, what, rtol=1e-5, atol=1e-5):
    """The tensor `result` has the expected shape and values (float32 accuracy)."""
    expected = np.asarray(expected, dtype=np.float64)
    assert list(result[1]) == list(expected.shape), (
        f"{what}: expected shape {list(expected.shape)}, got {list(result[1])}"
    )
    np.testing.assert_allclose(values(result, what), expected, rtol=rtol, atol=atol, err_msg=what)


def random_array(seed, shape, low=-3.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, size=tuple(shape))


def run_matmul(student, a, b, a_order=None, b_order=None, out_order=None):
    """`a @ b` of 3-D arrays through the matrix multiply kernel, each operand and the
    output stored in the given dimension order (None: row-major)."""
    shape = (max(a.shape[0], b.shape[0]), a.shape[1], b.shape[2])
    return student.run(
        probe_kernel,
        "matmul",
        "",
        out_spec(shape, out_order),
        [spec(a, a_order), spec(b, b_order)],
    )


def probe_kernel(kind, fn_name, out, inputs, start=0.0, dim=0):
    """Launch one kernel (`kind`: map, zip, reduce or matmul) of the student's
    library on plain-data tensors; returns the output as `[storage, shape, strides]`.

    Raises NotImplementedError when the kernel wrote none of the output, and
    AssertionError when it wrote outside it (a guard or a gap changed)."""
    import numpy as np
    from minitorch import cuda_runtime as rt

    kernels = {
        "map": ("hw2.1: Map", "mapKernel"),
        "zip": ("hw2.2: Zip", "zipKernel"),
        "reduce": ("hw2.3: Reduce", "reduceKernel"),
        "matmul": ("hw2.4: Matrix multiply", "MatrixMultiplyKernel"),
    }
    guard = 64
    out_storage, out_shape, out_strides = out
    padded = np.concatenate([np.asarray(out_storage, dtype=np.float32), np.full(guard, np.nan)])
    out_gpu = rt.DeviceArray.from_numpy(padded)
    gpus = [rt.DeviceArray.from_numpy(np.asarray(t[0], dtype=np.float32)) for t in inputs]
    layouts = [(t[1], t[2]) for t in inputs]
    if kind == "map":
        rt.tensor_map(rt.FN_IDS[fn_name], out_gpu, out_shape, out_strides, gpus[0], *layouts[0])
    elif kind == "zip":
        rt.tensor_zip(
            rt.FN_IDS[fn_name], out_gpu, out_shape, out_strides,
            gpus[0], *layouts[0], gpus[1], *layouts[1],
        )  # fmt: skip
    elif kind == "reduce":
        rt.tensor_reduce(
            rt.FN_IDS[fn_name], start, out_gpu, out_shape, out_strides, gpus[0], *layouts[0], dim
        )
    else:
        rt.matrix_multiply(out_gpu, out_shape, out_strides, gpus[0], *layouts[0],
                           gpus[1], *layouts[1])  # fmt: skip
    rt.synchronize()
    result = out_gpu.to_numpy().astype(np.float64)
    index = np.indices(out_shape).reshape(len(out_shape), -1)
    mine = np.zeros(result.size, dtype=bool)
    mine[np.asarray(out_strides, dtype=np.int64) @ index] = True
    if mine.any() and np.isnan(result[mine]).all():
        task, kernel = kernels[kind]
        raise NotImplementedError(
            f"{task}: {kernel} wrote nothing to its output (is it still the starter's stub?)"
        )
    outside = ~mine & ~np.isnan(result)
    assert not outside.any(), (
        f"{kernels[kind][1]} wrote outside its output: at storage position(s) "
        f"{np.flatnonzero(outside)[:5].tolist()} of an output whose last number is at "
        f"{int(np.flatnonzero(mine).max()) if mine.any() else -1} (a bounds check off by one?)"
    )
    return [result[: len(out_storage)], list(out_shape), list(out_strides)]


def run_on_gpu(student, probe, *args):
    """`student.run(probe, *args)` for hw2.5: the probe runs under `probe_on_gpu`."""
    source = textwrap.dedent(inspect.getsource(probe))
    return student.run(probe_on_gpu, source, probe.__name__, list(args))


def probe_on_gpu(source, name, args):
    """Run the probe `name` (defined by `source`) on `args` while watching the CUDA backend.

    Meanwhile every operation of `CudaKernelBackend` must launch at least one
    kernel of its kind (map, zip, reduce, matmul), read from the launchers'
    counters, unless its output is empty; and the CPU backends refuse work:
    the operations of `SimpleOps` and `FastOps`, and of the backends made of
    them, raise AssertionError. Everything is restored afterwards."""
    import minitorch  # noqa: F401  (the package first: it imports every module below)
    from minitorch import cuda_kernel_ops, fast_ops, tensor_ops
    from minitorch import cuda_runtime as rt

    kinds = {"map": "map", "zip": "zip", "reduce": "reduce", "matrix_multiply": "matmul"}
    kernels = {"map": "map", "zip": "zip", "reduce": "reduce", "matmul": "matrix multiply"}
    rule = (
        "every operation of this backend must run on the GPU (computing it on the "
        "host, or with another backend, does not count)"
    )
    backend, ops = cuda_kernel_ops.CudaKernelBackend, cuda_kernel_ops.CudaKernelOps
    cpu_classes = (tensor_ops.SimpleOps, fast_ops.FastOps)
    cpu_backends = {"SimpleBackend": tensor_ops.SimpleBackend}
    cpu_backends["FastTensorBackend"] = fast_ops.FastTensorBackend
    if (
        not isinstance(backend, tensor_ops.TensorBackend)
        or backend.ops is not ops
        or any(backend is cpu for cpu in cpu_backends.values())
    ):
        raise AssertionError(
            "hw2.5: CudaKernelBackend must stay TensorBackend(CudaKernelOps), as given: " + rule
        )

    def operations(table):
        """(attribute, kind) of every operation of a TensorBackend."""
        found = []
        for attribute, value in vars(table).items():
            kind = "matrix_multiply" if attribute == "matrix_multiply" else attribute.split("_")[-1]
            if callable(value) and kind in kinds:
                found.append((attribute, kind))
        return found

    def refuse(where):
        def refused(*_args, **_kwargs):
            raise AssertionError(
                f"hw2.5: {where} ran during an operation of the CUDA backend "
                f"(CudaKernelOps may not hand its work to a CPU backend): {rule}"
            )

        return refused

    def refusing_factory(where):
        return lambda *_args, **_kwargs: refuse(where)

    def watched(attribute, kind, operation):
        kernel = kinds[kind]

        def watch(*call_args, **call_kwargs):
            before = rt.launches()[kernel]
            result = operation(*call_args, **call_kwargs)
            if rt.launches()[kernel] == before and getattr(result, "size", 1) != 0:
                raise AssertionError(
                    f"hw2.5: CudaKernelOps.{kind} ran no CUDA {kernels[kernel]} kernel "
                    f"(CudaKernelBackend.{attribute}): {rule}"
                )
            return result

        return watch

    saved_classes = [(cls, vars(cls).get(m), m) for cls in cpu_classes for m in kinds]
    saved_tables = [(table, dict(vars(table))) for table in (*cpu_backends.values(), backend)]
    try:
        for cls in cpu_classes:
            for method in kinds:
                where = f"{cls.__name__}.{method}"
                make = refuse if method == "matrix_multiply" else refusing_factory
                setattr(cls, method, staticmethod(make(where)))
        for label, table in cpu_backends.items():
            for attribute, _ in operations(table):
                setattr(table, attribute, refuse(f"{label}.{attribute}"))
        # The CUDA backend's operations made anew, so one that takes a CPU
        # backend's operation when it is made gets the refusing one.
        tensor_ops.TensorBackend.__init__(backend, ops)
        for attribute, kind in operations(backend):
            setattr(backend, attribute, watched(attribute, kind, getattr(backend, attribute)))
        namespace = {"__name__": "probe"}
        exec(compile(source, f"<probe {name}>", "exec"), namespace)
        return namespace[name](*args)
    finally:
        for cls, value, method in saved_classes:
            if value is None:
                delattr(cls, method)
            else:
                setattr(cls, method, value)
        for table, state in saved_tables:
            vars(table).clear()
            vars(table).update(state)
