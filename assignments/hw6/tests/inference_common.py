"""What the tests of hw6.1, hw6.2 and hw6.5 share: the small GPT they decode with,
and the oracles every faster way of decoding must match.

The oracles use only the given code (`inference/model.py`) and PyTorch, and run
in probes of their own (never in the same call as student code): logits by
full recompute, `model(ids)`, and greedy decoding by full recompute, one
`model(ids)` over the whole sequence per new token.

Tolerances (float64): a cached or padded forward pass does the same arithmetic
as the full one with other tensor shapes (and masked keys that add exact
zeros), so logits agree to about 1e-14; `LOGITS_TOL` leaves room for that and
nothing more. Token sequences must be equal.
"""

import numpy as np

#: The GPT of the tests (float64, seed 0 unless a test says otherwise; about 27k parameters).
CONFIG = {"vocab_size": 32, "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 64}
#: Tolerances of logits against the full recompute.
LOGITS_TOL = {"rtol": 1e-9, "atol": 1e-10}


def probe_full_logits(config, seed, ids):
    """Logits (B, T, V) of GPT(config, seed) on `ids` (B rows of T ids), by full recompute."""
    import torch
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    return model(torch.tensor(ids, dtype=torch.long)).numpy()


def probe_greedy_full(config, seed, prompts, max_new_tokens, eos_id):
    """For each prompt, greedy decoding by full recompute: the new tokens, at most
    `max_new_tokens`, ending at `eos_id` when that is produced (None: never)."""
    import torch
    from inference.model import GPT, GPTConfig

    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    results = []
    for prompt in prompts:
        ids, new = list(prompt), []
        while len(new) < max_new_tokens:
            token = int(model(torch.tensor([ids], dtype=torch.long))[0, -1].argmax())
            ids.append(token)
            new.append(token)
            if token == eos_id:
                break
        results.append(new)
    return results


def random_prompts(seed, n, min_len, max_len, vocab=CONFIG["vocab_size"]):
    """`n` seeded prompts (lists of ids), lengths uniform in [min_len, max_len]."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, vocab, size=int(rng.integers(min_len, max_len + 1))).tolist()
        for _ in range(n)
    ]


def first_eos_cut(tokens, eos_id):
    """`tokens` cut after the first `eos_id` (all of them when it does not occur)."""
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else list(tokens)
