"""Public tests of task hw6.2: batched generation with left padding (inference/batching.py).

The model is the float64 GPT of `inference_common.CONFIG` (seed 0); the oracles
are the full recompute of each prompt ALONE (given code only, in probes of
their own). Logits to rtol 1e-9, atol 1e-10 (`LOGITS_TOL`), tokens exactly.

- `pad_prompts`: left padding, the attention mask and the positions of a small
  example, exactly, and of seeded random prompts;
- `forward_padded`: a padded prefill and then decode steps give, for every
  real token of every row, the logits of that row's sequence recomputed alone
  (a pad seen by a real query, or a position counted from the pads, breaks it);
- `batched_generate`: each row's output equals greedy decoding of its prompt
  alone, for prompts of lengths 1 to 11; another `pad_id` (and so other pad
  tokens) changes nothing; a row that produces EOS stops there while the others
  go on; the model's modules see the whole padded batch in one call (prefill),
  then one call per step with one token per row.
"""

import numpy as np
import pytest
from inference_common import (
    CONFIG,
    LOGITS_TOL,
    first_eos_cut,
    probe_full_logits,
    probe_greedy_full,
    random_prompts,
)

pytestmark = pytest.mark.task("hw6.2")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_pad_prompts(prompts, pad_id):
    """pad_prompts(prompts, pad_id) as three lists of lists."""
    from inference.batching import pad_prompts

    return [t.tolist() for t in pad_prompts([list(p) for p in prompts], pad_id)]


def probe_padded_logits(config, seed, prompts, pad_id, steps):
    """GPT(config, seed); the prompts padded (pad_prompts) and run through
    forward_padded (prefill), then each column of `steps` (one token per row per
    step) fed at the next positions with the mask one real column longer. The
    logits of every call, per row and real token: a list per row of (V,) rows."""
    import numpy as np
    import torch
    from inference.batching import forward_padded, pad_prompts
    from inference.kv_cache import KVCache
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    ids, mask, positions = pad_prompts([list(p) for p in prompts], pad_id)
    cache = KVCache(model.config.n_layer)
    logits = forward_padded(model, ids, positions, mask, cache)
    rows = [logits[i, mask.shape[1] - len(p) :].numpy().copy() for i, p in enumerate(prompts)]
    next_pos = positions[:, -1:] + 1
    for column in steps:
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        tokens = torch.tensor(column, dtype=torch.long)[:, None]
        logits = forward_padded(model, tokens, next_pos, mask, cache)
        next_pos = next_pos + 1
        rows = [np.concatenate([r, logits[i].numpy()]) for i, r in enumerate(rows)]
    return rows


def probe_batched_generate(config, seed, prompts, max_new_tokens, pad_id, eos_id):
    """batched_generate(GPT(config, seed), prompts, max_new_tokens, pad_id, eos_id)."""
    import torch
    from inference.batching import batched_generate
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    out = batched_generate(model, [list(p) for p in prompts], max_new_tokens, pad_id, eos_id)
    return [[int(t) for t in row] for row in out]


def probe_batched_calls(config, seed, prompts, max_new_tokens, pad_id, eos_id):
    """batched_generate as in `probe_batched_generate`, and per block the input
    shapes [rows, tokens] of each call of its `attn.qkv`."""
    import torch
    from inference.batching import batched_generate
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    shapes = [[] for _ in model.blocks]
    for layer, block in enumerate(model.blocks):
        block.attn.qkv.register_forward_hook(
            lambda module, inputs, output, layer=layer: shapes[layer].append(
                [int(inputs[0].shape[0]), int(inputs[0].shape[1])]
            )
        )
    out = batched_generate(model, [list(p) for p in prompts], max_new_tokens, pad_id, eos_id)
    return {"tokens": [[int(t) for t in row] for row in out], "shapes": shapes}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def expected_padding(prompts, pad_id):
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    positions = [[0] * (width - len(p)) + list(range(len(p))) for p in prompts]
    return [ids, mask, positions]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_pad_prompts_example(student):
    got = student.run(probe_pad_prompts, [[5, 6, 7], [8], [1, 2]], 0)
    assert got == [
        [[5, 6, 7], [0, 0, 8], [0, 1, 2]],
        [[1, 1, 1], [0, 0, 1], [0, 1, 1]],
        [[0, 1, 2], [0, 0, 0], [0, 0, 1]],
    ], "(ids, attention_mask, positions) with LEFT padding"


