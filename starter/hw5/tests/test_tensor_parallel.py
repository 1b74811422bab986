"""Public tests of task hw5.6: a tensor-parallel MLP, Megatron-LM style
(tensor_parallel/mlp.py).

Every check runs on 2 and 3 ranks (`parallel.launch.run_ranks`, gloo on the
CPU), in float64, against the dense `nn.Sequential(Linear, GELU, Linear)`
computed here with PyTorch (rtol 1e-10, atol 1e-12):

- `copy_to_tensor_parallel_region` (f) and `reduce_from_tensor_parallel_region`
  (g): f is the identity forward and sums the gradient over the ranks backward;
  g sums the input over the ranks forward and passes the gradient through;
- `ParallelMLP.from_dense`: rank r holds the contiguous block r of the hidden
  features (rows of fc.weight, entries of fc.bias, columns of proj.weight) and
  the whole proj.bias;
- `ParallelMLP` forward: the dense output on every rank, for 2-D and 3-D inputs
  (so the row-parallel output is reduced, and its bias added once);
- backward of sum(out * c): the input's gradient is the dense one on every rank
  (the column-parallel layer all-reduces it), and each rank's parameter
  gradients are the matching blocks of the dense gradients;
- `ColumnParallelLinear` and `RowParallelLinear` alone, from `from_dense`: the
  rank's block of the dense output (column) or the whole dense output (row),
  and the gradients.
"""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.task("hw5.6")

TIGHT = {"rtol": 1e-10, "atol": 1e-12}
N_EMBD, HIDDEN = 4, 12


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_conjugates(world_size, xs, cs):
    """On rank r: f(xs[r]) and g(xs[r]), and the gradients of xs[r] for
    sum(f(xs[r]) * cs[r]) and sum(g(xs[r]) * cs[r]); one dict per rank."""
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        import torch
        from tensor_parallel.mlp import (
            copy_to_tensor_parallel_region,
            reduce_from_tensor_parallel_region,
        )

        c = torch.as_tensor(cs[rank])
        result = {}
        for name, fn in (
            ("f", copy_to_tensor_parallel_region),
            ("g", reduce_from_tensor_parallel_region),
        ):
            x = torch.tensor(xs[rank], dtype=torch.float64, requires_grad=True)
            out = fn(x)
            (out * c).sum().backward()
            result[f"{name}_out"] = out.detach().numpy().copy()
            result[f"{name}_grad"] = None if x.grad is None else x.grad.numpy()
        return result

    return run_ranks(on_rank, world_size, timeout_s=20)


def probe_parallel_mlp(world_size, params, x, c, approximate):
    """On every rank: `ParallelMLP.from_dense(dense, rank=, world_size=)` of the
    float64 dense MLP with `params` (fc.weight, fc.bias, proj.weight, proj.bias),
    its parameters (its shards), its output on `x`, and the gradients of
    sum(out * c) for x and each of its parameters; one dict per rank."""
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        import torch
        from tensor_parallel.mlp import ParallelMLP

        fc = torch.nn.Linear(*params["fc.weight"].shape[::-1], dtype=torch.float64)
        proj = torch.nn.Linear(*params["proj.weight"].shape[::-1], dtype=torch.float64)
        with torch.no_grad():
            for name, p in (("fc", fc), ("proj", proj)):
                p.weight.copy_(torch.as_tensor(params[f"{name}.weight"]))
                p.bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
        dense = torch.nn.Sequential(fc, torch.nn.GELU(approximate=approximate), proj)
        mlp = ParallelMLP.from_dense(dense, rank=rank, world_size=world_size)
        shards = {n: p.detach().numpy().copy() for n, p in mlp.named_parameters()}
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        out = mlp(xt)
        (out * torch.as_tensor(c)).sum().backward()
        return {
            "shards": shards,
            "out": out.detach().numpy(),
            "grad_x": None if xt.grad is None else xt.grad.numpy(),
            "grads": {
                n: None if p.grad is None else p.grad.numpy() for n, p in mlp.named_parameters()
            },
        }

    return run_ranks(on_rank, world_size, timeout_s=20)


