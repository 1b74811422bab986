"""Hidden tests of task hw5.4 (never shipped to students; students see names and outcomes).

Stronger than the public tests (the single-process baseline is the reference's
run of `probe_single_process`; tolerances as in the public tests: rtol 1e-9,
atol 1e-12):

- `shard_bounds` against the reference on seeded random sizes with zeros, all
  sizes zero, more ranks than parameters, up to 8 ranks;
- a rank reads only its own shard's gradients: the gradients of the
  parameters it does not own are NaN, and the result is still AdamW's (3 ranks);
- SGD with momentum (any optimizer class works), 2 ranks; tied weights and
  frozen parameters (no state for them), 4 ranks; a single rank;
- a rank whose shard is empty (one parameter holds most elements): no local
  optimizer there, and the parameters are still the reference's, on 3 ranks.
"""

import random

import numpy as np
import pytest
from data_parallel_common import CONFIG, SEQ_LEN, probe_single_process
from test_zero import RANKS_TIMEOUT_S, check_zero_run, expected_bounds, probe_zero_training

pytestmark = pytest.mark.task("hw5.4")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_shard_bounds_many(cases):
    """shard_bounds(sizes, world_size) for each [sizes, world_size] of `cases`."""
    from data_parallel.zero import shard_bounds

    return [[int(b) for b in shard_bounds(list(sizes), ws)] for sizes, ws in cases]


def probe_parameter_names(config):
    """The names of GPT(config)'s parameters in `parameters()` order (given code only)."""
    import torch
    from parallel.model import GPT, GPTConfig

    return [name for name, _ in GPT(GPTConfig(**config), dtype=torch.float64).named_parameters()]


def probe_zero_empty_shard(world_size, sizes, steps, timeout_s):
    """Each rank: float64 parameters of `sizes` elements (seed 0), ShardedOptimizer with
    AdamW(lr=0.1); `steps` steps of the loss sum ||p - t||^2 (the same on every rank,
    so no averaging is needed). Per rank: the parameters after the steps, and
    whether it has a local optimizer."""

    import torch
    from parallel.launch import run_ranks

    def on_rank(rank, world_size):
        from data_parallel.zero import ShardedOptimizer

        g = torch.Generator().manual_seed(0)
        params = [
            torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64)) for n in sizes
        ]
        targets = [torch.randn(n, generator=g, dtype=torch.float64) for n in sizes]
        opt = ShardedOptimizer(params, torch.optim.AdamW, lr=0.1)
        for _ in range(steps):
            opt.zero_grad()
            sum(((p - t) ** 2).sum() for p, t in zip(params, targets, strict=True)).backward()
            opt.step()
        return {
            "params": [p.detach().numpy().copy() for p in params],
            "has_local": opt.local_optimizer is not None,
        }

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_shard_bounds_against_reference(student, reference):
    rng = random.Random(31)
    cases = [[[0, 0, 0], 3], [[5, 7], 4], [[1], 8], [[0, 9, 0], 2], [[3, 0, 0, 3], 2]]
    for _ in range(40):
        sizes = [rng.choice([0, 1, 7, 64]) * rng.randint(0, 4) for _ in range(rng.randint(1, 16))]
        cases.append([sizes, rng.randint(1, 8)])
    got = student.run(probe_shard_bounds_many, cases)
    assert got == reference.run(probe_shard_bounds_many, cases)
    for (sizes, ws), bounds in zip(cases, got, strict=True):
        assert bounds == expected_bounds(sizes, ws), f"sizes {sizes}, {ws} ranks"


def run_case(student, reference, world_size, config, optimizer, frozen, garbage):
    batch = 12  # divisible by 1, 2, 3 and 4
    args = (config, 3, optimizer, frozen, 8)
    expected = reference.run(probe_single_process, *args, batch, SEQ_LEN)
    got = student.run(
        probe_zero_training, world_size, *args, [batch, SEQ_LEN], garbage, RANKS_TIMEOUT_S
    )
    names = reference.run(probe_parameter_names, config)
    frozen_positions = {i for i, name in enumerate(names) if name in frozen}
    what = f"ShardedOptimizer({optimizer}), {world_size} ranks, frozen {frozen}"
    check_zero_run(got, expected, world_size, what, frozen_positions)


def test_reads_only_its_own_shard_gradients(student, reference):
    run_case(student, reference, 3, CONFIG, "adamw", [], garbage=True)


def test_sgd_with_momentum(student, reference):
    run_case(student, reference, 2, CONFIG, "sgd", [], garbage=True)


def test_tied_and_frozen_parameters(student, reference):
    config = {**CONFIG, "tie_weights": True}
    frozen = ["wpe.weight", "blocks.0.attn.proj.weight", "blocks.1.ln_2.bias"]
    run_case(student, reference, 4, config, "adamw", frozen, garbage=False)


def test_single_rank(student, reference):
    run_case(student, reference, 1, CONFIG, "adamw", [], garbage=False)


def test_empty_shard(student, reference):
    sizes = [200, 3, 2, 4]
    assert expected_bounds(sizes, 3)[:2] == [0, 0], "test setup: rank 0 owns nothing"
    got = student.run(probe_zero_empty_shard, 3, sizes, 3, RANKS_TIMEOUT_S)
    want = reference.run(probe_zero_empty_shard, 3, sizes, 3, RANKS_TIMEOUT_S)
    assert [r["has_local"] for r in got] == [False, True, True]
    for rank, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        for i, (a, b) in enumerate(zip(mine["params"], theirs["params"], strict=True)):
            np.testing.assert_allclose(
                a, b, rtol=1e-12, atol=1e-14, err_msg=f"rank {rank}: parameter {i}"
            )