def test_pad_prompts_random(student):
    prompts = random_prompts(10, 6, 1, 9)
    got = student.run(probe_pad_prompts, prompts, 17)
    assert got == expected_padding(prompts, 17)


def test_forward_padded_matches_each_row_alone(student):
    prompts = [[3, 1, 4, 1, 5, 9, 2], [6], [5, 3, 5, 8], [9, 7, 9, 3, 2, 3, 8]]
    steps = [[7, 11, 13, 2], [0, 31, 4, 4], [12, 12, 12, 12]]
    got = student.run(probe_padded_logits, CONFIG, 0, prompts, 0, steps)
    for row, prompt in enumerate(prompts):
        sequence = prompt + [column[row] for column in steps]
        want = student.run(probe_full_logits, CONFIG, 0, [sequence])[0]
        np.testing.assert_allclose(
            got[row],
            want,
            **LOGITS_TOL,
            err_msg=f"row {row} (prompt of {len(prompt)}): its logits differ from the row "
            "alone; are pads attended, or positions counted from the pads?",
        )


def test_batched_generate_equals_one_at_a_time(student):
    prompts = random_prompts(11, 5, 1, 11)
    got = student.run(probe_batched_generate, CONFIG, 0, prompts, 12, 0, None)
    want = student.run(probe_greedy_full, CONFIG, 0, prompts, 12, None)
    for row, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        assert mine == theirs, f"row {row}, prompt {prompts[row]}"


def test_pad_id_changes_nothing(student):
    prompts = [[1, 2], [4, 5, 6, 7, 8, 9, 10, 11], [30], [7, 7, 7, 7]]
    want = student.run(probe_greedy_full, CONFIG, 0, prompts, 10, None)
    for pad_id in (0, 31, 7):
        got = student.run(probe_batched_generate, CONFIG, 0, prompts, 10, pad_id, None)
        assert got == want, (
            f"pad_id {pad_id}: each row must equal its prompt decoded alone, whatever the pads"
        )


def test_eos_stops_only_its_row(student):
    prompts = random_prompts(29, 4, 2, 9)
    free = student.run(probe_greedy_full, CONFIG, 0, prompts, 12, None)
    eos_id = free[1][2]  # row 1 produces it by step 2
    want = [first_eos_cut(tokens, eos_id) for tokens in free]
    assert any(len(w) == 12 for w in want), "test setup: some row goes on to the end"
    got = student.run(probe_batched_generate, CONFIG, 0, prompts, 12, 0, eos_id)
    assert got == want, f"eos {eos_id}: each row ends at its first eos, the others go on"


def check_batched_calls(got, prompts, what):
    """One prefill call over the whole padded batch, then one call per step (the
    longest output's length - 1 steps), each with at most one token per row."""
    steps = max(len(row) for row in got["tokens"]) - 1
    width = max(len(p) for p in prompts)
    for layer, shapes in enumerate(got["shapes"]):
        assert len(shapes) == 1 + steps, (
            f"{what}: block {layer}'s attention was called {len(shapes)} times for {steps} "
            "decode steps; expected one prefill call and one call per step"
        )
        assert shapes[0] == [len(prompts), width], (
            f"{what}: the prefill must run all {len(prompts)} padded prompts of {width} "
            f"tokens in one call (block {layer} saw {shapes[0]})"
        )
        for step, (rows, tokens) in enumerate(shapes[1:]):
            assert rows <= len(prompts) and tokens == 1, (
                f"{what}: step {step + 1} must feed one token per row (block {layer} saw "
                f"{rows} rows of {tokens} tokens)"
            )


def test_one_prefill_call_then_one_call_per_step(student):
    prompts = random_prompts(13, 5, 1, 10)
    got = student.run(probe_batched_calls, CONFIG, 0, prompts, 9, 0, None)
    want = student.run(probe_greedy_full, CONFIG, 0, prompts, 9, None)
    assert got["tokens"] == want
    check_batched_calls(got, prompts, "5 prompts, 9 new tokens")
