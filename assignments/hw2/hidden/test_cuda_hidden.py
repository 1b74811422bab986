"""Hidden tests of hw2 (never shipped to students; students see names and outcomes).

Stronger than the public tests, with the same probe (cuda_cases.probe_kernel,
which also catches writes outside the output and kernels that write nothing):
- random layouts of up to 4 dimensions for every kernel: any dimension order,
  gaps between numbers, inputs broadcast with strides of 0, outputs stored
  permuted and with gaps;
- sizes that are not multiples of the block or the tile: matrices of 1 to 200
  rows and columns, inner dimensions of 1 to 300, batches broadcast both ways;
- large tensors: 4 million numbers mapped and zipped, rows of a million summed,
  a 1024 x 1024 matrix product;
- hw2.5: random chains of operations with backpropagation on the CUDA backend,
  against the same chains on the CPU backend run by the reference; every
  operation on the CUDA backend must launch a kernel of its kind, with the CPU
  backends refusing work (cuda_cases.run_on_gpu);
- timing (the grader's `timing` fixture): matrix multiply (hw2.4) and row sums
  (hw2.3) against the reference kernels on the same GPU, inputs made on the GPU
  from a fresh seed each repetition.
Every case is derived from fixed seeds, so a grading run can be repeated.
"""

import numpy as np
import pytest
from cuda_cases import (
    broadcast_spec,
    check,
    out_spec,
    probe_kernel,
    random_array,
    run_matmul,
    run_on_gpu,
    spec,
)

pytestmark = pytest.mark.gpu

MAPS = {
    "neg": lambda x: -x,
    "exp": np.exp,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
}
ZIPS = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "lt": lambda x, y: (x < y).astype(float),
    "max": np.maximum,
}


def layout(rng, dims=None, most=7):
    """(shape, order, gap) of a random layout."""
    dims = dims or int(rng.integers(1, 5))
    shape = tuple(int(n) for n in rng.integers(1, most + 1, size=dims))
    order = tuple(int(k) for k in rng.permutation(dims))
    return shape, order, int(rng.integers(1, 4))


def smaller(rng, shape):
    """A shape that broadcasts to `shape`: leading dimensions dropped, some set to 1."""
    drop = int(rng.integers(0, len(shape)))
    return tuple(1 if rng.random() < 0.4 else n for n in shape[drop:])


# ---------------------------------------------------------------------------
# hw2.1 map
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.1")
@pytest.mark.parametrize("seed", range(12))
def test_map_random_layouts(student, seed):
    rng = np.random.default_rng(100 + seed)
    shape, _, gap = layout(rng)
    small = smaller(rng, shape)
    name = sorted(MAPS)[seed % len(MAPS)]
    x = random_array(seed, small)
    out_order = tuple(int(k) for k in rng.permutation(len(shape)))
    result = student.run(
        probe_kernel, "map", name, out_spec(shape, out_order, gap), [spec(x, None, 2)]
    )
    check(result, np.broadcast_to(MAPS[name](x), shape), f"map {name} of {small} into {shape}")


@pytest.mark.task("hw2.1")
def test_map_four_million_numbers(student):
    x = random_array(1, (2000, 2001))
    result = student.run(probe_kernel, "map", "neg", out_spec(x.shape), [spec(x)])
    check(result, -x, "map neg of (2000, 2001)")


@pytest.mark.task("hw2.1")
def test_map_expanded_input(student):
    x = random_array(2, (1, 5))
    result = student.run(
        probe_kernel, "map", "exp", out_spec((300, 5), (1, 0)), [broadcast_spec(x, (300, 5))]
    )
    check(result, np.broadcast_to(np.exp(x), (300, 5)), "map exp of an expanded row")


# ---------------------------------------------------------------------------
# hw2.2 zip
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.2")
@pytest.mark.parametrize("seed", range(12))
def test_zip_random_layouts(student, seed):
    rng = np.random.default_rng(200 + seed)
    shape, _, gap = layout(rng)
    a_shape, b_shape = smaller(rng, shape), smaller(rng, shape)
    full = np.broadcast_shapes(a_shape, b_shape)
    name = sorted(ZIPS)[seed % len(ZIPS)]
    a, b = random_array(seed, a_shape), random_array(seed + 50, b_shape)
    a_order = tuple(int(k) for k in rng.permutation(len(a_shape)))
    result = student.run(
        probe_kernel,
        "zip",
        name,
        out_spec(full, None, gap),
        [spec(a, a_order, gap), spec(b, None, 1 + seed % 2)],
    )
    check(result, ZIPS[name](a, b), f"zip {name} of {a_shape} and {b_shape}")


