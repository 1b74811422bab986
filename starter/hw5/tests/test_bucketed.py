"""Public tests of task hw5.3: bucketed, overlapped gradient all-reduce
(data_parallel/bucketed.py).

- `assign_buckets`: the documented greedy grouping in reverse registration order
  on small cases (a bucket filled exactly to the cap, a parameter larger than the
  cap alone in its bucket) and on seeded random sizes and caps;
- `BucketedDataParallel`, on 2 and 3 ranks training a small GPT (float64, ranks
  starting from different seeds) for 3 steps with SGD and momentum: after every
  step each rank holds the parameters of one process trained on the whole
  batches (rtol 1e-9, atol 1e-12); `buckets` is the documented grouping of the
  trainable parameters' names; during each backward pass exactly one
  `dist.all_reduce` per bucket is started, with `async_op=True`, of the bucket's
  element count, the first one while some gradients are not computed yet (the
  communication overlaps the backward pass); none is started by
  `finish_gradient_synchronization`, which waits on every handle (and no handle
  is waited on before it).

How the communication is observed: in each rank the test replaces
`torch.distributed.all_reduce` by a wrapper that records each call and does the
real all-reduce on a copy, which reaches the bucket's tensor only when its
handle's `wait()` is called (reading a result without waiting gives the
rank's own, unreduced gradients).
"""

import random

import numpy as np
import pytest
from data_parallel_common import (
    CONFIG,
    GLOBAL_BATCH,
    SEQ_LEN,
    assert_matches_single_process,
    probe_single_process,
)

pytestmark = pytest.mark.task("hw5.3")

#: Seconds a run of ranks may take before it counts as hung.
RANKS_TIMEOUT_S = 30


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_assign_buckets(sizes, cap):
    from data_parallel.bucketed import assign_buckets

    return [list(bucket) for bucket in assign_buckets(list(sizes), cap)]


def probe_bucketed_training(
    world_size, config, steps, optimizer, frozen, data_seed, batch, cap_mb, timeout_s
):
    """Each rank: GPT(config, float64, seed=rank), the parameters named in `frozen`
    frozen, wrapped in BucketedDataParallel(model, cap_mb) (default cap when None);
    `steps` steps of `optimizer` (as in `probe_single_process`) on the rank's rows
    of each global batch: zero_grad, forward through the wrapper, cross-entropy,
    backward, finish_gradient_synchronization, step. `dist.all_reduce` is recorded
    (see the module docstring). Per rank: the flat parameters after wrapping and
    after each step, the wrapper's `buckets`, the trainable parameters' names,
    sizes in bytes and element counts, and per step the calls (element count,
    async_op, phase, number of trainable parameters without a gradient yet) and
    the handles left unwaited or waited on before finish_gradient_synchronization."""

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from parallel.launch import run_ranks
    from parallel.model import GPT, GPTConfig, make_tokens

    global_batch, seq_len = batch

    def on_rank(rank, world_size):
        from data_parallel.bucketed import BucketedDataParallel

        model = GPT(GPTConfig(**config), dtype=torch.float64, seed=rank)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        trainable = [p for p in model.parameters() if p.requires_grad]
        real_all_reduce = dist.all_reduce
        phase, calls, handles, early = ["setup"], [], [], []

        class Deferred:
            """A handle whose all-reduce reaches `tensor` only when waited on."""

            def __init__(self, work, copy, tensor):
                self.work, self.copy, self.tensor, self.done = work, copy, tensor, False

            def wait(self, *args, **kwargs):
                self.work.wait()
                if phase[0] != "finish":
                    early.append(phase[0])
                if not self.done:
                    self.tensor.copy_(self.copy)
                    self.done = True
                return True

            def is_completed(self):
                return self.done

        def recording_all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
            calls.append(
                {
                    "numel": tensor.numel(),
                    "async": bool(async_op),
                    "phase": phase[0],
                    "missing": sum(p.grad is None for p in trainable),
                }
            )
            if not async_op:
                return real_all_reduce(tensor, op=op, group=group)
            copy = tensor.detach().clone()
            handle = Deferred(
                real_all_reduce(copy, op=op, group=group, async_op=True), copy, tensor
            )
            handles.append(handle)
            return handle

        dist.all_reduce = recording_all_reduce
        if cap_mb is None:
            wrapped = BucketedDataParallel(model)
        else:
            wrapped = BucketedDataParallel(model, bucket_cap_mb=cap_mb)
        if optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
        else:
            opt = torch.optim.AdamW(trainable, lr=0.01, weight_decay=0.1)
        ids = make_tokens(global_batch * steps, seq_len, config["vocab_size"], seed=data_seed)
        rows = global_batch // world_size

        def flat():
            return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()

        params, per_step = [flat()], []
        for step in range(steps):
            calls.clear()
            handles.clear()
            early.clear()
            mine = ids[step * global_batch + rank * rows : step * global_batch + (rank + 1) * rows]
            opt.zero_grad()
            phase[0] = "forward"
            logits = wrapped(mine[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), mine[:, 1:].reshape(-1))
            phase[0] = "backward"
            loss.backward()
            phase[0] = "finish"
            wrapped.finish_gradient_synchronization()
            phase[0] = "step"
            opt.step()
            params.append(flat())
            unwaited = sum(not h.done for h in handles)
            per_step.append({"calls": list(calls), "unwaited": unwaited, "early": list(early)})
        return {
            "params": params,
            "buckets": [list(bucket) for bucket in wrapped.buckets],
            "sizes": [
                [name, p.numel() * p.element_size(), p.numel()]
                for name, p in model.named_parameters()
                if p.requires_grad
            ],
            "steps": per_step,
        }

    return run_ranks(on_rank, world_size, timeout_s=timeout_s)


