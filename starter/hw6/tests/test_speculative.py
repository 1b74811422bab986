"""Public tests of task hw6.5: speculative decoding (inference/speculative.py).

Models: the float64 GPT of `inference_common.CONFIG` (seed 0) as the target, and
as the draft the same GPT with seeded noise added to every weight (so that it
agrees with the target often, not always); for the sampling test, bigram
"models" (logits = a fixed table's row of the last token), which cost almost
nothing per call and whose exact distributions are known here.

- temperature 0: `speculative_generate` equals the target's greedy decoding
  (full recompute, given code only), token for token, and its stats equal
  those of the documented procedure (k' = min(k, remaining - 1) per step),
  computed by an oracle on the given code; `speculative_step` returns the
  accepted proposals and the target's correction, or all k and the bonus,
  with exactly one target call and k draft calls;
- draft == target: every proposal is accepted (temperature 0 and 1), each step
  yields k + 1 tokens, stats counted right, the target's calls counted;
- sampling (temperature 1, k = 2, vocabulary 4): the first 3 generated tokens
  are distributed as the target's own (a chi-square test over the 64
  sequences, 10000 seeded runs); sequences the target gives probability 0
  never occur; every run's stats are consistent; the same seed gives the same
  tokens.

The chi-square test is deterministic (seeds 0..9999 of `speculative_generate`),
so a given implementation passes or fails always. A correct implementation
that draws its random numbers in another order sees other samples: it fails
with probability below 1e-6 (the test's p-value threshold; cells expected
fewer than 5 times are pooled, so the chi-square approximation holds).
"""

import math

import numpy as np
import pytest
from inference_common import CONFIG, probe_greedy_full

pytestmark = pytest.mark.task("hw6.5")

#: Weight noise of the draft (the target's weights plus this times N(0, 1)).
DRAFT_NOISE = 0.04
#: p-value below which the sampling test fails (its false-fail rate).
P_VALUE_THRESHOLD = 1e-6


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_greedy_oracle(config, noise, prompts, max_new_tokens, k):
    """Speculative decoding at temperature 0 by the documented procedure, on the
    given code only: per prompt, the tokens, each step's tokens and the stats."""
    import torch
    from inference.model import GPT, GPTConfig

    target = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    draft = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    g = torch.Generator().manual_seed(1)
    for p in draft.parameters():
        p.add_(noise * torch.randn(p.shape, generator=g, dtype=p.dtype))

    def argmax(model, ids):
        return int(model(torch.tensor([ids], dtype=torch.long))[0, -1].argmax())

    results = []
    for prompt in prompts:
        tokens, steps, proposed, accepted = [], [], 0, 0
        while len(tokens) < max_new_tokens:
            k_step = min(k, max_new_tokens - len(tokens) - 1)
            context, new = list(prompt) + tokens, []
            for _ in range(k_step):
                guess = argmax(draft, context + new)
                if guess != argmax(target, context + new):
                    break
                new.append(guess)
            proposed += k_step
            accepted += len(new)
            new.append(argmax(target, context + new))
            steps.append(new)
            tokens += new
        stats = {"proposed": proposed, "accepted": accepted, "target_calls": len(steps)}
        results.append({"tokens": tokens, "steps": steps, "stats": stats})
    return results


def probe_speculative(config, noise, prompts, max_new_tokens, k, temperature, seed):
    """speculative_generate(target, draft, prompt, ...) per prompt, the models being
    GPT(config, seed 0) and (noise None: the same weights; else) that GPT plus
    noise, wrapped to count their calls. Tokens, stats and the counted calls."""
    import torch
    from inference.model import GPT, GPTConfig
    from inference.speculative import speculative_generate

    class Counted:
        def __init__(self, model):
            self.model, self.calls = model, 0

        def __call__(self, ids):
            self.calls += 1
            return self.model(ids)

    target = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    draft = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    if noise is not None:
        g = torch.Generator().manual_seed(1)
        for p in draft.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g, dtype=p.dtype))
    target, draft = Counted(target), Counted(draft)
    results = []
    for prompt in prompts:
        target.calls = draft.calls = 0
        tokens, stats = speculative_generate(
            target, draft, list(prompt), max_new_tokens, k, temperature, seed
        )
        results.append(
            {
                "tokens": [int(t) for t in tokens],
                "stats": {key: float(stats[key]) for key in sorted(stats)},
                "target_calls": target.calls,
                "draft_calls": draft.calls,
            }
        )
    return results


