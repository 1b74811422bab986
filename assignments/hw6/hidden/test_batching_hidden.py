"""Hidden tests of task hw6.2 (never shipped to students; students see names and outcomes).

Stronger than the public tests; oracles are the reference's runs (greedy
decoding of each prompt alone, full-recompute logits), tolerances as there
(logits rtol 1e-9, atol 1e-10; tokens exactly):

- `pad_prompts`: one prompt, equal lengths, prompts of one token, a large
  pad id; no prompt or an empty prompt is a ValueError;
- `forward_padded`: other model shapes; new tokens fed several at a time after
  a padded prefill; logits of real tokens unchanged by the pad id;
- `batched_generate` against each prompt alone: 8 prompts of 1 to 20 tokens on
  other models, a batch of one, identical prompts, max_new_tokens 0 and 1, EOS
  id 0 (falsy), every row ending early at EOS; and the calls the modules see.
"""

import numpy as np
import pytest
from inference_common import (
    CONFIG,
    LOGITS_TOL,
    first_eos_cut,
    probe_greedy_full,
    random_prompts,
)
from test_batching import (
    check_batched_calls,
    expected_padding,
    probe_batched_calls,
    probe_batched_generate,
    probe_pad_prompts,
)

pytestmark = pytest.mark.task("hw6.2")

WIDE = {"vocab_size": 50, "n_embd": 24, "n_head": 8, "n_layer": 3, "n_positions": 40}
NARROW = {"vocab_size": 20, "n_embd": 12, "n_head": 2, "n_layer": 3, "n_positions": 24}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_pad_errors(cases):
    """For each prompts list: whether pad_prompts(prompts, 0) raised ValueError."""
    from inference.batching import pad_prompts

    out = []
    for prompts in cases:
        try:
            pad_prompts(prompts, 0)
        except ValueError:
            out.append(True)
        else:
            out.append(False)
    return out


def probe_padded_chunks(config, seed, prompts, pad_id, chunks):
    """GPT(config, seed); padded prefill through forward_padded, then each chunk
    (B rows of c tokens) fed at the next c positions of every row, the mask c real
    columns longer. Per row, the logits of its real tokens, in order."""
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
    last = positions[:, -1:]
    for chunk in chunks:
        c = len(chunk[0])
        mask = torch.cat([mask, torch.ones(mask.shape[0], c, dtype=mask.dtype)], dim=1)
        pos = last + 1 + torch.arange(c)
        logits = forward_padded(model, torch.tensor(chunk, dtype=torch.long), pos, mask, cache)
        last = pos[:, -1:]
        rows = [np.concatenate([r, logits[i].numpy()]) for i, r in enumerate(rows)]
    return rows


def probe_alone_logits(config, seed, sequences):
    """Full-recompute logits of each sequence alone (the oracle, on the reference)."""
    import torch
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    return [model(torch.tensor([s], dtype=torch.long))[0].numpy() for s in sequences]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompts", "pad_id"),
    [
        ([[4, 5, 6]], 0),
        ([[1, 2], [3, 4], [5, 6]], 9),
        ([[7], [8], [9, 10, 11, 12, 13]], 49),
        ([[0] * 6, [0]], 0),
    ],
)
def test_pad_prompts_edge_cases(student, prompts, pad_id):
    assert student.run(probe_pad_prompts, prompts, pad_id) == expected_padding(prompts, pad_id)


def test_pad_prompts_rejects_empty(student):
    assert student.run(probe_pad_errors, [[], [[1, 2], []], [[]]]) == [True, True, True]


@pytest.mark.parametrize(("config", "seed"), [(WIDE, 2), (NARROW, 6)])
def test_forward_padded_in_chunks(student, reference, config, seed):
    prompts = random_prompts(seed, 4, 1, 9, config["vocab_size"])
    rng = np.random.default_rng(seed)
    chunks = [rng.integers(0, config["vocab_size"], (4, c)).tolist() for c in (1, 3, 1, 2)]
    for pad_id in (0, config["vocab_size"] - 1):
        got = student.run(probe_padded_chunks, config, seed, prompts, pad_id, chunks)
        sequences = [
            p + [t for chunk in chunks for t in chunk[row]] for row, p in enumerate(prompts)
        ]
        want = reference.run(probe_alone_logits, config, seed, sequences)
        for row, (mine, theirs) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_allclose(
                mine, theirs, **LOGITS_TOL, err_msg=f"pad {pad_id}, row {row} ({prompts[row]})"
            )


@pytest.mark.parametrize(("config", "seed"), [(WIDE, 3), (NARROW, 8), (CONFIG, 21)])
def test_batched_generate_against_alone(student, reference, config, seed):
    prompts = random_prompts(seed, 8, 1, 14, config["vocab_size"])
    max_new = min(10, config["n_positions"] - 14)
    got = student.run(probe_batched_calls, config, seed, prompts, max_new, 1, None)
    want = reference.run(probe_greedy_full, config, seed, prompts, max_new, None)
    assert got["tokens"] == want
    check_batched_calls(got, prompts, f"config {config}")


def test_batch_of_one_and_identical_prompts(student, reference):
    for prompts in ([[5, 4, 3, 2, 1]], [[9, 9, 2]] * 3, [[1], [2, 3, 4, 5, 6, 7], [1]]):
        got = student.run(probe_batched_generate, CONFIG, 0, prompts, 8, 0, None)
        assert got == reference.run(probe_greedy_full, CONFIG, 0, prompts, 8, None), prompts


def test_zero_and_one_new_token(student, reference):
    prompts = [[1, 2, 3], [4], [5, 6]]
    assert student.run(probe_batched_generate, CONFIG, 0, prompts, 0, 0, None) == [[], [], []]
    got = student.run(probe_batched_generate, CONFIG, 0, prompts, 1, 0, None)
    assert got == reference.run(probe_greedy_full, CONFIG, 0, prompts, 1, None)


@pytest.mark.parametrize("seed", [47, 51])
def test_eos_id_zero(student, reference, seed):
    prompts = random_prompts(seed, 4, 2, 9)
    want = reference.run(probe_greedy_full, CONFIG, 0, prompts, 10, 0)
    assert any(len(w) < 10 for w in want) and any(len(w) == 10 for w in want), "test setup"
    got = student.run(probe_batched_generate, CONFIG, 0, prompts, 10, 5, 0)
    assert got == want, "eos_id 0 is an EOS like any other"


def test_every_row_ends_at_eos(student, reference):
    prompts = random_prompts(64, 4, 2, 9)
    free = reference.run(probe_greedy_full, CONFIG, 0, prompts, 12, None)
    eos_id = 6  # each row produces it, after 5 to 10 tokens
    want = [first_eos_cut(tokens, eos_id) for tokens in free]
    assert all(len(w) < 12 for w in want), "test setup: every row produces the eos"
    got = student.run(probe_batched_calls, CONFIG, 0, prompts, 12, 0, eos_id)
    assert got["tokens"] == want
    check_batched_calls(got, prompts, "every row ends early")
