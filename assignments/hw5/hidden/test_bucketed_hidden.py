"""Hidden tests of task hw5.3 (never shipped to students; students see names and outcomes).

Stronger than the public tests (the single-process baseline is the reference's
run of `probe_single_process`; tolerances as in the public tests: rtol 1e-9,
atol 1e-12; the communication is observed as in the public tests):

- `assign_buckets` against the reference on seeded random sizes with zeros,
  caps of 0 and caps hit exactly; hand-made cases at the cap;
- training where a bucket fills EXACTLY to the cap (the cap in MiB chosen so
  that it is the size of the last four parameters in bytes), 2 ranks, AdamW,
  4 steps;
- a cap of 0 (every parameter its own bucket), 3 ranks;
- tied weights (one parameter used twice: one hook call per backward, one
  place in the buckets), 3 ranks;
- frozen parameters (in no bucket; training must not wait for them), 4 ranks;
- wrapping broadcasts rank 0's parameters and buffers (BatchNorm statistics).
"""

import random

import numpy as np
import pytest
from data_parallel_common import CONFIG, SEQ_LEN, probe_single_process
from test_bucketed import (
    RANKS_TIMEOUT_S,
    bucket_problems,
    check_bucketed_run,
    probe_assign_buckets,
    probe_bucketed_training,
)

pytestmark = pytest.mark.task("hw5.3")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_trainable_sizes(config, frozen):
    """[name, bytes] of the trainable parameters of GPT(config, float64), in order
    (given code only: run on the reference)."""
    import torch
    from parallel.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    return [
        [name, p.numel() * p.element_size()]
        for name, p in model.named_parameters()
        if name not in frozen
    ]


def probe_assign_buckets_many(cases):
    """assign_buckets(sizes, cap) for each [sizes, cap] of `cases`."""
    from data_parallel.bucketed import assign_buckets

    return [[list(b) for b in assign_buckets(list(sizes), cap)] for sizes, cap in cases]


def probe_wrap_broadcast(world_size, timeout_s):
    """Each rank: Linear -> BatchNorm1d -> Linear (float64) from seed 30 + rank with
    rank-dependent running statistics, wrapped in BucketedDataParallel; per rank the
    state dict before and after wrapping."""

    import torch
    from parallel.launch import run_ranks
    from torch import nn

    def on_rank(rank, world_size):
        from data_parallel.bucketed import BucketedDataParallel

        torch.manual_seed(30 + rank)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
        with torch.no_grad():
            model[1].running_mean.normal_()
            model[1].num_batches_tracked.fill_(rank + 1)
        before = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        BucketedDataParallel(model, bucket_cap_mb=0.0001)
        after = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        return {"before": before, "after": after}

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "cap", "want"),
    [
        ([8, 8, 1], 16, [[2, 1], [0]]),
        ([8, 8], 16, [[1, 0]]),
        ([16, 16, 16], 16, [[2], [1], [0]]),
        ([0, 8, 0], 8, [[2, 1, 0]]),
        ([4, 0], 0, [[1], [0]]),
        ([], 10, []),
    ],
)
def test_assign_buckets_at_the_cap(student, sizes, cap, want):
    assert bucket_problems(want, sizes, cap) == []
    assert student.run(probe_assign_buckets, sizes, cap) == want


def test_assign_buckets_against_reference(student, reference):
    rng = random.Random(23)
    cases = []
    for _ in range(30):
        sizes = [
            rng.choice([0, 1, 4, 8, 32]) * rng.randint(0, 5) for _ in range(rng.randint(1, 15))
        ]
        cases.append((sizes, rng.choice([0, 8, 40, sum(sizes[-2:]), sum(sizes[-5:])])))
    got = student.run(probe_assign_buckets_many, cases)
    want = reference.run(probe_assign_buckets_many, cases)
    for (sizes, cap), mine, theirs in zip(cases, got, want, strict=True):
        assert mine == theirs, f"sizes {sizes}, cap {cap}"


def run_case(student, reference, world_size, config, optimizer, frozen, cap_mb, steps=3):
    batch = 12  # divisible by 2, 3 and 4
    args = (config, steps, optimizer, frozen, 6)
    expected = reference.run(probe_single_process, *args, batch, SEQ_LEN)
    got = student.run(
        probe_bucketed_training, world_size, *args, [batch, SEQ_LEN], cap_mb, RANKS_TIMEOUT_S
    )
    what = f"{world_size} ranks, cap {cap_mb} MiB, frozen {frozen}"
    check_bucketed_run(got, expected, world_size, int(cap_mb * 2**20), what)
    return got


def test_bucket_filled_exactly_to_the_cap(student, reference):
    sizes = [size for _, size in reference.run(probe_trainable_sizes, CONFIG, [])]
    cap = sum(sizes[-4:])
    buckets = reference.run(probe_assign_buckets, sizes, cap)
    assert any(sum(sizes[i] for i in b) == cap for b in buckets)
    cap_mb = cap / 2**20  # exact: a whole number over a power of two
    assert int(cap_mb * 2**20) == cap
    got = run_case(student, reference, 2, CONFIG, "adamw", [], cap_mb, steps=4)
    assert len(got[0]["buckets"][0]) == 4, "the first bucket holds exactly the cap"


def test_every_parameter_its_own_bucket(student, reference):
    got = run_case(student, reference, 3, CONFIG, "sgd", [], 0.0)
    assert all(len(b) == 1 for b in got[0]["buckets"])


def test_tied_weights(student, reference):
    config = {**CONFIG, "tie_weights": True}
    got = run_case(student, reference, 3, config, "sgd", [], 0.005)
    names = [n for b in got[0]["buckets"] for n in b]
    assert names.count("wte.weight") == 1 and "lm_head.weight" not in names


def test_frozen_parameters_take_no_part(student, reference):
    frozen = ["wpe.weight", "blocks.1.attn.qkv.bias", "ln_f.weight"]
    got = run_case(student, reference, 4, CONFIG, "adamw", frozen, 0.004)
    names = [n for b in got[0]["buckets"] for n in b]
    assert not set(frozen) & set(names), "frozen parameters belong to no bucket"


def test_wrapping_broadcasts_parameters_and_buffers(student):
    got = student.run(probe_wrap_broadcast, 3, RANKS_TIMEOUT_S)
    for rank, result in enumerate(got):
        for key, value in got[0]["before"].items():
            np.testing.assert_array_equal(
                result["after"][key], value, err_msg=f"rank {rank}: {key}"
            )
