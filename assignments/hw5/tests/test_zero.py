"""Public tests of task hw5.4: sharded optimizer state, ZeRO stage 1 (data_parallel/zero.py).

- `shard_bounds`: the documented contiguous split (each parameter to the rank
  holding its middle element) on small cases, one where a large parameter
  leaves a rank with nothing, and on seeded random sizes for 1 to 4 ranks;
- `ShardedOptimizer(model.parameters(), AdamW, lr=..., weight_decay=...)` on 2
  and 3 ranks, training a small GPT (float64) for 3 steps, gradients averaged
  by the test: after every step every rank holds the parameters of one process
  running `torch.optim.AdamW` on the whole batches (rtol 1e-9, atol 1e-12);
  each rank builds exactly one optimizer of the class it is given, over exactly
  its shard, so that optimizer state exists for its shard only; `owners` is
  the documented split; `zero_grad()` clears every parameter's gradient (to
  None, or to zeros with `set_to_none=False`).
"""

import random

import pytest
from data_parallel_common import (
    CONFIG,
    GLOBAL_BATCH,
    SEQ_LEN,
    assert_matches_single_process,
    probe_single_process,
)

pytestmark = pytest.mark.task("hw5.4")

#: Seconds a run of ranks may take before it counts as hung.
RANKS_TIMEOUT_S = 30


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_shard_bounds(sizes, world_size):
    from data_parallel.zero import shard_bounds

    return [int(b) for b in shard_bounds(list(sizes), world_size)]


def probe_zero_training(
    world_size, config, steps, optimizer, frozen, data_seed, batch, garbage, timeout_s
):
    """Each rank: GPT(config, float64, seed=0), the parameters named in `frozen`
    frozen, and ShardedOptimizer(model.parameters(), Recording, **hyper-parameters)
    where Recording is `optimizer` ("sgd" or "adamw", as in `probe_single_process`)
    recording the parameters each instance is built over. `steps` steps on the
    rank's rows of each global batch: zero_grad, forward, cross-entropy, backward,
    gradients averaged here (all-reduce, divide), with `garbage` the gradients of
    the parameters this rank does not own (by the documented split) set to NaN,
    step. Then zero_grad(), and zero_grad(set_to_none=False) after setting every
    gradient to ones. Per rank: the flat parameters at the start and after each
    step, the parameter positions each optimizer instance got, those with state
    in `local_optimizer`, `owners`, and the gradients left by each zero_grad."""

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from parallel.launch import run_ranks
    from parallel.model import GPT, GPTConfig, make_tokens

    global_batch, seq_len = batch

    def on_rank(rank, world_size):
        from data_parallel.zero import ShardedOptimizer

        model = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        params = list(model.parameters())
        position = {id(p): i for i, p in enumerate(params)}
        base = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
        hyper = {"lr": 0.5, "momentum": 0.9} if optimizer == "sgd" else {"lr": 0.01}
        if optimizer != "sgd":
            hyper["weight_decay"] = 0.1
        made = []

        class Recording(base):
            def __init__(self, shard, **kwargs):
                shard = list(shard)
                tensors = [
                    t
                    for item in shard
                    for t in (item["params"] if isinstance(item, dict) else [item])
                ]
                made.append([position.get(id(t), -1) for t in tensors])
                super().__init__(shard, **kwargs)

        sharded = ShardedOptimizer(model.parameters(), Recording, **hyper)
        total, start, mine_owned = sum(p.numel() for p in params), 0, set()
        for i, p in enumerate(params):
            if world_size * (2 * start + p.numel()) // (2 * total) == rank:
                mine_owned.add(i)
            start += p.numel()
        ids = make_tokens(global_batch * steps, seq_len, config["vocab_size"], seed=data_seed)
        rows = global_batch // world_size

        def flat():
            return torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()

        out = [flat()]
        for step in range(steps):
            mine = ids[step * global_batch + rank * rows : step * global_batch + (rank + 1) * rows]
            sharded.zero_grad()
            logits = model(mine[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), mine[:, 1:].reshape(-1))
            loss.backward()
            for i, p in enumerate(params):
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world_size)
                    if garbage and i not in mine_owned:
                        p.grad.fill_(float("nan"))
            sharded.step()
            out.append(flat())
        local = sharded.local_optimizer
        state = [] if local is None else sorted(position.get(id(p), -1) for p in local.state)
        sharded.zero_grad()
        cleared = [p.grad is None for p in params]
        for p in params:
            p.grad = torch.ones_like(p)
        sharded.zero_grad(set_to_none=False)
        zeroed = [p.grad is not None and not p.grad.any().item() for p in params]
        return {
            "params": out,
            "made": made,
            "state": state,
            "owners": [int(r) for r in sharded.owners],
            "numels": [p.numel() for p in params],
            "cleared": cleared,
            "zeroed": zeroed,
        }

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# The documented split, written out
# ---------------------------------------------------------------------------


