"""Hidden tests of task hw6.5 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- temperature 0 against the reference (tokens and stats, which are
  deterministic there): drafts close to the target, far from it, and an
  unrelated smaller model; k from 0 to 7; 1 to 17 new tokens; other model
  shapes;
- sampling with bigram models (exact distributions known), each a chi-square
  test with p-value threshold 1e-6 (false-fail rate below 1e-6 each, about 4e-6
  for the file's four such tests; cells expected fewer than 5 times pooled),
  deterministic (fixed seeds):
  * the first 2 tokens, vocabulary 5, temperature 0.7, k = 3, a draft that
    never proposes some tokens the target likes and proposes some the target
    never takes;
  * the first 3 tokens, vocabulary 3, temperature 1.3, k = 4 (long accepted
    runs and the bonus token);
  * a uniform draft (all logits 0) against a peaked target;
  * `speculative_step` itself, one generator for all calls: its output, a
    sequence of 1 to k + 1 tokens, has exactly the distribution the rule
    implies (accepted x_1..x_j with probability prod_i min(p_t, p_d)(x_i), then
    max(0, p_t - p_d)(y) for a correction y, or p_t(y) for the bonus after k),
    which also pins the number of accepted proposals;
- different seeds give different samples (the seed is used); stats consistent
  in every sampled run.
"""

import math

import numpy as np
import pytest
from inference_common import CONFIG
from test_speculative import (
    DRAFT_NOISE,
    P_VALUE_THRESHOLD,
    PROMPTS,
    bigram_tables,
    check_sampled,
    chi_square_p_value,
    probe_sampled_sequences,
    probe_speculative,
    softmax_rows,
)

pytestmark = pytest.mark.task("hw6.5")

WIDE = {"vocab_size": 50, "n_embd": 24, "n_head": 8, "n_layer": 3, "n_positions": 40}
SMALL_DRAFT = {"vocab_size": 32, "n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 64}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_speculative_models(target_spec, draft_spec, prompts, max_new_tokens, k, temperature):
    """speculative_generate with target GPT(config, seed) and draft GPT(config, seed)
    plus `noise` times seeded N(0, 1) weights; specs are [config, seed, noise]. Per
    prompt: tokens, stats and the target's counted calls."""
    import torch
    from inference.model import GPT, GPTConfig
    from inference.speculative import speculative_generate

    def build(spec):
        config, seed, noise = spec
        model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
        if noise:
            g = torch.Generator().manual_seed(1)
            for p in model.parameters():
                p.add_(noise * torch.randn(p.shape, generator=g, dtype=p.dtype))
        return model

    calls = [0]
    target_model, draft = build(target_spec), build(draft_spec)

    def target(ids):
        calls[0] += 1
        return target_model(ids)

    out = []
    for prompt in prompts:
        calls[0] = 0
        tokens, stats = speculative_generate(
            target, draft, list(prompt), max_new_tokens, k, temperature, 0
        )
        out.append(
            {
                "tokens": [int(t) for t in tokens],
                "stats": {key: float(stats[key]) for key in sorted(stats)},
                "target_calls": calls[0],
            }
        )
    return out


def probe_greedy_target(spec, prompts, max_new_tokens):
    """Greedy decoding of GPT(config, seed) by full recompute (the oracle)."""
    import torch
    from inference.model import GPT, GPTConfig

    config, seed, _ = spec
    model = GPT(GPTConfig(**config), dtype=torch.float64, seed=seed)
    results = []
    for prompt in prompts:
        ids = list(prompt)
        for _ in range(max_new_tokens):
            ids.append(int(model(torch.tensor([ids], dtype=torch.long))[0, -1].argmax()))
        results.append(ids[len(prompt) :])
    return results


def probe_step_outputs(target_table, draft_table, context, k, temperature, n, seed):
    """Bigram models as in `probe_sampled_sequences`; `n` calls of speculative_step(
    target, draft, context, k, temperature, g) with ONE generator g seeded `seed`.
    Counts of each output (tokens joined by ","), and calls that did not make
    exactly one target call and k draft calls."""
    import torch
    from inference.speculative import speculative_step

    class Bigram:
        def __init__(self, table):
            self.table, self.calls = torch.tensor(table, dtype=torch.float64), 0

        def __call__(self, ids):
            self.calls += 1
            return self.table[ids]

    target, draft = Bigram(target_table), Bigram(draft_table)
    g = torch.Generator().manual_seed(seed)
    counts, bad_calls = {}, 0
    for _ in range(n):
        target.calls = draft.calls = 0
        new = speculative_step(target, draft, list(context), k, temperature, g)
        key = ",".join(str(int(t)) for t in new)
        counts[key] = counts.get(key, 0) + 1
        bad_calls += (target.calls, draft.calls) != (1, k)
    return {"counts": counts, "bad_calls": bad_calls}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def step_output_probs(target_table, draft_table, last, k, temperature):
    """The exact distribution of one speculative step's output after a context ending
    in `last`, with bigram models: {"x1,..,xj,y": probability}."""
    p_t, p_d = softmax_rows(target_table, temperature), softmax_rows(draft_table, temperature)
    V = p_t.shape[0]
    out = {}

    def walk(prefix, prev, weight):
        if len(prefix) == k:
            for y in range(V):
                out[",".join(map(str, [*prefix, y]))] = weight * p_t[prev, y]
            return
        for y in range(V):
            correction = weight * max(0.0, p_t[prev, y] - p_d[prev, y])
            key = ",".join(map(str, [*prefix, y]))
            out[key] = out.get(key, 0.0) + correction
        for x in range(V):
            accepted = weight * min(p_t[prev, x], p_d[prev, x])
            if accepted > 0:
                walk([*prefix, x], x, accepted)

    walk([], last, 1.0)
    return out


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "k", "max_new"),
    [
        ([CONFIG, 0, 0.02], 4, 17),
        ([CONFIG, 0, 0.15], 2, 9),
        ([SMALL_DRAFT, 3, 0.0], 3, 10),
        ([CONFIG, 0, DRAFT_NOISE], 7, 16),
        ([CONFIG, 0, DRAFT_NOISE], 1, 5),
    ],
)
def test_greedy_against_reference(student, reference, draft, k, max_new):
    target = [CONFIG, 0, 0.0]
    got = student.run(probe_speculative_models, target, draft, PROMPTS, max_new, k, 0.0)
    want = reference.run(probe_speculative_models, target, draft, PROMPTS, max_new, k, 0.0)
    greedy = reference.run(probe_greedy_target, target, PROMPTS, max_new)
    for prompt, mine, theirs, tokens in zip(PROMPTS, got, want, greedy, strict=True):
        assert mine["tokens"] == tokens, f"prompt {prompt}: not the target's greedy decoding"
        assert mine["stats"] == pytest.approx(theirs["stats"], abs=1e-12), f"prompt {prompt}"
        assert mine["target_calls"] == theirs["target_calls"], "one target call per step"


