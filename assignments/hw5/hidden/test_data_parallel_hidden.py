"""Hidden tests of task hw5.2 (never shipped to students; students see names and outcomes).

Stronger than the public tests (the single-process baseline is the reference's
run of `probe_single_process`; tolerances as in the public tests: rtol 1e-9,
atol 1e-12 on parameters, rtol 1e-13 on averaged gradients):

- training with AdamW on 2 ranks, with tied weights (the LM head is the token
  embedding) on 3 ranks, and with frozen parameters on 4 ranks (they must stay
  rank 0's);
- `broadcast_parameters` from the last of 4 ranks, and of a module that has
  buffers but no parameters;
- `average_gradients` on 4 ranks;
- keyword arguments reach the wrapped module.
"""

import numpy as np
import pytest
from data_parallel_common import (
    CONFIG,
    SEQ_LEN,
    assert_matches_single_process,
    probe_single_process,
)
from test_data_parallel import (
    RANKS_TIMEOUT_S,
    check_broadcast,
    probe_average_gradients,
    probe_broadcast,
    probe_dp_training,
)

pytestmark = pytest.mark.task("hw5.2")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_buffers_only_and_kwargs(world_size, timeout_s):
    """Each rank: BatchNorm1d(3, affine=False) (buffers only) with rank-dependent
    running statistics, wrapped in DataParallel; per rank the buffers before and
    after wrapping, and the wrapper called with a keyword argument vs the module."""

    import torch
    from parallel.launch import run_ranks
    from torch import nn

    def on_rank(rank, world_size):
        from data_parallel.ddp import DataParallel

        model = nn.BatchNorm1d(3, affine=False).double()
        with torch.no_grad():
            model.running_mean.fill_(rank + 0.5)
            model.running_var.fill_(rank + 2.0)
        before = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        wrapper = DataParallel(model)
        after = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        model.eval()
        x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
        return {
            "before": before,
            "after": after,
            "wrapped_out": wrapper(input=x).numpy(),
            "module_out": model(x).numpy(),
        }

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("world_size", "optimizer", "tied", "frozen"),
    [
        (2, "adamw", False, []),
        (3, "sgd", True, []),
        (4, "adamw", False, ["wpe.weight", "blocks.0.ln_1.weight", "blocks.1.mlp.2.bias"]),
    ],
)
def test_training_more_cases(student, reference, world_size, optimizer, tied, frozen):
    config = {**CONFIG, "tie_weights": tied}
    batch = 12  # divisible by 2, 3 and 4
    args = (config, 3, optimizer, frozen, 4)
    expected = reference.run(probe_single_process, *args, batch, SEQ_LEN)
    got = student.run(probe_dp_training, world_size, *args, [batch, SEQ_LEN], RANKS_TIMEOUT_S)
    assert len(got) == world_size
    what = f"DataParallel, {world_size} ranks, {optimizer}, tied {tied}, frozen {frozen}"
    assert_matches_single_process(got, expected, what)


def test_broadcast_from_the_last_of_four_ranks(student):
    got = student.run(probe_broadcast, 4, 3, "function", RANKS_TIMEOUT_S)
    check_broadcast(got, 3)


def test_wrapping_four_ranks(student):
    got = student.run(probe_broadcast, 4, 0, "wrapper", RANKS_TIMEOUT_S)
    check_broadcast(got, 0)


def test_average_gradients_four_ranks(student):
    got = student.run(probe_average_gradients, 4, RANKS_TIMEOUT_S)
    for name in sorted(got[0]["before"]):
        if name.split(".")[0] in ("frozen", "unused"):
            assert all(result["after"][name] is None for result in got), name
            continue
        mean = sum(result["before"][name] for result in got) / 4
        for result in got:
            np.testing.assert_allclose(result["after"][name], mean, rtol=1e-13, atol=0)


def test_buffers_only_module_and_keyword_arguments(student):
    got = student.run(probe_buffers_only_and_kwargs, 3, RANKS_TIMEOUT_S)
    for rank, result in enumerate(got):
        for key, value in got[0]["before"].items():
            np.testing.assert_array_equal(
                result["after"][key], value, err_msg=f"rank {rank}: buffer {key}"
            )
        np.testing.assert_array_equal(result["wrapped_out"], result["module_out"])
