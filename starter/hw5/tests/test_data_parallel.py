"""Public tests of task hw5.2: broadcast and gradient averaging (data_parallel/ddp.py).

Every test runs 2 or 3 ranks (`parallel.launch.run_ranks`, gloo on the CPU).

- `broadcast_parameters`: ranks that start from different seeds end with rank
  `src`'s parameters AND buffers (BatchNorm's running statistics and its int64
  counter), exactly, for src 0 and 1; the parameters stay the same tensors;
- `average_gradients`: each gradient becomes the mean over the ranks of the
  ranks' gradients (rtol 1e-13: the average, not the sum nor the rank's own);
  a frozen parameter and an unused one keep a None gradient; a parameter shared
  by two submodules is averaged once;
- `DataParallel`: wrapping broadcasts rank 0's parameters and buffers; calling it
  calls the module; training a small GPT (float64) for 3 steps with SGD and
  momentum, each rank on its own share of every global batch, gives on every
  rank, after every step, the parameters of one process trained on the whole
  batches (rtol 1e-9, atol 1e-12), for 2 and 3 ranks.
"""

import numpy as np
import pytest
from data_parallel_common import (
    CONFIG,
    GLOBAL_BATCH,
    SEQ_LEN,
    assert_matches_single_process,
    probe_single_process,
)

pytestmark = pytest.mark.task("hw5.2")

#: Seconds a run of ranks may take before it counts as hung.
RANKS_TIMEOUT_S = 30


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_broadcast(world_size, src, via, timeout_s):
    """Each rank builds Linear -> BatchNorm1d -> Linear (float64) from seed 100 + rank,
    with rank-dependent running statistics, then calls broadcast_parameters(model,
    src) (via "function") or wraps it in DataParallel (via "wrapper"). Per rank: the
    state dict before and after, whether the parameters are the same tensors, and
    (wrapper) the wrapper's output, the module's, and whether the wrapper's
    parameters are the module's."""

    import torch
    from parallel.launch import run_ranks
    from torch import nn

    def on_rank(rank, world_size):
        from data_parallel import ddp

        torch.manual_seed(100 + rank)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
        with torch.no_grad():
            model[1].running_mean.normal_()
            model[1].running_var.uniform_(0.5, 2.0)
            model[1].num_batches_tracked.fill_(rank + 3)
        before = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        params = list(model.parameters())
        out = {}
        if via == "function":
            ddp.broadcast_parameters(model, src)
        else:
            wrapper = ddp.DataParallel(model)
            model.eval()  # no running-statistics update during the comparison below
            x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
            out["wrapped_out"] = wrapper(x).detach().numpy()
            out["module_out"] = model(x).detach().numpy()
            mine, theirs = list(wrapper.parameters()), list(model.parameters())
            out["wrapper_params"] = len(mine) == len(theirs) and all(
                p is q for p, q in zip(mine, theirs, strict=True)
            )
        after = {k: v.clone().numpy() for k, v in model.state_dict().items()}
        same = len(params) == len(list(model.parameters())) and all(
            p is q for p, q in zip(params, model.parameters(), strict=True)
        )
        return {"before": before, "after": after, "same_tensors": same, **out}

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


def probe_average_gradients(world_size, timeout_s):
    """Each rank: a module with a Linear shared by two submodules, a plain Linear, a
    frozen Linear and an unused one (float64); every trainable used parameter gets a
    rank-dependent gradient; then average_gradients. Per rank: the gradients before
    and after, by name (None where there is none)."""

    import torch
    from parallel.launch import run_ranks
    from torch import nn

    def on_rank(rank, world_size):
        from data_parallel.ddp import average_gradients

        torch.manual_seed(0)
        shared = nn.Linear(3, 3).double()
        model = nn.ModuleDict(
            {
                "a": shared,
                "b": nn.Sequential(shared, nn.Linear(3, 2).double()),
                "frozen": nn.Linear(2, 2).double(),
                "unused": nn.Linear(2, 1).double(),
            }
        )
        model["frozen"].requires_grad_(False)
        g = torch.Generator().manual_seed(10 + rank)
        for name, p in model.named_parameters():
            if name.split(".")[0] in ("a", "b"):
                p.grad = (rank + 1) * torch.randn(p.shape, generator=g, dtype=torch.float64)

        def grads():
            return {
                name: None if p.grad is None else p.grad.clone().numpy()
                for name, p in model.named_parameters()
            }

        before = grads()
        average_gradients(model)
        return {"before": before, "after": grads()}

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


