"""Public tests of task hw6.4: paged attention and continuous batching
(inference/paged_attention.py, inference/scheduler.py, driven by the given
inference/engine.py).

- `write_kv` puts row i of k and v into flat slot `slots[i]` (block
  slot // block_size, offset slot % block_size) and touches nothing else (exact);
- `paged_attention` equals softmax(q K^T / sqrt(D)) V over each sequence's
  first context_lens[b] keys, gathered through block tables that name
  physical blocks in shuffled order, padded with -1, with random values in
  every slot no sequence owns (float64, rtol 1e-10, atol 1e-12): lengths of
  1, of whole blocks, one past a whole block, block sizes 1 to 16;
- `Scheduler.step`, driven by a stand-in engine that appends one token to every
  request it prefills or decodes: each step's prefills, decodes, preempted and
  finished requests, the waiting queue and the running list (both in order),
  each scheduled request's `seq_len` and the free blocks, step by step, on
  hand-worked cases: FCFS admission up to `max_num_seqs`, admission by free
  blocks with no overtaking, arrivals, preemption of the most recently
  admitted request, which goes back to the front of the queue and is
  recomputed (prompt + tokens so far) when readmitted;
- `Engine.run` (given) on the given seeded GPT (float64): every request ends with
  exactly the tokens of greedy decoding by full recomputation (`model(ids)`,
  argmax, token by token), with room to spare, with few blocks (preemptions
  forced) and staggered arrivals, and with prompts sharing prefixes (shared
  blocks read through paged attention); at most `max_num_seqs` run at once and
  every block is free at the end.
"""

import math
import random

import numpy as np
import pytest

pytestmark = pytest.mark.task("hw6.4")

TIGHT = {"rtol": 1e-10, "atol": 1e-12}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_write_kv(k_cache, v_cache, slots, k, v):
    """The caches after write_kv(k_cache, v_cache, slots, k, v) (float64 arrays in)."""
    import torch
    from inference.paged_attention import write_kv

    kc, vc = torch.from_numpy(k_cache.copy()), torch.from_numpy(v_cache.copy())
    write_kv(kc, vc, torch.from_numpy(slots), torch.from_numpy(k), torch.from_numpy(v))
    return [kc.numpy(), vc.numpy()]


def probe_paged_attention(q, k_cache, v_cache, block_tables, context_lens):
    """paged_attention on the given arrays (float64, tables and lengths int64)."""
    import torch
    from inference.paged_attention import paged_attention

    args = [torch.from_numpy(a) for a in (q, k_cache, v_cache, block_tables, context_lens)]
    return paged_attention(*args).numpy()


def probe_schedule(num_blocks, block_size, max_num_seqs, requests, max_steps):
    """Scheduler(BlockManager(num_blocks, block_size), max_num_seqs) with `requests`
    ([id, prompt, max_new_tokens, arrival] each, added in order), stepped at
    now = 0, 1, ... while unfinished (at most max_steps). Stand-in engine: every
    request prefilled or decoded gets token 100 + len(output). Per step: the ids
    of each list of the output, the waiting and running ids in order, each
    scheduled request's seq_len, and the free blocks after scheduling."""
    from inference.block_manager import BlockManager
    from inference.scheduler import Request, Scheduler

    bm = BlockManager(num_blocks, block_size)
    scheduler = Scheduler(bm, max_num_seqs)
    for rid, prompt, max_new, arrival in requests:
        scheduler.add(Request(rid, list(prompt), max_new, arrival))
    steps = []
    now = 0
    while scheduler.has_unfinished() and now < max_steps:
        out = scheduler.step(now)
        record = {
            name: [r.id for r in getattr(out, name)]
            for name in ("prefills", "decodes", "preempted", "finished")
        }
        scheduled = [*out.prefills, *out.decodes]
        record["lens"] = {r.id: int(bm.seq_len(r.id)) for r in scheduled}
        record["waiting"] = [r.id for r in scheduler.waiting]
        record["running"] = [r.id for r in scheduler.running]
        record["free"] = int(bm.num_free_blocks)
        for r in scheduled:
            r.output.append(100 + len(r.output))
        steps.append(record)
        now += 1
    return steps


def probe_engine(seed, prompts, max_new, arrivals, num_blocks, block_size, max_num_seqs):
    """Engine(GPT(GPTConfig(), seed=seed), ...).run on requests "r0", "r1", ...:
    their outputs in order, and the engine's stats."""
    from inference.engine import Engine
    from inference.model import GPT, GPTConfig
    from inference.scheduler import Request

    model = GPT(GPTConfig(), seed=seed)
    requests = [
        Request(f"r{i}", list(p), m, a)
        for i, (p, m, a) in enumerate(zip(prompts, max_new, arrivals, strict=True))
    ]
    engine = Engine(model, num_blocks, block_size, max_num_seqs)
    outputs = engine.run(requests)
    return {
        "outputs": [[int(t) for t in outputs[r.id]] for r in requests],
        "stats": {k: int(v) for k, v in engine.stats.items()},
    }


