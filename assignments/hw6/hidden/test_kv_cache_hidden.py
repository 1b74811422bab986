"""Hidden tests of task hw6.1 (never shipped to students; students see names and outcomes).

Stronger than the public tests; oracles are the reference's runs of the public
probes (full recompute on the given model), tolerances as there (logits rtol
1e-9, atol 1e-10; tokens exactly):

- other model shapes (3 layers, 2 or 8 heads, odd widths, 50-token vocabulary)
  and seeds, batches of 1 to 4 rows;
- random chunkings of a sequence that fills the model's whole context, single
  tokens and long chunks mixed;
- two caches are independent (no state shared between instances or layers);
- generate: many prompts of length 1 to 20, up to the last position the model
  has; max_new_tokens 0 and 1; EOS produced first; EOS id 0 (a falsy id);
  the calls and tokens the modules see, against the reference's.
"""

import random

import numpy as np
import pytest
from inference_common import CONFIG, LOGITS_TOL, first_eos_cut, random_prompts
from test_kv_cache import probe_cached_logits, probe_generate

pytestmark = pytest.mark.task("hw6.1")

#: Other model shapes: deeper, other head counts, a vocabulary of 50, few positions.
WIDE = {"vocab_size": 50, "n_embd": 24, "n_head": 8, "n_layer": 3, "n_positions": 40}
NARROW = {"vocab_size": 20, "n_embd": 12, "n_head": 2, "n_layer": 3, "n_positions": 24}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_full_logits_hidden(config, seed, ids):
    """Full-recompute logits of GPT(config, seed) (the oracle, on the reference)."""
    import torch
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    return model(torch.tensor(ids, dtype=torch.long)).numpy()


def probe_two_caches(n_layer):
    """Two KVCache(n_layer): one token appended to every layer of the first, three
    to layer 0 only of the second. Lengths of both; then one more token appended to
    every layer of the first, and what its layers return."""
    import torch
    from inference.kv_cache import KVCache

    a, b = KVCache(n_layer), KVCache(n_layer)
    for layer in range(n_layer):
        k = torch.full((1, 2, 1, 3), float(layer), dtype=torch.float64)
        a.append(layer, k, k + 100)
    k_b = torch.full((1, 2, 3, 3), -1.0, dtype=torch.float64)
    b.append(0, k_b, k_b)
    lengths = [int(a.length), int(b.length)]
    again = [a.append(layer, k_b[:, :, :1], k_b[:, :, :1]) for layer in range(n_layer)]
    return {
        "lengths": lengths,
        "first_keys": [kv[0][0, 0, :, 0].tolist() for kv in again],
        "first_values": [kv[1][0, 0, :, 0].tolist() for kv in again],
    }


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def check_chunks(student, reference, config, seed, ids, chunks):
    got = student.run(probe_cached_logits, config, seed, ids, chunks)
    want = reference.run(probe_full_logits_hidden, config, seed, ids)
    start = 0
    for call, (n, result) in enumerate(zip(chunks, got, strict=True)):
        np.testing.assert_allclose(
            result["logits"],
            want[:, start : start + n],
            **LOGITS_TOL,
            err_msg=f"config {config}, seed {seed}: call {call} ({n} tokens after {start})",
        )
        start += n
        assert result["length"] == start, f"cache.length after call {call}"


@pytest.mark.parametrize(("config", "seed", "rows"), [(WIDE, 3, 1), (NARROW, 5, 4), (CONFIG, 9, 2)])
def test_decode_matches_full_recompute_other_models(student, reference, config, seed, rows):
    n = config["n_positions"] // 2
    ids = random_prompts(seed, rows, n, n, config["vocab_size"])
    check_chunks(student, reference, config, seed, ids, [n // 3] + [1] * (n - n // 3))


def test_random_chunks_fill_the_whole_context(student, reference):
    rng = random.Random(41)
    for config, seed in ((NARROW, 2), (WIDE, 7)):
        total, chunks = config["n_positions"], []
        while sum(chunks) < total:
            chunks.append(min(rng.choice([1, 1, 1, 2, 5, 9]), total - sum(chunks)))
        ids = random_prompts(seed, 3, total, total, config["vocab_size"])
        check_chunks(student, reference, config, seed, ids, chunks)


def test_caches_are_independent(student):
    got = student.run(probe_two_caches, 3)
    assert got["lengths"] == [1, 3], "two KVCache instances must not share their tensors"
    assert got["first_keys"] == [[0.0, -1.0], [1.0, -1.0], [2.0, -1.0]], "layers are separate"
    assert got["first_values"] == [[100.0, -1.0], [101.0, -1.0], [102.0, -1.0]]


@pytest.mark.parametrize(("config", "seed"), [(WIDE, 1), (NARROW, 4), (CONFIG, 12)])
def test_generate_against_reference(student, reference, config, seed):
    prompts = random_prompts(seed, 6, 1, 20, config["vocab_size"])
    max_new = config["n_positions"] - 20  # the longest prompt ends at the last position
    got = student.run(probe_generate, config, seed, prompts, max_new, None)
    want = reference.run(probe_generate, config, seed, prompts, max_new, None)
    for prompt, mine, theirs in zip(prompts, got, want, strict=True):
        assert mine["tokens"] == theirs["tokens"], f"prompt {prompt}"
        assert mine["calls"] == theirs["calls"], (
            f"prompt of {len(prompt)}: [calls, tokens] per block {mine['calls']}, "
            f"expected {theirs['calls']} (prefill once, then one token per step)"
        )


def test_generate_zero_and_one_token(student):
    prompts = [[3], [1, 2, 3, 4, 5]]
    assert [r["tokens"] for r in student.run(probe_generate, CONFIG, 0, prompts, 0, None)] == [
        [],
        [],
    ]
    one = student.run(probe_generate, CONFIG, 0, prompts, 1, None)
    for prompt, result in zip(prompts, one, strict=True):
        assert len(result["tokens"]) == 1
        assert result["calls"] == [[1, len(prompt)]] * CONFIG["n_layer"], "one prefill only"


@pytest.mark.parametrize("seed", [47, 51])
def test_generate_eos_id_zero(student, reference, seed):
    prompts = random_prompts(seed, 4, 2, 9)
    free = reference.run(probe_generate, CONFIG, 0, prompts, 10, None)
    want = [first_eos_cut(r["tokens"], 0) for r in free]
    assert any(len(w) < 10 for w in want) and any(len(w) == 10 for w in want), "test setup"
    got = student.run(probe_generate, CONFIG, 0, prompts, 10, 0)
    assert [r["tokens"] for r in got] == want, "eos_id 0 is an EOS like any other"


def test_generate_eos_as_first_token(student, reference):
    prompts = random_prompts(8, 3, 3, 7)
    free = reference.run(probe_generate, CONFIG, 0, prompts, 6, None)
    eos_id = free[0]["tokens"][0]
    got = student.run(probe_generate, CONFIG, 0, prompts, 6, eos_id)
    assert got[0]["tokens"] == [eos_id]
    assert [r["tokens"] for r in got] == [first_eos_cut(r["tokens"], eos_id) for r in free]