def probe_parallel_linear(world_size, kind, weight, bias, x, c):
    """On every rank: `ColumnParallelLinear` or `RowParallelLinear` (`kind`)
    `.from_dense(linear, rank=, world_size=)` of the float64 Linear with
    `weight` and `bias`, applied to `x` (column) or to the rank's block of x's
    last dimension (row), and the gradients of sum(out * c[rank]) for that
    input and each parameter; one dict per rank."""
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        import torch
        from tensor_parallel import mlp

        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(weight))
            linear.bias.copy_(torch.as_tensor(bias))
        inputs = torch.as_tensor(x)
        if kind == "RowParallelLinear":
            k = x.shape[-1] // world_size
            inputs = inputs[..., rank * k : (rank + 1) * k]
        layer = getattr(mlp, kind).from_dense(linear, rank=rank, world_size=world_size)
        xt = inputs.clone().requires_grad_(True)
        out = layer(xt)
        (out * torch.as_tensor(c[rank])).sum().backward()
        return {
            "out": out.detach().numpy(),
            "grad_x": None if xt.grad is None else xt.grad.numpy(),
            "grads": {
                n: None if p.grad is None else p.grad.numpy() for n, p in layer.named_parameters()
            },
        }

    return run_ranks(on_rank, world_size, timeout_s=20)


# ---------------------------------------------------------------------------
# Helpers (also used by the hidden tests)
# ---------------------------------------------------------------------------


def random_mlp(n_embd, hidden, seed):
    """Dense MLP parameters named as in `ParallelMLP` (nonzero biases)."""
    rng = np.random.default_rng(seed)
    return {
        "fc.weight": rng.normal(0.0, n_embd**-0.5, (hidden, n_embd)),
        "fc.bias": rng.normal(0.0, 0.5, hidden),
        "proj.weight": rng.normal(0.0, hidden**-0.5, (n_embd, hidden)),
        "proj.bias": rng.normal(0.0, 0.5, n_embd),
    }


def dense_mlp(params, x, c, approximate="none"):
    """The dense MLP in PyTorch: output, gradient of x, and parameter gradients
    (a bias missing from `params` is no bias)."""
    leaves = {n: torch.tensor(v, requires_grad=True) for n, v in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    hidden = torch.nn.functional.linear(xt, leaves["fc.weight"], leaves.get("fc.bias"))
    hidden = torch.nn.functional.gelu(hidden, approximate=approximate)
    out = torch.nn.functional.linear(hidden, leaves["proj.weight"], leaves.get("proj.bias"))
    (out * torch.as_tensor(c)).sum().backward()
    return {
        "out": out.detach().numpy(),
        "grad_x": xt.grad.numpy(),
        "grads": {n: leaf.grad.numpy() for n, leaf in leaves.items()},
    }


def block(name, value, rank, world_size):
    """Rank `rank`'s block of a dense MLP tensor `name` (proj.bias: all of it)."""
    if name == "proj.bias":
        return value
    if name == "proj.weight":
        k = value.shape[1] // world_size
        return value[:, rank * k : (rank + 1) * k]
    k = value.shape[0] // world_size
    return value[rank * k : (rank + 1) * k]


def assert_close(got, want, what):
    assert got is not None, f"{what}: got None (no gradient?)"
    assert np.shape(got) == np.shape(want), (
        f"{what}: shape {np.shape(got)}, expected {np.shape(want)}"
    )
    np.testing.assert_allclose(got, want, err_msg=what, **TIGHT)


def run_mlp(student, world_size, shape, seed, approximate="none"):
    rng = np.random.default_rng(seed)
    params = random_mlp(N_EMBD, HIDDEN, seed)
    x = rng.normal(size=(*shape, N_EMBD))
    c = rng.normal(size=(*shape, N_EMBD))
    got = student.run(probe_parallel_mlp, world_size, params, x, c, approximate)
    assert len(got) == world_size
    return got, dense_mlp(params, x, c, approximate), params


# ---------------------------------------------------------------------------
# f and g
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [2, 3])
def test_f_and_g_are_conjugate(student, world_size):
    """f: identity forward, sum of the gradients backward; g: the reverse."""
    rng = np.random.default_rng(world_size)
    xs, cs = rng.normal(size=(2, world_size, 3, 2))
    got = student.run(probe_conjugates, world_size, xs, cs)
    for rank, r in enumerate(got):
        assert_close(r["f_out"], xs[rank], f"rank {rank}: f(x) forward (identity)")
        assert_close(r["f_grad"], cs.sum(0), f"rank {rank}: f backward (sum over ranks)")
        assert_close(r["g_out"], xs.sum(0), f"rank {rank}: g(x) forward (sum over ranks)")
        assert_close(r["g_grad"], cs[rank], f"rank {rank}: g backward (identity)")


