"""Public tests of task hw6.1: the KV cache (inference/kv_cache.py).

The model is the float64 GPT of `inference_common.CONFIG` (seed 0); the oracle is
the full recompute `model(ids)` of the given code, in a probe of its own.
Logits must agree with it to rtol 1e-9, atol 1e-10 (`LOGITS_TOL`; rounding
alone is about 1e-14), tokens exactly.

- `KVCache`: `length` 0 when empty; `append` concatenates along T, per layer,
  and returns the layer's whole cache;
- `forward_cached`: a prefill then one token per call gives, at every step,
  the logits of the full recompute (2 rows); a sequence cut into chunks of
  several tokens (each attending to the cache and causally to itself) too;
  `cache.length` counts the tokens;
- `generate`: greedy decoding equal to greedy by full recompute, token for
  token, for several prompts; EOS ends the output (included); the model's
  modules see the prompt once and then one token per step.
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

pytestmark = pytest.mark.task("hw6.1")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_cache_append(n_layer, shape, chunks, seed):
    """KVCache(n_layer); for each chunk length, append seeded keys and values of
    `shape` with T = chunk to every layer in turn. Returns `length` before anything,
    and per append: the (k_all, v_all) returned, the inputs, and `length` after
    each full round over the layers."""
    import torch
    from inference.kv_cache import KVCache

    g = torch.Generator().manual_seed(seed)
    B, H, D = shape
    cache = KVCache(n_layer)
    out = {"length0": int(cache.length), "returned": [], "inputs": [], "lengths": []}
    for t in chunks:
        for layer in range(n_layer):
            k = torch.randn(B, H, t, D, generator=g, dtype=torch.float64)
            v = torch.randn(B, H, t, D, generator=g, dtype=torch.float64)
            k_all, v_all = cache.append(layer, k, v)
            out["inputs"].append([layer, k.numpy().copy(), v.numpy().copy()])
            out["returned"].append([k_all.numpy().copy(), v_all.numpy().copy()])
        out["lengths"].append(int(cache.length))
    return out


def probe_cached_logits(config, seed, ids, chunks):
    """GPT(config, seed), one KVCache; `ids` (B rows) fed through forward_cached in
    consecutive chunks of the given lengths. Per call: the logits and cache.length
    after it."""
    import torch
    from inference.kv_cache import KVCache, forward_cached
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    ids = torch.tensor(ids, dtype=torch.long)
    cache = KVCache(model.config.n_layer)
    out, start = [], 0
    for n in chunks:
        logits = forward_cached(model, ids[:, start : start + n], cache)
        start += n
        out.append({"logits": logits.detach().numpy().copy(), "length": int(cache.length)})
    return out


def probe_generate(config, seed, prompts, max_new_tokens, eos_id):
    """kv_cache.generate(GPT(config, seed), prompt, max_new_tokens, eos_id) per prompt,
    with per prompt the calls of each block's `attn.qkv` and the tokens they saw."""
    import torch
    from inference.kv_cache import generate
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    counts = [[0, 0] for _ in model.blocks]

    def counter(layer):
        def hook(module, inputs, output):
            counts[layer][0] += 1
            counts[layer][1] += int(inputs[0].shape[0] * inputs[0].shape[1])

        return hook

    for layer, block in enumerate(model.blocks):
        block.attn.qkv.register_forward_hook(counter(layer))
    results = []
    for prompt in prompts:
        for c in counts:
            c[0] = c[1] = 0
        tokens = generate(model, list(prompt), max_new_tokens, eos_id)
        results.append({"tokens": [int(t) for t in tokens], "calls": [list(c) for c in counts]})
    return results


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_cache_append_concatenates(student):
    n_layer, chunks = 3, [4, 1, 1, 3]
    got = student.run(probe_cache_append, n_layer, [2, 3, 5], chunks, 0)
    assert got["length0"] == 0, "an empty cache has length 0"
    held = {}
    for (layer, k, v), (k_all, v_all) in zip(got["inputs"], got["returned"], strict=True):
        before_k, before_v = held.get(layer, (k[:, :, :0], v[:, :, :0]))
        held[layer] = (np.concatenate([before_k, k], 2), np.concatenate([before_v, v], 2))
        np.testing.assert_array_equal(k_all, held[layer][0], err_msg=f"layer {layer}'s keys")
        np.testing.assert_array_equal(v_all, held[layer][1], err_msg=f"layer {layer}'s values")
    assert got["lengths"] == np.cumsum(chunks).tolist(), "length counts the tokens cached"