@pytest.mark.task("hw2.2")
def test_zip_large_broadcast(student):
    a, b = random_array(3, (2048, 1)), random_array(4, (2048,))
    result = student.run(probe_kernel, "zip", "add", out_spec((2048, 2048)), [spec(a), spec(b)])
    check(result, a + b, "zip add of (2048, 1) and (2048,)")


@pytest.mark.task("hw2.2")
def test_zip_argument_order(student):
    a, b = random_array(5, (7, 9), 0.5, 2), random_array(6, (7, 9), 0.5, 2)
    result = student.run(probe_kernel, "zip", "log_back", out_spec((7, 9)), [spec(a), spec(b)])
    check(result, b / a, "zip log_back(a, b) = b / a")


# ---------------------------------------------------------------------------
# hw2.3 reduce
# ---------------------------------------------------------------------------

REDUCES = {"add": (0.0, np.sum), "mul": (1.0, np.prod), "max": (-np.inf, np.max)}


@pytest.mark.task("hw2.3")
@pytest.mark.parametrize("seed", range(12))
def test_reduce_random_layouts(student, seed):
    rng = np.random.default_rng(300 + seed)
    shape, order, gap = layout(rng, most=9)
    dim = int(rng.integers(0, len(shape)))
    name = sorted(REDUCES)[seed % len(REDUCES)]
    start, numpy_fn = REDUCES[name]
    x = random_array(seed, shape, 0.7, 1.3) if name == "mul" else random_array(seed, shape)
    out_shape = tuple(1 if k == dim else n for k, n in enumerate(shape))
    result = student.run(
        probe_kernel,
        "reduce",
        name,
        out_spec(out_shape, order, gap),
        [spec(x, order, gap)],
        start,
        dim,
    )
    expected = numpy_fn(x, axis=dim, keepdims=True)
    check(result, expected, f"{name} over dim {dim} of {shape}", rtol=1e-5, atol=1e-4)


@pytest.mark.task("hw2.3")
@pytest.mark.parametrize("length", [2, 33, 511, 1_000_000])
def test_reduce_long_rows(student, length):
    x = random_array(7, (2, length), 0.0, 1.0)
    result = student.run(probe_kernel, "reduce", "add", out_spec((2, 1)), [spec(x)], 0.0, 1)
    check(result, x.sum(1, keepdims=True), f"sums of rows of {length}", rtol=1e-4, atol=1e-3)


@pytest.mark.task("hw2.3")
def test_reduce_expanded_input(student):
    x = random_array(8, (1, 40))
    result = student.run(
        probe_kernel, "reduce", "add", out_spec((1, 40)), [broadcast_spec(x, (300, 40))], 0.0, 0
    )
    check(result, 300 * x, "sum over an expanded dimension", rtol=1e-5, atol=1e-3)


@pytest.mark.task("hw2.3")
def test_max_of_negative_numbers(student):
    x = random_array(9, (50, 600), -9.0, -1.0)
    result = student.run(
        probe_kernel, "reduce", "max", out_spec((50, 1)), [spec(x)], -np.inf, 1
    )  # fmt: skip
    check(result, x.max(1, keepdims=True), "max of rows of negative numbers")


