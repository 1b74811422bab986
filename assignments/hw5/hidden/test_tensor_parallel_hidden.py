"""Hidden tests of task hw5.6 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- `ParallelMLP` on 1 and 4 ranks, and with wider layers (n_embd 8, hidden 32);
- without biases (`nn.Linear(..., bias=False)`), and with the tanh GELU
  (`nn.GELU(approximate="tanh")`: the parallel MLP uses the dense one's GELU);
- a residual connection `mlp(x) + x`: the input's gradient is the dense one
  plus c on every rank;
- two forward and backward passes in a row: the shard gradients accumulate to
  the blocks of the dense accumulated gradients;
- `f` and `g` leave their input unchanged, on 4 ranks too;
- `ColumnParallelLinear` and `RowParallelLinear` alone on 4 ranks, 3-D inputs.

Conventions: float64, against PyTorch's dense MLP (rtol 1e-10, atol 1e-12, as
in the public tests).
"""

import numpy as np
import pytest
from test_tensor_parallel import (
    assert_close,
    block,
    dense_mlp,
    probe_conjugates,
    probe_parallel_linear,
    random_mlp,
    run_mlp,
)

pytestmark = pytest.mark.task("hw5.6")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_mlp_steps(world_size, params, xs, cs, approximate, residual):
    """On every rank: `ParallelMLP.from_dense` of the dense MLP with `params`
    (a missing bias: a Linear without bias), run forward and backward on each
    (xs[s], cs[s]) in turn, the loss sum(out * c) with out = mlp(x) (+ x when
    `residual`); the outputs, each x's gradient, the accumulated parameter
    gradients, and whether each x was left unchanged; one dict per rank."""
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        import torch
        from tensor_parallel.mlp import ParallelMLP

        def linear(name):
            weight = params[f"{name}.weight"]
            layer = torch.nn.Linear(
                weight.shape[1], weight.shape[0], bias=f"{name}.bias" in params, dtype=torch.float64
            )
            with torch.no_grad():
                layer.weight.copy_(torch.as_tensor(weight))
                if layer.bias is not None:
                    layer.bias.copy_(torch.as_tensor(params[f"{name}.bias"]))
            return layer

        dense = torch.nn.Sequential(
            linear("fc"), torch.nn.GELU(approximate=approximate), linear("proj")
        )
        outs, grads_x, unchanged = [], [], []
        mlp = ParallelMLP.from_dense(dense, rank=rank, world_size=world_size)
        for x, c in zip(xs, cs, strict=True):
            xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            out = mlp(xt) + xt if residual else mlp(xt)
            (out * torch.as_tensor(c)).sum().backward()
            outs.append(out.detach().numpy())
            grads_x.append(None if xt.grad is None else xt.grad.numpy())
            unchanged.append(bool(torch.equal(xt.detach(), torch.as_tensor(x))))
        return {
            "outs": outs,
            "grads_x": grads_x,
            "unchanged": unchanged,
            "grads": {
                n: None if p.grad is None else p.grad.numpy() for n, p in mlp.named_parameters()
            },
        }

    return run_ranks(on_rank, world_size, timeout_s=20)


def probe_conjugates_keep_input(world_size, xs):
    """On rank r: whether f(xs[r]) and g(xs[r]) left xs[r] unchanged (forward and
    backward of sum(out)); one dict per rank."""
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        import torch
        from tensor_parallel.mlp import (
            copy_to_tensor_parallel_region,
            reduce_from_tensor_parallel_region,
        )

        result = {}
        for name, fn in (
            ("f", copy_to_tensor_parallel_region),
            ("g", reduce_from_tensor_parallel_region),
        ):
            x = torch.tensor(xs[rank], dtype=torch.float64, requires_grad=True)
            fn(x).sum().backward()
            result[name] = bool(torch.equal(x.detach(), torch.as_tensor(xs[rank])))
        return result

    return run_ranks(on_rank, world_size, timeout_s=20)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run_steps(student, world_size, params, shape, steps, seed, approximate="none", residual=False):
    """The probe's answer and the dense answers of each step."""
    n_embd = params["fc.weight"].shape[1]
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(steps, *shape, n_embd))
    cs = rng.normal(size=(steps, *shape, n_embd))
    got = student.run(probe_mlp_steps, world_size, params, xs, cs, approximate, residual)
    assert len(got) == world_size
    want = [dense_mlp(params, x, c, approximate) for x, c in zip(xs, cs, strict=True)]
    if residual:
        for w, x, c in zip(want, xs, cs, strict=True):
            w["out"] = w["out"] + x
            w["grad_x"] = w["grad_x"] + c
    return got, want


def check_steps(got, want, world_size, what):
    for rank, r in enumerate(got):
        where = f"{what}, rank {rank} of {world_size}"
        for s, w in enumerate(want):
            assert_close(r["outs"][s], w["out"], f"{where}: output of pass {s}")
            assert_close(r["grads_x"][s], w["grad_x"], f"{where}: grad of x in pass {s}")
            assert r["unchanged"][s], f"{where}: the MLP changed its input x in pass {s}"
        assert set(r["grads"]) == set(want[0]["grads"]), f"{where}: parameters {sorted(r['grads'])}"
        for name in want[0]["grads"]:
            total = sum(w["grads"][name] for w in want)
            assert_close(
                r["grads"][name],
                block(name, total, rank, world_size),
                f"{where}: grad of {name}",
            )


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 4])
def test_mlp_on_one_and_four_ranks(student, world_size):
    """Forward, input gradient and shard gradients on 1 and 4 ranks."""
    got, want, _ = run_mlp(student, world_size, (3, 2), seed=30 + world_size)
    for rank, r in enumerate(got):
        assert_close(r["out"], want["out"], f"rank {rank} of {world_size}: output")
        assert_close(r["grad_x"], want["grad_x"], f"rank {rank} of {world_size}: grad of x")
        for name, grad in want["grads"].items():
            assert_close(
                r["grads"][name],
                block(name, grad, rank, world_size),
                f"rank {rank} of {world_size}: grad of {name}",
            )