def check_calls_match_full_recompute(student, ids, chunks, hint):
    """forward_cached over `ids` cut into `chunks`: each call's logits are the full
    recompute's rows for its tokens, and cache.length counts the tokens so far."""
    got = student.run(probe_cached_logits, CONFIG, 0, ids, chunks)
    want = student.run(probe_full_logits, CONFIG, 0, ids)
    start = 0
    for call, (n, result) in enumerate(zip(chunks, got, strict=True)):
        np.testing.assert_allclose(
            result["logits"],
            want[:, start : start + n],
            **LOGITS_TOL,
            err_msg=f"call {call} ({n} tokens after {start} cached) differs from the full "
            f"recompute: {hint}",
        )
        start += n
        assert result["length"] == start, f"cache.length after call {call}"


def test_decode_one_token_at_a_time_matches_full_recompute(student):
    prompt_len, steps = 6, 10
    ids = random_prompts(1, 2, prompt_len + steps, prompt_len + steps)
    check_calls_match_full_recompute(
        student,
        ids,
        [prompt_len] + [1] * steps,
        "positions past the cache? attention over all cached tokens?",
    )


def test_chunked_prefill_matches_full_recompute(student):
    chunks = [4, 1, 3, 2, 5]
    ids = random_prompts(2, 3, sum(chunks), sum(chunks))
    check_calls_match_full_recompute(
        student,
        ids,
        chunks,
        "within a chunk, token i attends to the cache and to chunk tokens <= i",
    )


def test_generate_matches_greedy_full_recompute(student):
    prompts = random_prompts(3, 4, 1, 12)
    got = student.run(probe_generate, CONFIG, 0, prompts, 14, None)
    want = student.run(probe_greedy_full, CONFIG, 0, prompts, 14, None)
    for prompt, mine, theirs in zip(prompts, got, want, strict=True):
        assert mine["tokens"] == theirs, f"prompt {prompt}"


def test_generate_stops_at_eos(student):
    prompts = random_prompts(4, 3, 2, 8)
    free = student.run(probe_greedy_full, CONFIG, 0, prompts, 12, None)
    eos_id = free[0][3]  # a token the first prompt produces at step 3 (or before)
    got = student.run(probe_generate, CONFIG, 0, prompts, 12, eos_id)
    for prompt, mine, theirs in zip(prompts, got, free, strict=True):
        assert mine["tokens"] == first_eos_cut(theirs, eos_id), f"prompt {prompt}, eos {eos_id}"
    assert len(got[0]["tokens"]) <= 4


def test_generate_prefills_once_then_one_token_per_step(student):
    prompts = random_prompts(5, 2, 5, 9)
    got = student.run(probe_generate, CONFIG, 0, prompts, 8, None)
    for prompt, result in zip(prompts, got, strict=True):
        n_new = len(result["tokens"])
        assert n_new == 8
        for layer, (calls, tokens) in enumerate(result["calls"]):
            assert (calls, tokens) == (n_new, len(prompt) + n_new - 1), (
                f"prompt of {len(prompt)} tokens, {n_new} new: block {layer}'s attention saw "
                f"{tokens} tokens in {calls} calls; with the cache it sees the prompt once "
                "(one call) and then only the newest token (one call per step)"
            )