def probe_step_greedy(config, noise, contexts, k):
    """speculative_step(target, draft, context, k, 0.0, generator) per context (models as
    in `probe_speculative`), with the calls each model got."""
    import torch
    from inference.model import GPT, GPTConfig
    from inference.speculative import speculative_step

    class Counted:
        def __init__(self, model):
            self.model, self.calls = model, 0

        def __call__(self, ids):
            self.calls += 1
            return self.model(ids)

    target = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    draft = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
    g = torch.Generator().manual_seed(1)
    for p in draft.parameters():
        p.add_(noise * torch.randn(p.shape, generator=g, dtype=p.dtype))
    target, draft = Counted(target), Counted(draft)
    out = []
    for context in contexts:
        target.calls = draft.calls = 0
        new = speculative_step(target, draft, list(context), k, 0.0, torch.Generator())
        out.append({"new": [int(t) for t in new], "calls": [target.calls, draft.calls]})
    return out


def probe_sampled_sequences(target_table, draft_table, prompt, n_new, k, temperature, seeds):
    """Bigram models (logits of ids (1, T): table[ids], (1, T, V)); for each seed in
    range(*seeds), speculative_generate(target, draft, prompt, n_new, k, temperature,
    seed). Counts of each generated sequence (index: the tokens as digits base V),
    runs whose output was malformed or whose stats or calls were inconsistent,
    and the stats summed."""
    import numpy as np
    import torch
    from inference.speculative import speculative_generate

    class Bigram:
        def __init__(self, table):
            self.table, self.calls = torch.tensor(table, dtype=torch.float64), 0

        def __call__(self, ids):
            self.calls += 1
            return self.table[ids]

    target, draft = Bigram(target_table), Bigram(draft_table)
    V = len(target_table)
    counts = np.zeros(V**n_new, dtype=np.int64)
    malformed, inconsistent = [], []
    totals = {"proposed": 0, "accepted": 0, "target_calls": 0}
    for seed in range(*seeds):
        target.calls = draft.calls = 0
        tokens, stats = speculative_generate(
            target, draft, list(prompt), n_new, k, temperature, seed
        )
        tokens = [int(t) for t in tokens]
        if len(tokens) != n_new or not all(0 <= t < V for t in tokens):
            malformed.append([seed, tokens])
            continue
        index = 0
        for t in tokens:
            index = index * V + t
        counts[index] += 1
        proposed, accepted, calls = (stats[key] for key in ("proposed", "accepted", "target_calls"))
        rate = accepted / proposed if proposed else 0.0
        if (
            len(tokens) != accepted + calls
            or calls != target.calls
            or proposed != draft.calls
            or not 0 <= accepted <= proposed
            or abs(stats["acceptance_rate"] - rate) > 1e-12
        ):
            inconsistent.append([seed, {key: float(v) for key, v in stats.items()}])
        for key in totals:
            totals[key] += int(stats[key])
    return {
        "counts": counts,
        "malformed": malformed[:5],
        "inconsistent": inconsistent[:5],
        "totals": totals,
    }


# ---------------------------------------------------------------------------
# Helpers: exact distributions and the chi-square test
# ---------------------------------------------------------------------------


def bigram_tables(seed, vocab, zeros):
    """Seeded (vocab, vocab) logit tables of a target and a draft; `zeros` lists
    [which, row, column] entries set to -1e4 (probability exactly 0 after
    softmax)."""
    rng = np.random.default_rng(seed)
    tables = [rng.normal(0.0, 1.2, (vocab, vocab)) for _ in range(2)]
    for which, row, column in zeros:
        tables[which][row, column] = -1e4
    return [t.tolist() for t in tables]