@pytest.mark.parametrize("world_size", [2, 4])
def test_wider_mlp(student, world_size):
    """n_embd 8, hidden 32, a (2, 5, 8) input."""
    params = random_mlp(8, 32, seed=40)
    got, want = run_steps(student, world_size, params, (2, 5), steps=1, seed=41)
    check_steps(got, want, world_size, "n_embd 8, hidden 32")


@pytest.mark.parametrize("world_size", [2, 3])
def test_mlp_without_biases(student, world_size):
    """Linear layers without bias: no bias parameter, the same output and gradients."""
    params = random_mlp(4, 12, seed=50)
    del params["fc.bias"], params["proj.bias"]
    got, want = run_steps(student, world_size, params, (4,), steps=1, seed=51)
    check_steps(got, want, world_size, "no biases")


@pytest.mark.parametrize("world_size", [2, 3])
def test_mlp_with_tanh_gelu(student, world_size):
    """The dense MLP's GELU(approximate="tanh") is the one used."""
    params = random_mlp(4, 12, seed=60)
    got, want = run_steps(student, world_size, params, (4,), steps=1, seed=61, approximate="tanh")
    check_steps(got, want, world_size, "tanh GELU")


@pytest.mark.parametrize("world_size", [2, 3])
def test_mlp_in_a_residual_connection(student, world_size):
    """out = mlp(x) + x: x's gradient is the dense one plus c on every rank."""
    params = random_mlp(4, 12, seed=70)
    got, want = run_steps(student, world_size, params, (3,), steps=1, seed=71, residual=True)
    check_steps(got, want, world_size, "mlp(x) + x")


@pytest.mark.parametrize("world_size", [2, 3])
def test_gradients_accumulate_over_two_passes(student, world_size):
    """Two passes: each output and x gradient right, the shard gradients summed."""
    params = random_mlp(4, 12, seed=80)
    got, want = run_steps(student, world_size, params, (3,), steps=2, seed=81)
    check_steps(got, want, world_size, "two passes")


@pytest.mark.parametrize("world_size", [2, 4])
def test_f_and_g_leave_their_input_unchanged(student, world_size):
    """f(x) and g(x), forward and backward, do not write into x; the conjugate
    pair holds on 4 ranks too."""
    rng = np.random.default_rng(90 + world_size)
    xs, cs = rng.normal(size=(2, world_size, 2, 3))
    for rank, r in enumerate(student.run(probe_conjugates_keep_input, world_size, xs)):
        assert r["f"], f"rank {rank}: f changed its input"
        assert r["g"], f"rank {rank}: g changed its input"
    for rank, r in enumerate(student.run(probe_conjugates, world_size, xs, cs)):
        assert_close(r["f_grad"], cs.sum(0), f"rank {rank}: f backward (sum over ranks)")
        assert_close(r["g_out"], xs.sum(0), f"rank {rank}: g(x) forward (sum over ranks)")
        assert_close(r["g_grad"], cs[rank], f"rank {rank}: g backward (identity)")


def test_column_and_row_layers_on_four_ranks_3d(student):
    """ColumnParallelLinear and RowParallelLinear alone, 4 ranks, (2, 3, features) inputs."""
    world_size = 4
    rng = np.random.default_rng(100)
    weight, bias = rng.normal(size=(8, 4)), rng.normal(size=8)
    x, c = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 8))
    cs = np.stack([c[..., r * 2 : (r + 1) * 2] for r in range(world_size)])
    got = student.run(
        probe_parallel_linear, world_size, "ColumnParallelLinear", weight, bias, x, cs
    )
    dense = x @ weight.T + bias
    for rank, r in enumerate(got):
        blk = slice(rank * 2, (rank + 1) * 2)
        assert_close(r["out"], dense[..., blk], f"column, rank {rank}: output block")
        assert_close(r["grad_x"], c @ weight, f"column, rank {rank}: grad of x")
        flat_c, flat_x = c[..., blk].reshape(-1, 2), x.reshape(-1, 4)
        assert_close(
            r["grads"]["weight"], flat_c.T @ flat_x, f"column, rank {rank}: grad of weight"
        )

    weight, bias = rng.normal(size=(3, 8)), rng.normal(size=3)
    x, c = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 3, 3))
    got = student.run(
        probe_parallel_linear, world_size, "RowParallelLinear", weight, bias, x, np.stack([c] * 4)
    )
    for rank, r in enumerate(got):
        blk = slice(rank * 2, (rank + 1) * 2)
        assert_close(r["out"], x @ weight.T + bias, f"row, rank {rank}: output")
        assert_close(r["grad_x"], (c @ weight)[..., blk], f"row, rank {rank}: grad of x block")
        assert_close(r["grads"]["bias"], c.sum((0, 1)), f"row, rank {rank}: grad of bias")