# ---------------------------------------------------------------------------
# hw2.4 matrix multiply
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.4")
@pytest.mark.parametrize("seed", range(16))
def test_matmul_random_shapes(student, seed):
    rng = np.random.default_rng(400 + seed)
    i, k, j = (int(n) for n in rng.integers(1, 201, size=3))
    k = k if seed % 4 else int(rng.integers(250, 301))
    batch = int(rng.integers(1, 4))
    a_batch, b_batch = [(batch, batch), (1, batch), (batch, 1)][seed % 3]
    a, b = (
        random_array(seed, (a_batch, i, k), -1, 1),
        random_array(seed + 9, (b_batch, k, j), -1, 1),
    )
    orders = [None, (0, 2, 1), (2, 1, 0), (1, 0, 2)]
    result = run_matmul(
        student, a, b, orders[seed % 4], orders[(seed // 4) % 4], orders[(seed + 1) % 4]
    )
    check(result, a @ b, f"({a_batch}, {i}, {k}) @ ({b_batch}, {k}, {j})", rtol=1e-4, atol=1e-4)


@pytest.mark.task("hw2.4")
def test_matmul_1024(student):
    a, b = random_array(10, (1, 1024, 1024), -1, 1), random_array(11, (1, 1024, 1024), -1, 1)
    check(run_matmul(student, a, b), a @ b, "1024 x 1024 matrices", rtol=1e-3, atol=1e-3)


@pytest.mark.task("hw2.4")
def test_matmul_many_batches(student):
    a, b = random_array(12, (70, 9, 13)), random_array(13, (70, 13, 5))
    check(run_matmul(student, a, b), a @ b, "a batch of 70", rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# hw2.5 the CUDA backend, against the reference on the CPU
# ---------------------------------------------------------------------------


def probe_chain(seed, use_cuda):
    """A random chain of tensor operations and its gradients, on the CUDA backend
    or on the CPU backend."""
    import random

    import minitorch
    import numpy as np

    if use_cuda:
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = minitorch.FastTensorBackend
    rng = random.Random(seed)
    data = np.random.default_rng(seed)
    a = minitorch.tensor(data.uniform(-1, 1, (3, 4)).tolist(), backend=backend, requires_grad=True)
    b = minitorch.tensor(data.uniform(-1, 1, (4, 5)).tolist(), backend=backend, requires_grad=True)
    c = minitorch.tensor(data.uniform(-1, 1, (5,)).tolist(), backend=backend, requires_grad=True)
    x = a @ b
    for _ in range(6):
        step = rng.choice(["add", "mul", "relu", "sigmoid", "exp", "permute", "sum", "neg"])
        if step == "add":
            x = x + c
        elif step == "mul":
            x = x * c
        elif step == "relu":
            x = x.relu()
        elif step == "sigmoid":
            x = x.sigmoid()
        elif step == "exp":
            x = (x * 0.1).exp()
        elif step == "permute":
            x = (x.permute(1, 0) * 1.0).permute(1, 0)
        elif step == "sum":
            x = x.sum(1) * c
        else:
            x = -x
    loss = x.sum()
    loss.backward()
    return {
        "loss": loss.item(),
        "a": a.grad.to_numpy(),
        "b": b.grad.to_numpy(),
        "c": c.grad.to_numpy() if c.grad is not None else np.zeros(5),
    }


@pytest.mark.task("hw2.5")
@pytest.mark.parametrize("seed", range(6))
def test_gradients_match_the_cpu(student, reference, seed):
    got = run_on_gpu(student, probe_chain, seed, True)
    expected = reference.run(probe_chain, seed, False)
    for name in ("loss", "a", "b", "c"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)


def probe_map_into_out(a, shape):
    """`id_map` of `a` into a given output (how gradients are expanded)."""
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    x = minitorch.tensor(a.tolist(), backend=CudaKernelBackend)
    out = minitorch.zeros(tuple(shape), backend=CudaKernelBackend).permute(1, 0)
    CudaKernelBackend.id_map(x, out)
    return out.to_numpy()


@pytest.mark.task("hw2.5")
def test_map_into_a_permuted_out(student):
    a = random_array(14, (4,))
    got = run_on_gpu(student, probe_map_into_out, a, [4, 3])
    np.testing.assert_allclose(got, np.broadcast_to(a, (3, 4)), rtol=1e-6)


# ---------------------------------------------------------------------------
# Speed against the reference (grading harness only: the `timing` fixture)
# ---------------------------------------------------------------------------


def probe_time_matmul(seed, size, reps, keep):
    """Timed: `reps` products of two (size, size) matrices made on the GPU from seed + i."""
    from minitorch import cuda_runtime as rt

    shape, strides = [1, size, size], [size * size, size, 1]
    a, b, out = (rt.DeviceArray(size * size) for _ in range(3))
    sums, kept = [], None
    for i in range(reps):
        a.fill_uniform(2 * (seed + i))
        b.fill_uniform(2 * (seed + i) + 1)
        rt.matrix_multiply(out, shape, strides, a, shape, strides, b, shape, strides)
        sums.append(out.sum())
        if i == keep:
            kept = out.to_numpy().reshape(size, size)
    return {"sums": sums, "kept": kept}


def probe_time_reduce(seed, size, reps, keep):
    """Timed: `reps` row sums of a (size, size) matrix made on the GPU from seed + i."""
    from minitorch import cuda_runtime as rt

    a, out = rt.DeviceArray(size * size), rt.DeviceArray(size)
    sums, kept = [], None
    for i in range(reps):
        a.fill_uniform(seed + i)
        rt.tensor_reduce(
            rt.FN_IDS["add"], 0.0, out, [size, 1], [1, 1], a, [size, size], [size, 1], 1
        )
        sums.append(out.sum())
        if i == keep:
            kept = out.to_numpy()
    return {"sums": sums, "kept": kept}


@pytest.mark.task("hw2.4")
@pytest.mark.timing("cuda-matmul")
@pytest.mark.time_limit(300)
def test_matmul_speed(timing):
    """Products of (n, n) matrices, n in the check's sizes, timed against the reference
    kernel; the credit follows the time ratio."""
    timing.compare(probe_time_matmul, rtol=1e-3, atol=1.0)


@pytest.mark.task("hw2.3")
@pytest.mark.timing("cuda-reduce")
@pytest.mark.time_limit(300)
def test_reduce_speed(timing):
    """Row sums of an (n, n) matrix timed against the reference kernel."""
    timing.compare(probe_time_reduce, rtol=1e-3, atol=1.0)
