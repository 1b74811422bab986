"""Public tests of tasks hw2.1-hw2.4: the CUDA kernels of kernels/combine.cu.

Each test launches one of your kernels through `minitorch.cuda_runtime` (the
probe `probe_kernel` of cuda_cases.py) and compares its output with NumPy:

- hw2.1 map: every function of one argument; inputs stored in any dimension
  order, with gaps, and broadcast into a larger output; sizes that are not a
  multiple of the block size (the last block has threads to spare);
- hw2.2 zip: every function of two arguments (`lt` tells fn(a, b) from
  fn(b, a)); broadcasting both ways; permuted inputs;
- hw2.3 reduce: sum and product along every dimension, rows shorter and much
  longer than a block, many rows, permuted inputs;
- hw2.4 matrix multiply: sizes below, at and above the tile size and not a
  multiple of it, rectangular, batched, a batch of 1 broadcast against a batch
  of n, transposed operands.

Every output is also checked for writes outside it: the probe puts guard
numbers after the output and keeps the gaps between its numbers, so a bounds
check off by one shows. A kernel that writes nothing at all (the starter)
fails with NotImplementedError naming its task.

All tests need a CUDA GPU (they are skipped, saying so, without one). The
first test builds the library with nvcc (a few seconds); when graded, each
test may take up to 60 seconds for that reason. Run them with
`pytest tests/test_cuda_kernels.py -k matmul` (one topic) or all of them.
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
    spec,
)

pytestmark = pytest.mark.gpu

MAPS = {
    "id": lambda x: x,
    "neg": lambda x: -x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "exp": np.exp,
    "log": np.log,
    "inv": lambda x: 1.0 / x,
}
#: Inputs each map is defined on (log and inv of numbers away from 0).
POSITIVE = {"log", "inv"}

ZIPS = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "lt": lambda x, y: (x < y).astype(float),
    "eq": lambda x, y: (x == y).astype(float),
    "is_close": lambda x, y: (np.abs(x - y) < 1e-2).astype(float),
    "max": np.maximum,
    "relu_back": lambda x, d: np.where(x > 0, d, 0.0),
    "log_back": lambda x, d: d / x,
    "inv_back": lambda x, d: -d / (x * x),
}


def map_input(name, seed, shape):
    if name in POSITIVE:
        return random_array(seed, shape, 0.5, 3.0)
    return random_array(seed, shape)


# ---------------------------------------------------------------------------
# hw2.1 map
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.1")
@pytest.mark.parametrize("name", sorted(MAPS))
def test_map_functions(student, name):
    x = map_input(name, 1, (3, 4, 5))
    result = student.run(probe_kernel, "map", name, out_spec(x.shape), [spec(x)])
    check(result, MAPS[name](x), f"map {name}")


@pytest.mark.task("hw2.1")
@pytest.mark.parametrize(("order", "gap"), [((1, 0, 2), 1), ((2, 1, 0), 2), ((0, 1, 2), 3)])
def test_map_permuted_input_and_output(student, order, gap):
    x = random_array(2, (4, 3, 6))
    result = student.run(
        probe_kernel, "map", "neg", out_spec(x.shape, order[::-1], gap), [spec(x, order, gap)]
    )
    check(result, -x, f"map neg, input stored in order {order} with gap {gap}")


@pytest.mark.task("hw2.1")
@pytest.mark.parametrize(("small", "big"), [((1,), (7,)), ((5,), (3, 5)), ((4, 1), (2, 4, 3))])
def test_map_broadcasts_into_larger_output(student, small, big):
    x = random_array(3, small)
    result = student.run(probe_kernel, "map", "id", out_spec(big), [spec(x)])
    check(result, np.broadcast_to(x, big), f"map id of {small} into {big}")


@pytest.mark.task("hw2.1")
@pytest.mark.parametrize("size", [1, 255, 256, 257, 100_003])
def test_map_sizes_around_the_block(student, size):
    x = random_array(4, (size,))
    result = student.run(probe_kernel, "map", "relu", out_spec(x.shape), [spec(x)])
    check(result, np.maximum(x, 0.0), f"map relu of {size} numbers")


# ---------------------------------------------------------------------------
# hw2.2 zip
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.2")
@pytest.mark.parametrize("name", sorted(ZIPS))
def test_zip_functions(student, name):
    x = random_array(5, (4, 6), 0.5, 3.0)
    y = random_array(6, (4, 6), -3.0, 3.0)
    y[0, :3] = x[0, :3]  # equal pairs for eq and is_close
    result = student.run(probe_kernel, "zip", name, out_spec(x.shape), [spec(x), spec(y)])
    check(result, ZIPS[name](x, y), f"zip {name}")


@pytest.mark.task("hw2.2")
@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((3, 1), (1, 5)), ((5,), (4, 5)), ((2, 1, 4), (3, 1)), ((1,), (6, 2)), ((4, 5), (4, 5))],
)
def test_zip_broadcasts(student, a_shape, b_shape):
    a, b = random_array(7, a_shape), random_array(8, b_shape)
    shape = np.broadcast_shapes(a_shape, b_shape)
    result = student.run(probe_kernel, "zip", "lt", out_spec(shape), [spec(a), spec(b)])
    check(result, (a < b).astype(float), f"zip lt of {a_shape} and {b_shape}")


@pytest.mark.task("hw2.2")
def test_zip_permuted_and_expanded_inputs(student):
    a = random_array(9, (5, 4, 3))
    b = random_array(10, (4, 1))
    result = student.run(
        probe_kernel,
        "zip",
        "add",
        out_spec((5, 4, 3), gap=2),
        [spec(a, (2, 0, 1), 2), broadcast_spec(b, (5, 4, 3))],
    )
    check(result, a + b, "zip add, permuted a and b expanded with strides of 0")


@pytest.mark.task("hw2.2")
def test_zip_large(student):
    a, b = random_array(11, (1000, 301)), random_array(12, (301,))
    result = student.run(probe_kernel, "zip", "mul", out_spec(a.shape), [spec(a), spec(b)])
    check(result, a * b, "zip mul of (1000, 301) and (301,)")


# ---------------------------------------------------------------------------
# hw2.3 reduce
# ---------------------------------------------------------------------------


def reduced(shape, dim):
    return tuple(1 if k == dim else n for k, n in enumerate(shape))


@pytest.mark.task("hw2.3")
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_sum_along_each_dim(student, dim):
    x = random_array(13, (4, 5, 6))
    result = student.run(
        probe_kernel, "reduce", "add", out_spec(reduced(x.shape, dim)), [spec(x)], 0.0, dim
    )
    check(result, x.sum(axis=dim, keepdims=True), f"sum along dim {dim}", rtol=1e-5, atol=1e-4)


@pytest.mark.task("hw2.3")
@pytest.mark.parametrize("dim", [0, 1])
def test_product_along_each_dim(student, dim):
    x = random_array(14, (6, 7), 0.8, 1.25)
    result = student.run(
        probe_kernel, "reduce", "mul", out_spec(reduced(x.shape, dim)), [spec(x)], 1.0, dim
    )
    check(result, x.prod(axis=dim, keepdims=True), f"product along dim {dim}", rtol=1e-5)


@pytest.mark.task("hw2.3")
@pytest.mark.parametrize("length", [1, 31, 256, 257, 1000, 40_000])
def test_sum_rows_of_any_length(student, length):
    x = random_array(15, (3, length))
    result = student.run(
        probe_kernel, "reduce", "add", out_spec((3, 1)), [spec(x)], 0.0, 1
    )  # fmt: skip
    check(result, x.sum(axis=1, keepdims=True), f"sum of rows of {length}", rtol=1e-4, atol=1e-3)


@pytest.mark.task("hw2.3")
def test_max_of_many_short_rows(student):
    x = random_array(16, (5000, 3))
    result = student.run(
        probe_kernel, "reduce", "max", out_spec((5000, 1)), [spec(x)], -np.inf, 1
    )  # fmt: skip
    check(result, x.max(axis=1, keepdims=True), "max of 5000 rows of 3")


@pytest.mark.task("hw2.3")
def test_sum_of_permuted_input_into_gapped_output(student):
    x = random_array(17, (6, 300, 2))
    result = student.run(
        probe_kernel,
        "reduce",
        "add",
        out_spec((6, 1, 2), (2, 0, 1), 2),
        [spec(x, (1, 2, 0), 2)],
        0.0,
        1,
    )
    check(result, x.sum(axis=1, keepdims=True), "sum of a permuted input", rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------
# hw2.4 matrix multiply
# ---------------------------------------------------------------------------


@pytest.mark.task("hw2.4")
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 64, 65, 100, 128, 129])
def test_matmul_square(student, n):
    a, b = random_array(18, (1, n, n)), random_array(19, (1, n, n))
    check(run_matmul(student, a, b), a @ b, f"{n} x {n} matrices", rtol=1e-4, atol=1e-3)


@pytest.mark.task("hw2.4")
@pytest.mark.parametrize(
    ("i", "k", "j"), [(1, 70, 1), (33, 70, 17), (3, 1, 5), (130, 9, 70), (70, 300, 2)]
)
def test_matmul_rectangular(student, i, k, j):
    a, b = random_array(20, (1, i, k)), random_array(21, (1, k, j))
    check(run_matmul(student, a, b), a @ b, f"({i}, {k}) @ ({k}, {j})", rtol=1e-4, atol=1e-3)


@pytest.mark.task("hw2.4")
@pytest.mark.parametrize(("a_batch", "b_batch"), [(3, 3), (1, 4), (4, 1)])
def test_matmul_batched_and_broadcast(student, a_batch, b_batch):
    a, b = random_array(22, (a_batch, 20, 30)), random_array(23, (b_batch, 30, 10))
    check(
        run_matmul(student, a, b),
        a @ b,
        f"batches {a_batch} and {b_batch}",
        rtol=1e-4,
        atol=1e-3,
    )


@pytest.mark.task("hw2.4")
def test_matmul_transposed_operands(student):
    a, b = random_array(24, (2, 40, 50)), random_array(25, (2, 50, 30))
    result = run_matmul(student, a, b, (0, 2, 1), (2, 1, 0))
    check(result, a @ b, "operands stored transposed", rtol=1e-4, atol=1e-3)


@pytest.mark.task("hw2.4")
def test_matmul_large(student):
    a, b = random_array(26, (1, 513, 300), -1, 1), random_array(27, (1, 300, 257), -1, 1)
    check(run_matmul(student, a, b), a @ b, "(513, 300) @ (300, 257)", rtol=1e-4, atol=1e-3)