# ---------------------------------------------------------------------------
# ParallelMLP
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [2, 3])
def test_from_dense_holds_contiguous_blocks(student, world_size):
    """Rank r: rows r of fc.weight / fc.bias, columns r of proj.weight, all of proj.bias."""
    got, _, params = run_mlp(student, world_size, (2,), seed=1)
    for rank, r in enumerate(got):
        assert set(r["shards"]) == set(params), f"parameters {sorted(r['shards'])}"
        for name, value in params.items():
            want = block(name, value, rank, world_size)
            assert_close(r["shards"][name], want, f"rank {rank}: {name}")


@pytest.mark.parametrize(("world_size", "shape"), [(2, (5,)), (3, (5,)), (3, (2, 3))])
def test_forward_matches_dense_on_every_rank(student, world_size, shape):
    """Every rank's output is the dense MLP's (row-parallel reduced, bias once)."""
    got, want, _ = run_mlp(student, world_size, shape, seed=2)
    for rank, r in enumerate(got):
        assert_close(r["out"], want["out"], f"rank {rank} of {world_size}: output")


@pytest.mark.parametrize(("world_size", "shape"), [(2, (5,)), (3, (5,)), (3, (2, 3))])
def test_input_gradient_matches_dense(student, world_size, shape):
    """Every rank's gradient of x is the dense one (f sums the blocks' parts)."""
    got, want, _ = run_mlp(student, world_size, shape, seed=3)
    for rank, r in enumerate(got):
        assert_close(r["grad_x"], want["grad_x"], f"rank {rank} of {world_size}: grad of x")


@pytest.mark.parametrize(("world_size", "shape"), [(2, (5,)), (3, (5,)), (3, (2, 3))])
def test_shard_gradients_are_dense_blocks(student, world_size, shape):
    """Each rank's parameter gradients are its blocks of the dense gradients."""
    got, want, _ = run_mlp(student, world_size, shape, seed=4)
    for rank, r in enumerate(got):
        for name, grad in want["grads"].items():
            assert name in r["grads"], f"rank {rank}: no parameter {name}"
            assert_close(
                r["grads"][name],
                block(name, grad, rank, world_size),
                f"rank {rank} of {world_size}: grad of {name}",
            )


# ---------------------------------------------------------------------------
# The layers alone
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [2, 3])
def test_column_parallel_linear_alone(student, world_size):
    """Output: the rank's block of x W^T + b; x's gradient summed over the ranks."""
    rng = np.random.default_rng(10 + world_size)
    weight, bias = rng.normal(size=(6, 4)), rng.normal(size=6)
    x, c = rng.normal(size=(3, 4)), rng.normal(size=(3, 6))
    k = 6 // world_size
    cs = np.stack([c[:, r * k : (r + 1) * k] for r in range(world_size)])
    got = student.run(
        probe_parallel_linear, world_size, "ColumnParallelLinear", weight, bias, x, cs
    )
    dense = x @ weight.T + bias
    for rank, r in enumerate(got):
        blk = slice(rank * k, (rank + 1) * k)
        assert_close(r["out"], dense[:, blk], f"rank {rank}: output block")
        assert_close(r["grad_x"], c @ weight, f"rank {rank}: grad of x")
        assert_close(r["grads"]["weight"], c[:, blk].T @ x, f"rank {rank}: grad of weight")
        assert_close(r["grads"]["bias"], c[:, blk].sum(0), f"rank {rank}: grad of bias")


@pytest.mark.parametrize("world_size", [2, 3])
def test_row_parallel_linear_alone(student, world_size):
    """Output: the whole x W^T + b on every rank (reduced, bias once); block gradients."""
    rng = np.random.default_rng(20 + world_size)
    weight, bias = rng.normal(size=(5, 6)), rng.normal(size=5)
    x, c = rng.normal(size=(3, 6)), rng.normal(size=(3, 5))
    cs = np.stack([c] * world_size)
    got = student.run(probe_parallel_linear, world_size, "RowParallelLinear", weight, bias, x, cs)
    k = 6 // world_size
    for rank, r in enumerate(got):
        blk = slice(rank * k, (rank + 1) * k)
        assert_close(r["out"], x @ weight.T + bias, f"rank {rank}: output")
        assert_close(r["grad_x"], (c @ weight)[:, blk], f"rank {rank}: grad of its block of x")
        assert_close(r["grads"]["weight"], c.T @ x[:, blk], f"rank {rank}: grad of weight")
        assert_close(r["grads"]["bias"], c.sum(0), f"rank {rank}: grad of bias")