def softmax_rows(table, temperature):
    z = np.asarray(table, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def bigram_sequence_probs(table, last, n_new, temperature):
    """P(t_1 .. t_n | last token `last`) under a bigram table, indexed as the probe's
    counts (tokens as digits base V)."""
    p = softmax_rows(table, temperature)
    V = p.shape[0]
    probs = np.zeros(V**n_new)
    for index in range(V**n_new):
        digits = [(index // V ** (n_new - 1 - i)) % V for i in range(n_new)]
        prob, prev = 1.0, last
        for t in digits:
            prob *= p[prev, t]
            prev = t
        probs[index] = prob
    return probs


def chi2_sf(x, df):
    """P(X >= x) for X chi-square with `df` degrees of freedom: the regularized upper
    incomplete gamma function Q(df/2, x/2) (series or continued fraction)."""
    a, x = df / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-16:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-16:
            break
    return math.exp(log_front) * h


def chi_square_p_value(counts, probs, min_expected=5.0):
    """Pearson's chi-square p-value of `counts` against `probs`, the cells expected
    fewer than `min_expected` times pooled into one; cells of probability 0 must be
    empty (checked by the caller)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum()
    expected = probs * n
    big = expected >= min_expected
    observed = list(counts[big])
    wanted = list(expected[big])
    if (~big).any() and expected[~big].sum() > 0:
        observed.append(counts[~big].sum())
        wanted.append(expected[~big].sum())
    observed, wanted = np.array(observed), np.array(wanted)
    stat = float(((observed - wanted) ** 2 / wanted).sum())
    return chi2_sf(stat, len(wanted) - 1), stat, len(wanted) - 1


def check_sampled(got, target_table, prompt_last, n_new, temperature, what):
    assert not got["malformed"], f"{what}: outputs of the wrong length or vocabulary"
    assert not got["inconsistent"], (
        f"{what}: stats inconsistent (tokens == accepted + target_calls, target_calls == "
        f"the target's calls, proposed == the draft's calls, acceptance_rate == "
        f"accepted / proposed): seed and stats {got['inconsistent']}"
    )
    probs = bigram_sequence_probs(target_table, prompt_last, n_new, temperature)
    counts = np.asarray(got["counts"])
    impossible = counts[probs == 0].sum()
    assert impossible == 0, (
        f"{what}: {impossible} runs produced a sequence the target gives probability 0"
    )
    p_value, stat, df = chi_square_p_value(counts, probs)
    assert p_value >= P_VALUE_THRESHOLD, (
        f"{what}: the generated tokens are not distributed as the target's "
        f"(chi-square {stat:.1f} on {df} degrees of freedom, p = {p_value:.2e})"
    )


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

PROMPTS = [[1, 2, 3], [17], [5, 9, 30, 30, 2, 11, 8, 0]]


def test_greedy_equals_target_greedy(student):
    got = student.run(probe_speculative, CONFIG, DRAFT_NOISE, PROMPTS, 20, 3, 0.0, 0)
    greedy = student.run(probe_greedy_full, CONFIG, 0, PROMPTS, 20, None)
    oracle = student.run(probe_greedy_oracle, CONFIG, DRAFT_NOISE, PROMPTS, 20, 3)
    for prompt, mine, want, theirs in zip(PROMPTS, got, greedy, oracle, strict=True):
        assert mine["tokens"] == want, f"prompt {prompt}: not the target's greedy decoding"
        expected = theirs["stats"]
        assert 0 < expected["accepted"] < expected["proposed"], "test setup: some rejected"
        rate = expected["accepted"] / expected["proposed"]
        assert mine["stats"] == {**expected, "acceptance_rate": pytest.approx(rate, abs=1e-12)}
        assert mine["target_calls"] == expected["target_calls"], "one target call per step"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_step_greedy_accepts_the_matching_prefix(student, k):
    contexts = [[1, 2, 3], [17], [5, 9, 30, 30, 2, 11, 8, 0], [4, 4], [30, 6, 30, 6, 30]]
    got = student.run(probe_step_greedy, CONFIG, DRAFT_NOISE, contexts, k)
    oracle = student.run(probe_greedy_oracle, CONFIG, DRAFT_NOISE, contexts, k + 1, k)
    for context, mine, theirs in zip(contexts, got, oracle, strict=True):
        # the oracle's first step with max_new_tokens = k + 1 is a step of k proposals
        assert mine["new"] == theirs["steps"][0], f"context {context}, k = {k}"
        assert mine["calls"] == [1, k], (
            f"context {context}: [target calls, draft calls] per step must be [1, k]"
        )


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_draft_equal_to_target_accepts_everything(student, temperature):
    # 14 tokens, k = 3: steps of 3 + 1, 3 + 1, 3 + 1 tokens, then k' = 1: 1 + 1
    got = student.run(probe_speculative, CONFIG, None, PROMPTS, 14, 3, temperature, 7)
    for prompt, mine in zip(PROMPTS, got, strict=True):
        assert len(mine["tokens"]) == 14
        assert mine["stats"] == {
            "proposed": 10.0,
            "accepted": 10.0,
            "acceptance_rate": 1.0,
            "target_calls": 4.0,
        }, f"prompt {prompt}: draft == target accepts all; every step adds the bonus token"
        assert mine["target_calls"] == 4, "the target is called once per step"
    if temperature == 0.0:
        greedy = student.run(probe_greedy_full, CONFIG, 0, PROMPTS, 14, None)
        assert [m["tokens"] for m in got] == greedy


def test_sampling_matches_the_target_distribution(student):
    target, draft = bigram_tables(0, 4, zeros=[[0, 0, 3], [1, 1, 2]])
    got = student.run(probe_sampled_sequences, target, draft, [2, 0], 3, 2, 1.0, [0, 10_000])
    check_sampled(got, target, 0, 3, 1.0, "k = 2, temperature 1, vocabulary 4")
    totals = got["totals"]
    assert 0 < totals["accepted"] < totals["proposed"], "test setup: some proposals rejected"


def test_same_seed_same_tokens(student):
    args = (CONFIG, DRAFT_NOISE, PROMPTS[:2], 12, 3, 1.5)
    first = student.run(probe_speculative, *args, 123)
    again = student.run(probe_speculative, *args, 123)
    assert [r["tokens"] for r in first] == [r["tokens"] for r in again]
    for result in first:
        stats = result["stats"]
        assert len(result["tokens"]) == 12 == stats["accepted"] + stats["target_calls"]
        assert stats["target_calls"] == result["target_calls"]
        assert stats["proposed"] == result["draft_calls"]
