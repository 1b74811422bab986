"""Public tests of task hw2.5: tensors on the CUDA backend (`CudaKernelOps`).

The probes build tensors on `minitorch.cuda_kernel_ops.CudaKernelBackend` and use
them as any miniTorch tensor: arithmetic, comparisons, sums, matrix products
(2-D, batched, broadcast), `map` into a given output (what `expand` does for
gradients), backpropagation through all of these, and training the network of
hw1.6 for a few epochs. Values are compared with NumPy; the training run with
the CPU backend (`FastTensorBackend`, float64) on the same data and seed.

Every probe on the CUDA backend runs through `run_on_gpu` (cuda_cases.py):
each operation of `CudaKernelBackend` must launch a CUDA kernel of its own
kind (map, zip, reduce or matrix multiply; the provided launchers count them),
and the CPU backends refuse work meanwhile. An operation computed on the host,
with NumPy or by delegating to `SimpleOps` or `FastOps`, fails with an
AssertionError saying so, however right its numbers.

The GPU computes in float32, so the tolerances are about 1e-5 relative.
All tests need a CUDA GPU (they are skipped, saying so, without one).
"""

import numpy as np
import pytest
from cuda_cases import random_array, run_on_gpu

pytestmark = [pytest.mark.gpu, pytest.mark.task("hw2.5")]

TOL = {"rtol": 1e-5, "atol": 1e-5}


def probe_elementwise(a, b):
    """Elementwise operations of two (4, 5) tensors on the CUDA backend."""
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    x = minitorch.tensor(a.tolist(), backend=CudaKernelBackend)
    y = minitorch.tensor(b.tolist(), backend=CudaKernelBackend)
    results = {
        "add": x + y,
        "sub": x - y,
        "mul": x * y,
        "div": x / y,
        "neg": -x,
        "lt": x < y,
        "eq": x == x,
        "relu": x.relu(),
        "sigmoid": x.sigmoid(),
        "exp": x.exp(),
        "log": y.log(),
        "is_close": x.is_close(x + 0.001),
    }
    return {name: t.to_numpy() for name, t in results.items()}


def test_elementwise_operations(student):
    a, b = random_array(1, (4, 5)), random_array(2, (4, 5), 0.5, 2.0)
    got = run_on_gpu(student, probe_elementwise, a, b)
    expected = {
        "add": a + b,
        "sub": a - b,
        "mul": a * b,
        "div": a / b,
        "neg": -a,
        "lt": (a < b).astype(float),
        "eq": np.ones_like(a),
        "relu": np.maximum(a, 0),
        "sigmoid": 1 / (1 + np.exp(-a)),
        "exp": np.exp(a),
        "log": np.log(b),
        "is_close": np.ones_like(a),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, err_msg=name, **TOL)


def probe_reductions(a):
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    x = minitorch.tensor(a.tolist(), backend=CudaKernelBackend)
    return {
        "sum0": x.sum(0).to_numpy(),
        "sum2": x.sum(2).to_numpy(),
        "sum": x.sum().to_numpy(),
        "mean1": x.mean(1).to_numpy(),
        "permuted_sum": x.permute(2, 0, 1).sum(1).to_numpy(),
    }


def test_reductions(student):
    a = random_array(3, (3, 4, 5))
    got = run_on_gpu(student, probe_reductions, a)
    np.testing.assert_allclose(got["sum0"], a.sum(0, keepdims=True), **TOL)
    np.testing.assert_allclose(got["sum2"], a.sum(2, keepdims=True), **TOL)
    np.testing.assert_allclose(got["sum"].ravel(), [a.sum()], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["mean1"], a.mean(1, keepdims=True), **TOL)
    np.testing.assert_allclose(
        got["permuted_sum"], a.transpose(2, 0, 1).sum(1, keepdims=True), **TOL
    )


def probe_matmuls(a, b, c):
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    def t(x):
        return minitorch.tensor(x.tolist(), backend=CudaKernelBackend)

    x, y, z = t(a), t(b), t(c)
    return {
        "2d": (x @ y).to_numpy(),
        "transposed": (y.permute(1, 0) @ x.permute(1, 0)).to_numpy(),
        "batched": (z @ y).to_numpy(),
    }


def test_matrix_products(student):
    a, b, c = random_array(4, (6, 7)), random_array(5, (7, 3)), random_array(6, (2, 6, 7))
    got = run_on_gpu(student, probe_matmuls, a, b, c)
    np.testing.assert_allclose(got["2d"], a @ b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["transposed"], b.T @ a.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got["batched"], c @ b, rtol=1e-5, atol=1e-4)


def probe_gradients(a, b, w):
    """Gradients of sum(relu(a * b + exp(a)) @ w) + sum(a broadcast with b's column)."""
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    x = minitorch.tensor(a.tolist(), backend=CudaKernelBackend, requires_grad=True)
    y = minitorch.tensor(b.tolist(), backend=CudaKernelBackend, requires_grad=True)
    v = minitorch.tensor(w.tolist(), backend=CudaKernelBackend, requires_grad=True)
    column = y.sum(1).view(y.shape[0], 1)
    loss = ((x * y + x.exp()).relu() @ v).sum() + (x * column).sum()
    loss.backward()
    return {
        "loss": loss.item(),
        "x": x.grad.to_numpy(),
        "y": y.grad.to_numpy(),
        "v": v.grad.to_numpy(),
    }


def test_gradients_through_the_gpu(student):
    a, b, w = (
        random_array(7, (4, 5), -1, 1),
        random_array(8, (4, 5), -1, 1),
        random_array(9, (5, 3)),
    )
    got = run_on_gpu(student, probe_gradients, a, b, w)
    inner = a * b + np.exp(a)
    active = (inner > 0).astype(float)
    upstream = active * (np.ones((4, 3)) @ w.T)
    column = b.sum(1, keepdims=True)
    loss = (np.maximum(inner, 0) @ w).sum() + (a * column).sum()
    grad_a = upstream * (b + np.exp(a)) + column
    grad_b = upstream * a + a.sum(1, keepdims=True)
    grad_w = np.maximum(inner, 0).T @ np.ones((4, 3))
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(got["x"], grad_a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["y"], grad_b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["v"], grad_w, rtol=1e-4, atol=1e-4)


def probe_train(seed, epochs, use_cuda):
    """The loss history of hw1.6's network trained on the CUDA or on the CPU backend."""
    import minitorch
    from minitorch.cuda_kernel_ops import CudaKernelBackend

    backend = CudaKernelBackend if use_cuda else minitorch.FastTensorBackend
    data = minitorch.DATASETS["split"](40, seed=seed)
    history = minitorch.train(data, 8, 0.5, epochs, backend=backend, seed=seed, target_accuracy=2.0)
    return [epoch.loss for epoch in history]


def test_training_on_the_gpu_follows_the_cpu(student):
    cuda = run_on_gpu(student, probe_train, 3, 15, True)
    cpu = student.run(probe_train, 3, 15, False)
    assert len(cuda) == len(cpu) > 0
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-4)
