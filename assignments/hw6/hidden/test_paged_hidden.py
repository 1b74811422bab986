"""Hidden tests of task hw6.4 (never shipped to students; students see names and outcomes).

Tolerances as in the public tests (float64, rtol 1e-10, atol 1e-12; token ids
and schedules exact). Stronger than the public tests:

- `paged_attention` on more shapes (block size 1, a table far wider than any
  sequence, one sequence, blocks shared by several tables, large values in the
  slots nobody owns), and after `write_kv` filled the cache;
- `Scheduler.step` against the reference, step by step, on seeded random
  workloads with few blocks (preemptions of several requests in one step,
  prefix hits, arrivals while preempting): the same requests prefilled,
  decoded, preempted and finished, the same waiting queue and running list;
- `Engine.run` (given) on more cases, each request's tokens against greedy
  decoding by full recompute (the reference runs it), and the engine's stats
  (steps, preemptions, peak blocks, prefill tokens) against the reference's:
  block size 1, one request at a time, a pool just large enough for the
  largest request, identical prompts whose blocks are all cached, many
  staggered requests.
"""

import random

import numpy as np
import pytest
from test_paged import (
    TIGHT,
    check_schedule,
    paged_case,
    probe_engine,
    probe_greedy,
    probe_paged_attention,
    probe_schedule,
    prompts_for,
)