def probe_greedy(seed, prompts, max_new):
    """Greedy decoding by full recomputation with the given model only: for each
    prompt, max_new tokens, each the argmax of model(ids) at the last position."""
    import torch
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(), seed=seed)
    outputs = []
    for prompt, n in zip(prompts, max_new, strict=True):
        ids = list(prompt)
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
        outputs.append(ids[len(prompt) :])
    return outputs


# ---------------------------------------------------------------------------
# Reference computations (NumPy, in the test)
# ---------------------------------------------------------------------------


def paged_case(seed, lens, heads, head_dim, block_size, spare_blocks=3):
    """Random keys and values of sequences of `lens` tokens laid out in shuffled
    physical blocks (every other slot random too), queries, the padded block
    tables, and the expected output."""
    rng = np.random.default_rng(seed)
    n_blocks = [math.ceil(n / block_size) for n in lens]
    total = sum(n_blocks) + spare_blocks
    order = rng.permutation(total)
    k_cache = rng.normal(size=(total, block_size, heads, head_dim)) * 3.0
    v_cache = rng.normal(size=(total, block_size, heads, head_dim)) * 3.0
    width = max(n_blocks) + 1  # one column of padding even for the longest
    tables = np.full((len(lens), width), -1, dtype=np.int64)
    q = rng.normal(size=(len(lens), heads, head_dim))
    expected = np.empty_like(q)
    start = 0
    for b, n in enumerate(lens):
        tables[b, : n_blocks[b]] = order[start : start + n_blocks[b]]
        start += n_blocks[b]
        keys = k_cache[tables[b, : n_blocks[b]]].reshape(-1, heads, head_dim)[:n]
        values = v_cache[tables[b, : n_blocks[b]]].reshape(-1, heads, head_dim)[:n]
        scores = np.einsum("hd,thd->ht", q[b], keys) / math.sqrt(head_dim)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        expected[b] = np.einsum("ht,thd->hd", weights, values)
    context_lens = np.array(lens, dtype=np.int64)
    return (q, k_cache, v_cache, tables, context_lens), expected


def check_schedule(got, want, what):
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        for key, value in w.items():
            assert g[key] == value, f"{what}, step {i}: {key} is {g[key]}, expected {value}"
    assert len(got) == len(want), f"{what}: {len(got)} steps, expected {len(want)}"


def greedy_and_engine(student, seed, prompts, max_new, arrivals, blocks, size, max_seqs):
    engine = student.run(probe_engine, seed, prompts, max_new, arrivals, blocks, size, max_seqs)
    expected = student.run(probe_greedy, seed, prompts, max_new)
    for i, (got, want) in enumerate(zip(engine["outputs"], expected, strict=True)):
        assert got == want, (
            f"request r{i} (prompt {prompts[i]}, arrival {arrivals[i]}): the engine "
            f"generated {got}, greedy decoding alone gives {want}"
        )
    stats = engine["stats"]
    assert stats["max_running"] <= max_seqs, f"{stats['max_running']} requests ran at once"
    assert stats["peak_blocks"] <= blocks
    assert stats["free_blocks_at_end"] == blocks, "blocks still held after every request ended"
    return stats


def prompts_for(seed, n, low, high, vocab=32):
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(rng.randint(low, high))] for _ in range(n)]


# ---------------------------------------------------------------------------
# Tests: write_kv and paged_attention
# ---------------------------------------------------------------------------