def test_greedy_other_model_shape(student, reference):
    target, draft = [WIDE, 4, 0.0], [WIDE, 4, 0.05]
    prompts = [[49, 0, 7], [12]]
    got = student.run(probe_speculative_models, target, draft, prompts, 12, 3, 0.0)
    want = reference.run(probe_speculative_models, target, draft, prompts, 12, 3, 0.0)
    assert [r["tokens"] for r in got] == reference.run(probe_greedy_target, target, prompts, 12)
    assert [r["stats"] for r in got] == [r["stats"] for r in want]


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_k_zero_and_one_token(student, temperature):
    plain = student.run(probe_speculative, CONFIG, DRAFT_NOISE, PROMPTS[:2], 6, 0, temperature, 3)
    for result in plain:
        assert result["stats"] == {
            "proposed": 0.0,
            "accepted": 0.0,
            "acceptance_rate": 0.0,
            "target_calls": 6.0,
        }, "k = 0: plain target decoding, one target call per token"
        assert result["target_calls"] == 6 and result["draft_calls"] == 0
    one = student.run(probe_speculative, CONFIG, DRAFT_NOISE, PROMPTS[:2], 1, 4, temperature, 3)
    for result in one:
        assert len(result["tokens"]) == 1
        assert result["stats"]["proposed"] == 0.0 and result["target_calls"] == 1, (
            "one token left: k' = min(k, 0) = 0, a plain target step"
        )


def test_sampling_vocab_5_two_tokens(student):
    target, draft = bigram_tables(1, 5, zeros=[[0, 3, 1], [0, 1, 4], [1, 3, 0], [1, 3, 2]])
    got = student.run(probe_sampled_sequences, target, draft, [3], 2, 3, 0.7, [100, 10_100])
    check_sampled(got, target, 3, 2, 0.7, "k = 3, temperature 0.7, vocabulary 5")
    assert 0 < got["totals"]["accepted"] < got["totals"]["proposed"], "test setup"


def test_sampling_vocab_3_long_runs(student):
    target, draft = bigram_tables(2, 3, zeros=[])
    got = student.run(probe_sampled_sequences, target, draft, [1], 3, 4, 1.3, [8000, 16_000])
    check_sampled(got, target, 1, 3, 1.3, "k = 4, temperature 1.3, vocabulary 3")


def test_sampling_uniform_draft(student):
    target, _ = bigram_tables(3, 4, zeros=[[0, 2, 2]])
    target = (np.asarray(target) * 2.5).tolist()  # peaked
    draft = np.zeros((4, 4)).tolist()
    got = student.run(probe_sampled_sequences, target, draft, [2], 2, 2, 1.0, [0, 8000])
    check_sampled(got, target, 2, 2, 1.0, "uniform draft, k = 2")


def test_step_output_distribution(student):
    target, draft = bigram_tables(4, 3, zeros=[[1, 0, 2]])
    k, temperature, n = 2, 1.0, 8000
    got = student.run(probe_step_outputs, target, draft, [2, 0], k, temperature, n, 9)
    assert got["bad_calls"] == 0, "each step: one target call and k draft calls"
    probs = step_output_probs(target, draft, 0, k, temperature)
    unknown = {key: c for key, c in got["counts"].items() if probs.get(key, 0.0) == 0.0}
    assert not unknown, f"outputs a step can never produce: {unknown}"
    keys = sorted(probs)
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12), "test setup"
    counts = [got["counts"].get(key, 0) for key in keys]
    p_value, stat, df = chi_square_p_value(counts, np.array([probs[key] for key in keys]))
    assert p_value >= P_VALUE_THRESHOLD, (
        f"speculative_step's outputs (accepted proposals, then the correction or bonus) "
        f"are not distributed as the rule implies (chi-square {stat:.1f} on {df} "
        f"degrees of freedom, p = {p_value:.2e})"
    )


def test_the_seed_is_used(student):
    runs = [
        student.run(probe_speculative, CONFIG, DRAFT_NOISE, PROMPTS[:1], 8, 2, 2.0, seed)[0]
        for seed in range(4)
    ]
    assert len({tuple(r["tokens"]) for r in runs}) > 1, "different seeds, different samples"