# ---------------------------------------------------------------------------
# The documented grouping, as properties (together they admit one grouping)
# ---------------------------------------------------------------------------


def bucket_problems(buckets, sizes, cap):
    """What is wrong with `buckets` as assign_buckets(sizes, cap) (empty: nothing).

    The documented grouping is the only one with these properties: the buckets,
    one after the other, hold every position once in reverse order; none is
    empty; each stays within the cap unless it holds a single parameter; and
    each was closed only because its next parameter would have overflowed it."""
    total = [sum(sizes[i] for i in bucket) for bucket in buckets]
    problems = []
    if [i for bucket in buckets for i in bucket] != list(reversed(range(len(sizes)))):
        problems.append("the buckets do not hold every position once, in reverse order")
    elif any(not bucket for bucket in buckets):
        problems.append("a bucket is empty")
    else:
        for b, bucket in enumerate(buckets):
            if total[b] > cap and len(bucket) > 1:
                problems.append(f"bucket {b} holds {total[b]} bytes, over the cap {cap}")
            if b + 1 < len(buckets) and total[b] + sizes[buckets[b + 1][0]] <= cap:
                problems.append(f"bucket {b} was closed while its next parameter still fit")
    return problems


def check_bucketed_run(got, expected, world_size, cap_bytes, what):
    assert len(got) == world_size
    assert_matches_single_process([r["params"] for r in got], expected, what)
    for rank, result in enumerate(got):
        names = [name for name, _, _ in result["sizes"]]
        sizes = [size for _, size, _ in result["sizes"]]
        numel = {name: n for name, _, n in result["sizes"]}
        position = {name: i for i, name in enumerate(names)}
        if any(name not in position for bucket in result["buckets"] for name in bucket):
            raise AssertionError(f"{what}: rank {rank}'s buckets name unknown parameters")
        got_positions = [[position[name] for name in bucket] for bucket in result["buckets"]]
        problems = bucket_problems(got_positions, sizes, cap_bytes)
        assert not problems, f"{what}: rank {rank}'s buckets: {problems}"
        want = result["buckets"]
        numels = sorted(sum(numel[name] for name in bucket) for bucket in want)
        for step, record in enumerate(result["steps"], start=1):
            calls = record["calls"]
            where = f"{what}: rank {rank}, step {step}"
            assert [c["phase"] for c in calls] == ["backward"] * len(want), (
                f"{where}: expected one all_reduce per bucket ({len(want)}) during backward, "
                f"got calls in phases {[c['phase'] for c in calls]}"
            )
            assert all(c["async"] for c in calls), f"{where}: every all_reduce needs async_op=True"
            assert sorted(c["numel"] for c in calls) == numels, f"{where}: bucket element counts"
            if len(want) > 1:
                assert calls[0]["missing"] > 0, (
                    f"{where}: the first bucket was all-reduced only after every gradient "
                    "existed; it must start as soon as its own gradients are ready"
                )
            assert record["unwaited"] == 0, f"{where}: a handle was never waited on"
            assert not record["early"], (
                f"{where}: a handle was waited on during {record['early'][0]}; waiting belongs "
                "in finish_gradient_synchronization (the backward pass goes on meanwhile)"
            )


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "cap", "want"),
    [
        ([4, 4, 8], 8, [[2], [1, 0]]),
        ([8, 8, 8], 16, [[2, 1], [0]]),
        ([4, 100, 4], 10, [[2], [1], [0]]),
        ([3, 3, 3, 3], 100, [[3, 2, 1, 0]]),
        ([5], 1, [[0]]),
    ],
)
def test_assign_buckets_examples(student, sizes, cap, want):
    assert student.run(probe_assign_buckets, sizes, cap) == want


def test_assign_buckets_random(student):
    rng = random.Random(5)
    for _ in range(20):
        sizes = [rng.choice([1, 8, 64, 512]) * rng.randint(1, 6) for _ in range(rng.randint(1, 12))]
        cap = rng.choice([8, 100, 1000, sum(sizes[-3:])])
        got = student.run(probe_assign_buckets, sizes, cap)
        problems = bucket_problems(got, sizes, cap)
        assert not problems, f"sizes {sizes}, cap {cap}: {got}: {problems}"


@pytest.mark.parametrize(("world_size", "cap_mb"), [(2, 0.01), (3, None)])
def test_training_equals_one_process_with_overlapped_buckets(student, world_size, cap_mb):
    args = (CONFIG, 3, "sgd", [], 2)
    expected = student.run(probe_single_process, *args, GLOBAL_BATCH, SEQ_LEN)
    got = student.run(
        probe_bucketed_training,
        world_size,
        *args,
        [GLOBAL_BATCH, SEQ_LEN],
        cap_mb,
        RANKS_TIMEOUT_S,
    )
    cap_bytes = int((25.0 if cap_mb is None else cap_mb) * 2**20)
    check_bucketed_run(got, expected, world_size, cap_bytes, f"{world_size} ranks, cap {cap_mb}")
    if cap_mb is not None:
        assert len(got[0]["buckets"]) >= 4, "test setup: the small cap should give many buckets"
    assert np.isfinite(got[0]["params"][-1]).all()