def expected_owners(sizes, world_size):
    total, start, owners = sum(sizes), 0, []
    for size in sizes:
        owners.append(world_size * (2 * start + size) // (2 * total) if total else 0)
        start += size
    return owners


def expected_bounds(sizes, world_size):
    owners = expected_owners(sizes, world_size)
    return [sum(1 for owner in owners if owner < r) for r in range(world_size + 1)]


def check_zero_run(got, expected, world_size, what, frozen_positions=()):
    """`frozen_positions`: parameters without gradients, hence without optimizer state."""
    assert len(got) == world_size
    assert_matches_single_process([r["params"] for r in got], expected, what)
    owners = expected_owners(got[0]["numels"], world_size)
    for rank, result in enumerate(got):
        shard = [i for i, owner in enumerate(owners) if owner == rank]
        assert result["owners"] == owners, f"{what}: rank {rank}'s owners"
        assert result["made"] == ([shard] if shard else []), (
            f"{what}: rank {rank} must build one optimizer over its shard {shard} "
            f"(got {result['made']})"
        )
        with_state = [i for i in shard if i not in frozen_positions]
        assert result["state"] == with_state, (
            f"{what}: rank {rank} holds optimizer state for parameters {result['state']}, "
            f"its shard is {shard}"
        )
        assert all(result["cleared"]), f"{what}: zero_grad() must set every gradient to None"
        assert all(result["zeroed"]), f"{what}: zero_grad(set_to_none=False) must zero them"


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "world_size", "want"),
    [
        ([10, 10, 10, 10], 2, [0, 2, 4]),
        ([10, 10, 10, 10], 3, [0, 1, 3, 4]),
        ([100, 1, 1, 1], 3, [0, 0, 1, 4]),
        ([1, 2, 3], 1, [0, 3]),
        ([4], 2, [0, 0, 1]),
    ],
)
def test_shard_bounds_examples(student, sizes, world_size, want):
    assert expected_bounds(sizes, world_size) == want  # the documented split
    assert student.run(probe_shard_bounds, sizes, world_size) == want


def test_shard_bounds_random(student):
    rng = random.Random(11)
    for _ in range(20):
        sizes = [rng.choice([1, 16, 256]) * rng.randint(1, 9) for _ in range(rng.randint(1, 14))]
        world_size = rng.randint(1, 4)
        got = student.run(probe_shard_bounds, sizes, world_size)
        assert got == expected_bounds(sizes, world_size), f"sizes {sizes}, {world_size} ranks"


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharded_adamw_equals_adamw(student, world_size):
    args = (CONFIG, 3, "adamw", [], 3)
    expected = student.run(probe_single_process, *args, GLOBAL_BATCH, SEQ_LEN)
    got = student.run(
        probe_zero_training,
        world_size,
        *args,
        [GLOBAL_BATCH, SEQ_LEN],
        False,
        RANKS_TIMEOUT_S,
    )
    check_zero_run(got, expected, world_size, f"ShardedOptimizer(AdamW) on {world_size} ranks")