def probe_dp_training(world_size, config, steps, optimizer, frozen, data_seed, batch, timeout_s):
    """Each rank: GPT(config, float64, seed=rank) (so the ranks start apart), the
    parameters named in `frozen` frozen, wrapped in DataParallel; `steps` steps of
    `optimizer` (as in `probe_single_process`) on the rank's rows of each global
    batch: zero_grad, forward through the wrapper, cross-entropy of the next token,
    backward, sync_gradients, step. Per rank: the flat parameters after wrapping
    and after each step. `batch`: [global batch rows, tokens per row]."""

    import torch
    import torch.nn.functional as F
    from parallel.launch import run_ranks
    from parallel.model import GPT, GPTConfig, make_tokens

    global_batch, seq_len = batch

    def on_rank(rank, world_size):
        from data_parallel.ddp import DataParallel

        model = GPT(GPTConfig(**config), dtype=torch.float64, seed=rank)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        wrapped = DataParallel(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
        else:
            opt = torch.optim.AdamW(trainable, lr=0.01, weight_decay=0.1)
        ids = make_tokens(global_batch * steps, seq_len, config["vocab_size"], seed=data_seed)
        rows = global_batch // world_size

        def flat():
            return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()

        out = [flat()]
        for step in range(steps):
            mine = ids[step * global_batch + rank * rows : step * global_batch + (rank + 1) * rows]
            opt.zero_grad()
            logits = wrapped(mine[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), mine[:, 1:].reshape(-1))
            loss.backward()
            wrapped.sync_gradients()
            opt.step()
            out.append(flat())
        return out

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def check_broadcast(got, src):
    keys = set(got[src]["before"])
    assert any(not np.array_equal(got[0]["before"][k], got[1]["before"][k]) for k in keys), (
        "the ranks should start apart (test setup)"
    )
    for rank, result in enumerate(got):
        assert set(result["after"]) == keys
        for key in sorted(keys):
            np.testing.assert_array_equal(
                result["after"][key],
                got[src]["before"][key],
                err_msg=f"rank {rank}: {key} is not rank {src}'s after the broadcast",
            )
        assert result["same_tensors"], "the broadcast must write into the parameters in place"


@pytest.mark.parametrize(("world_size", "src"), [(2, 0), (3, 1)])
def test_broadcast_parameters_and_buffers(student, world_size, src):
    got = student.run(probe_broadcast, world_size, src, "function", RANKS_TIMEOUT_S)
    check_broadcast(got, src)


@pytest.mark.parametrize("world_size", [2, 3])
def test_wrapping_broadcasts_rank0_and_forward_delegates(student, world_size):
    got = student.run(probe_broadcast, world_size, 0, "wrapper", RANKS_TIMEOUT_S)
    check_broadcast(got, 0)
    for result in got:
        np.testing.assert_array_equal(result["wrapped_out"], result["module_out"])
        assert result["wrapper_params"], "the wrapper's parameters must be the module's"


@pytest.mark.parametrize("world_size", [2, 3])
def test_average_gradients(student, world_size):
    got = student.run(probe_average_gradients, world_size, RANKS_TIMEOUT_S)
    names = sorted(got[0]["before"])
    layers = ["a", "b.1", "frozen", "unused"]
    assert names == sorted(f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias"))
    for name in names:
        if name.split(".")[0] in ("frozen", "unused"):
            for rank, result in enumerate(got):
                assert result["after"][name] is None, (
                    f"rank {rank}: {name} had no gradient and must keep None"
                )
            continue
        mean = sum(result["before"][name] for result in got) / world_size
        for rank, result in enumerate(got):
            np.testing.assert_allclose(
                result["after"][name],
                mean,
                rtol=1e-13,
                atol=0,
                err_msg=f"rank {rank}: the gradient of {name} is not the mean over the ranks",
            )


@pytest.mark.parametrize("world_size", [2, 3])
def test_training_equals_one_process_on_the_whole_batch(student, world_size):
    args = (CONFIG, 3, "sgd", [], 1)
    expected = student.run(probe_single_process, *args, GLOBAL_BATCH, SEQ_LEN)
    got = student.run(
        probe_dp_training, world_size, *args, [GLOBAL_BATCH, SEQ_LEN], RANKS_TIMEOUT_S
    )
    assert len(got) == world_size
    assert_matches_single_process(got, expected, f"DataParallel on {world_size} ranks")