def test_write_kv_writes_flat_slots(student):
    rng = np.random.default_rng(0)
    k_cache, v_cache = rng.normal(size=(2, 5, 3, 2, 4))
    slots = np.array([7, 0, 14, 3, 8], dtype=np.int64)
    k, v = rng.normal(size=(2, 5, 2, 4))
    got_k, got_v = student.run(probe_write_kv, k_cache, v_cache, slots, k, v)
    want_k, want_v = k_cache.copy(), v_cache.copy()
    for i, slot in enumerate(slots):
        want_k[slot // 3, slot % 3] = k[i]
        want_v[slot // 3, slot % 3] = v[i]
    np.testing.assert_array_equal(got_k, want_k)
    np.testing.assert_array_equal(got_v, want_v)


@pytest.mark.parametrize(
    ("lens", "heads", "head_dim", "block_size"),
    [
        ([1, 4, 5, 9, 12], 2, 4, 4),
        ([3, 3], 4, 8, 3),
        ([7], 1, 2, 1),
        ([16, 1, 2], 3, 5, 16),
    ],
)
def test_paged_attention_equals_contiguous_attention(student, lens, heads, head_dim, block_size):
    args, expected = paged_case(len(lens) + block_size, lens, heads, head_dim, block_size)
    got = student.run(probe_paged_attention, *args)
    np.testing.assert_allclose(got, expected, **TIGHT)


# ---------------------------------------------------------------------------
# Tests: the scheduler, step by step
# ---------------------------------------------------------------------------


def test_scheduler_fcfs_and_max_num_seqs(student):
    requests = [
        ["r0", [1, 2, 3], 2, 0],
        ["r1", [4, 5, 6], 3, 0],
        ["r2", [7, 8, 9], 1, 0],
        ["r3", [1, 1, 1], 2, 0],
    ]
    got = student.run(probe_schedule, 32, 4, 2, requests, 20)
    want = [
        {"prefills": ["r0", "r1"], "decodes": [], "waiting": ["r2", "r3"]},
        {"prefills": [], "decodes": ["r0", "r1"], "running": ["r0", "r1"]},
        {"finished": ["r0"], "decodes": ["r1"], "prefills": ["r2"], "running": ["r1", "r2"]},
        {"finished": ["r1", "r2"], "decodes": [], "prefills": ["r3"], "waiting": []},
        {"decodes": ["r3"], "lens": {"r3": 4}},
        {"finished": ["r3"], "running": [], "free": 32},
    ]
    check_schedule(got, want, "FCFS, max_num_seqs 2")


def test_scheduler_admits_by_free_blocks_in_order(student):
    requests = [
        ["r0", [1, 2, 3, 4, 5, 6, 7], 2, 0],  # 4 blocks of 2
        ["r1", [8, 9, 10, 11, 12], 1, 0],  # 3 blocks
        ["r2", [13], 1, 0],  # 1 block: would fit at once, but must not overtake r1
        ["r3", [14, 15], 1, 4],  # arrives at step 4
    ]
    got = student.run(probe_schedule, 6, 2, 4, requests, 20)
    want = [
        {"prefills": ["r0"], "waiting": ["r1", "r2", "r3"], "free": 2},
        {"decodes": ["r0"], "prefills": [], "lens": {"r0": 8}, "free": 2},
        {"finished": ["r0"], "prefills": ["r1", "r2"], "free": 2},
        {"finished": ["r1", "r2"], "prefills": [], "waiting": ["r3"], "free": 6},
        {"prefills": ["r3"], "free": 5},
        {"finished": ["r3"], "free": 6},
    ]
    check_schedule(got, want, "admission by free blocks")


def test_scheduler_preempts_the_newest_and_requeues_it_first(student):
    requests = [
        ["r0", [1, 2], 3, 0],  # 1 block of 2
        ["r1", [3, 4, 5], 2, 0],  # 2 blocks
        ["r2", [6], 3, 0],  # 1 block: the pool of 4 is full
        ["r3", [7], 1, 0],
    ]
    got = student.run(probe_schedule, 4, 2, 4, requests, 20)
    want = [
        {"prefills": ["r0", "r1", "r2"], "waiting": ["r3"], "free": 0},
        # r0 needs a block: r2, admitted last, is preempted and goes before r3
        {
            "preempted": ["r2"],
            "decodes": ["r0", "r1"],
            "prefills": [],
            "waiting": ["r2", "r3"],
            "running": ["r0", "r1"],
            "lens": {"r0": 3, "r1": 4},
        },
        # r2 comes back first, recomputed from its prompt and its token so far
        {
            "finished": ["r1"],
            "decodes": ["r0"],
            "prefills": ["r2", "r3"],
            "running": ["r0", "r2", "r3"],
            "lens": {"r0": 4, "r2": 2, "r3": 1},
            "free": 0,
        },
        {"finished": ["r0", "r3"], "decodes": ["r2"], "preempted": [], "lens": {"r2": 3}},
        {"finished": ["r2"], "running": [], "free": 4},
    ]
    check_schedule(got, want, "preemption")


# ---------------------------------------------------------------------------
# Tests: the engine against greedy decoding alone
# ---------------------------------------------------------------------------


def test_engine_matches_greedy_decoding(student):
    prompts = prompts_for(1, 6, 2, 12)
    max_new = [8, 3, 10, 1, 6, 9]
    stats = greedy_and_engine(student, 0, prompts, max_new, [0] * 6, 64, 4, 4)
    assert stats["preemptions"] == 0


def test_engine_with_preemptions_and_staggered_arrivals(student):
    prompts = prompts_for(2, 7, 1, 10)
    max_new = [9, 6, 12, 4, 8, 10, 5]
    arrivals = [0, 0, 1, 3, 3, 6, 20]
    stats = greedy_and_engine(student, 1, prompts, max_new, arrivals, 10, 2, 4)
    assert stats["preemptions"] > 0, "test setup: this case must force preemptions"
    assert stats["steps"] > 20


def test_engine_with_shared_prompt_prefixes(student):
    base = prompts_for(3, 1, 13, 13)[0]
    prompts = [base, [*base[:8], 1, 2], base[:8], list(base), [*base[:4], 5, 5, 5, 5, 5]]
    max_new = [6, 7, 5, 4, 6]
    arrivals = [0, 1, 1, 2, 5]
    stats = greedy_and_engine(student, 2, prompts, max_new, arrivals, 40, 4, 3)
    assert stats["prefill_tokens"] < sum(map(len, prompts)), "test setup: no prefix was shared"