pytestmark = pytest.mark.task("hw6.4")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_write_then_attend(seed, lens, heads, head_dim, block_size, num_blocks):
    """Sequences of `lens` tokens get random shuffled blocks; their random keys and
    values go into zeroed caches through write_kv (one call per sequence, slots
    in a random order); then paged_attention for random queries. Returns the
    output and, per sequence, the keys, values and query used (to recompute)."""
    import torch
    from inference.paged_attention import paged_attention, write_kv

    g = torch.Generator().manual_seed(seed)
    k_cache = torch.zeros(num_blocks, block_size, heads, head_dim, dtype=torch.float64)
    v_cache = torch.zeros_like(k_cache)
    order = torch.randperm(num_blocks, generator=g).tolist()
    width = max(-(-n // block_size) for n in lens)
    tables = torch.full((len(lens), width), -1, dtype=torch.long)
    keys, values = [], []
    for b, n in enumerate(lens):
        blocks = [order.pop() for _ in range(-(-n // block_size))]
        tables[b, : len(blocks)] = torch.tensor(blocks)
        k = torch.randn(n, heads, head_dim, generator=g, dtype=torch.float64)
        v = torch.randn(n, heads, head_dim, generator=g, dtype=torch.float64)
        slots = torch.tensor(
            [blocks[p // block_size] * block_size + p % block_size for p in range(n)]
        )
        perm = torch.randperm(n, generator=g)
        write_kv(k_cache, v_cache, slots[perm], k[perm], v[perm])
        keys.append(k.numpy())
        values.append(v.numpy())
    q = torch.randn(len(lens), heads, head_dim, generator=g, dtype=torch.float64)
    out = paged_attention(q, k_cache, v_cache, tables, torch.tensor(lens))
    return {"out": out.numpy(), "q": q.numpy(), "keys": keys, "values": values}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def attention(q, keys, values):
    """softmax(keys q / sqrt(D)) values for one query per head: q (H, D), keys (T, H, D)."""
    scores = np.einsum("hd,thd->ht", q, keys) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("ht,thd->hd", weights, values)


def random_workload(seed, n, vocab, num_blocks, block_size):
    """`n` requests in order of arrival, each fitting the pool when alone."""
    rng = random.Random(seed)
    arrival, requests = 0, []
    room = num_blocks * block_size  # slots: prompt + max_new_tokens - 1 must fit
    for i in range(n):
        arrival += rng.choice([0, 0, 1, 2])
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(1, min(9, room)))]
        max_new = rng.randint(1, min(8, room + 1 - len(prompt)))
        requests.append([f"r{i}", prompt, max_new, arrival])
    return requests


def normalised(steps):
    """Steps with the lists whose order the contract leaves free sorted."""
    out = []
    for step in steps:
        step = dict(step)
        for key in ("prefills", "decodes", "preempted", "finished"):
            step[key] = sorted(step[key])
        out.append(step)
    return out


def engine_case(student, reference, seed, prompts, max_new, arrivals, blocks, size, max_seqs):
    args = (seed, prompts, max_new, arrivals, blocks, size, max_seqs)
    got = student.run(probe_engine, *args)
    want = reference.run(probe_engine, *args)
    greedy = reference.run(probe_greedy, seed, prompts, max_new)
    assert want["outputs"] == greedy, "test setup: the reference must decode greedily"
    for i, (mine, theirs) in enumerate(zip(got["outputs"], greedy, strict=True)):
        assert mine == theirs, (
            f"request r{i} (prompt {prompts[i]}, arrival {arrivals[i]}): the engine "
            f"generated {mine}, greedy decoding alone gives {theirs}"
        )
    for key in ("steps", "preemptions", "peak_blocks", "max_running", "prefill_tokens"):
        assert got["stats"][key] == want["stats"][key], (
            f"engine stat {key}: {got['stats'][key]}, the documented scheduler gives "
            f"{want['stats'][key]}"
        )
    assert got["stats"]["free_blocks_at_end"] == blocks
    return want["stats"]


# ---------------------------------------------------------------------------
# Tests: paged attention
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lens", "heads", "head_dim", "block_size", "spare"),
    [
        ([1], 1, 1, 1, 0),
        ([40, 1, 17, 33, 2, 8, 9, 24], 4, 8, 8, 5),
        ([5, 6, 7], 2, 3, 1, 30),
        ([2, 3, 2, 3], 3, 4, 2, 0),
        ([31], 2, 16, 32, 1),
    ],
)
def test_paged_attention_more_shapes(student, lens, heads, head_dim, block_size, spare):
    args, expected = paged_case(sum(lens) + heads, lens, heads, head_dim, block_size, spare)
    got = student.run(probe_paged_attention, *args)
    np.testing.assert_allclose(got, expected, **TIGHT)


def test_paged_attention_wide_tables_shared_blocks_and_large_garbage(student):
    rng = np.random.default_rng(5)
    heads, head_dim, block_size, num_blocks = 2, 4, 3, 12
    k_cache = rng.normal(size=(num_blocks, block_size, heads, head_dim)) * 1e3
    v_cache = rng.normal(size=(num_blocks, block_size, heads, head_dim)) * 1e3
    k_cache[[4, 7, 2]] = rng.normal(size=(3, block_size, heads, head_dim))
    v_cache[[4, 7, 2]] = rng.normal(size=(3, block_size, heads, head_dim))
    k_cache[[9, 0]] = rng.normal(size=(2, block_size, heads, head_dim))
    v_cache[[9, 0]] = rng.normal(size=(2, block_size, heads, head_dim))
    # three sequences share blocks 4 and 7 (a common prefix), then go their own way
    rows = [[4, 7, 2], [4, 7, 9, 0], [4]]
    lens = [8, 11, 2]
    tables = np.full((3, 10), -1, dtype=np.int64)
    for b, row in enumerate(rows):
        tables[b, : len(row)] = row
    q = rng.normal(size=(3, heads, head_dim))
    expected = np.stack(
        [
            attention(
                q[b],
                k_cache[rows[b]].reshape(-1, heads, head_dim)[: lens[b]],
                v_cache[rows[b]].reshape(-1, heads, head_dim)[: lens[b]],
            )
            for b in range(3)
        ]
    )
    args = (q, k_cache, v_cache, tables, np.array(lens, dtype=np.int64))
    np.testing.assert_allclose(student.run(probe_paged_attention, *args), expected, **TIGHT)


@pytest.mark.parametrize("block_size", [1, 3, 4])
def test_write_kv_then_paged_attention(student, block_size):
    lens = [9, 1, 4, 13]
    got = student.run(probe_write_then_attend, block_size, lens, 2, 4, block_size, 40)
    for b in range(len(lens)):
        want = attention(got["q"][b], got["keys"][b], got["values"][b])
        np.testing.assert_allclose(got["out"][b], want, **TIGHT, err_msg=f"sequence {b}")


# ---------------------------------------------------------------------------
# Tests: the scheduler against the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "n", "num_blocks", "block_size", "max_num_seqs", "vocab"),
    [
        (0, 8, 6, 2, 4, 3),
        (1, 10, 5, 3, 3, 2),
        (2, 8, 8, 1, 4, 2),
        (3, 12, 10, 2, 8, 4),
        (4, 6, 4, 4, 2, 2),
        (5, 10, 9, 2, 1, 3),
        (6, 12, 7, 2, 6, 1),
        (8, 14, 8, 2, 8, 3),
    ],
)
def test_scheduler_matches_reference(
    student, reference, seed, n, num_blocks, block_size, max_num_seqs, vocab
):
    requests = random_workload(seed, n, vocab, num_blocks, block_size)
    args = (num_blocks, block_size, max_num_seqs, requests, 400)
    want = reference.run(probe_schedule, *args)
    got = student.run(probe_schedule, *args)
    check_schedule(normalised(got), normalised(want), f"random workload (seed {seed})")


def test_scheduler_preempts_several_newest_first(student):
    requests = [
        ["r0", [1, 2, 3, 4, 5, 6, 7, 8], 4, 0],  # 4 full blocks of 2
        ["r1", [11, 12], 3, 0],  # 1 full block
        ["r2", [13, 14], 3, 0],  # 1 full block: the pool of 6 is full
        ["r3", [15], 2, 1],
    ]
    got = student.run(probe_schedule, 6, 2, 4, requests, 30)
    want = [
        {"prefills": ["r0", "r1", "r2"], "free": 0},
        # r0 needs a block: r2 (the newest) goes; then r1 needs one: r1 itself goes
        {"decodes": ["r0"], "preempted": ["r2", "r1"], "waiting": ["r1", "r2", "r3"]},
        {"decodes": ["r0"], "prefills": [], "waiting": ["r1", "r2", "r3"], "free": 1},
        {"decodes": ["r0"], "prefills": [], "free": 0},
        {
            "finished": ["r0"],
            "prefills": ["r1", "r2", "r3"],
            "lens": {"r1": 3, "r2": 3, "r3": 1},
            "free": 1,
        },
    ]
    check_schedule(got[: len(want)], want, "several preemptions")


# ---------------------------------------------------------------------------
# Tests: the engine
# ---------------------------------------------------------------------------


def test_engine_block_size_one(student, reference):
    prompts = prompts_for(11, 5, 1, 9)
    engine_case(student, reference, 3, prompts, [7, 5, 9, 3, 6], [0, 0, 2, 2, 4], 16, 1, 3)


def test_engine_one_request_at_a_time(student, reference):
    prompts = prompts_for(12, 4, 2, 8)
    engine_case(student, reference, 4, prompts, [5, 6, 4, 7], [0, 0, 0, 9], 16, 4, 1)


def test_engine_pool_just_large_enough(student, reference):
    prompts = prompts_for(13, 6, 3, 11)
    max_new = [9, 8, 10, 6, 7, 12]
    size = 3
    blocks = max(-(-(len(p) + m - 1) // size) for p, m in zip(prompts, max_new, strict=True))
    stats = engine_case(
        student, reference, 5, prompts, max_new, [0, 0, 1, 1, 2, 2], blocks, size, 6
    )
    assert stats["preemptions"] > 0, "test setup: this case must force preemptions"


def test_engine_identical_prompts_fully_cached(student, reference):
    base = prompts_for(14, 1, 12, 12)[0]
    prompts = [base, list(base), base[:8], list(base), [*base[:4], 0]]
    stats = engine_case(student, reference, 6, prompts, [5, 5, 6, 3, 4], [0, 0, 1, 3, 3], 30, 4, 4)
    assert stats["prefill_tokens"] < sum(map(len, prompts)) - 20, "test setup: prefixes shared"


def test_engine_many_staggered_requests(student, reference):
    rng = random.Random(15)
    prompts = prompts_for(15, 12, 1, 12)
    max_new = [rng.randint(1, 12) for _ in prompts]
    arrivals = sorted(rng.randint(0, 25) for _ in prompts)
    stats = engine_case(student, reference, 7, prompts, max_new, arrivals, 14, 2, 5)
    assert stats["preemptions"] > 0, "test setup: this case must force preemptions"
