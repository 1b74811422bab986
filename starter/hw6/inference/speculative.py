"""Speculative decoding (task hw6.5): `speculative_step`, `speculative_generate`.

A small draft model proposes k tokens, one at a time (cheap); the large
target model then scores the context and all k proposals in ONE forward pass,
which gives its distribution p_t at each of the k + 1 positions. Proposal
x_i, drawn from the draft's distribution p_d at its position, is accepted with
probability

    min(1, p_t(x_i) / p_d(x_i)).

At the first rejection, the step ends with one token drawn from the residual

    r(x) = max(0, p_t(x) - p_d(x)) / sum_y max(0, p_t(y) - p_d(y))

(the target's mass that the draft under-proposes). If all k are accepted, the
target's distribution after the last proposal gives one bonus token for free.
Every token produced this way is distributed exactly as if it were sampled
from the target alone (Leviathan et al., 2023; Chen et al., 2023): accepting
x gives p_d(x) min(1, p_t(x)/p_d(x)) = min(p_d(x), p_t(x)), and a rejection
(probability sum_y max(0, p_d(y) - p_t(y)), which equals the residual's
normalising sum) followed by a draw from r adds max(0, p_t(x) - p_d(x)); the
two add up to p_t(x). A step produces 1 to k + 1 tokens for one target call.

Temperature: distributions are `probs(logits, temperature)` (given below);
at temperature 0 they are one-hot at the argmax, so the rule above becomes:
accept iff the proposal is the target's argmax, and the correction or bonus
token is the target's argmax: the output is the target's greedy decoding,
token for token.

The models are called only as `model(ids)`, ids a (1, T) long tensor, returning
logits (1, T, V) (a `GPT` of `inference/model.py`, or any such callable): no
cache, full recompute. All randomness comes from the `generator` given
(`torch.multinomial(..., generator=generator)`, `torch.rand(...,
generator=generator)`), so a seed fixes the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["probs", "speculative_generate", "speculative_step"]

#: A model as used here: (1, T) long ids -> (1, T, V) float logits.
Model = Callable[[Tensor], Tensor]


def probs(logits: Tensor, temperature: float) -> Tensor:
    """softmax(logits / temperature) over the last dimension; at temperature 0 the
    one-hot of the argmax (greedy). A negative temperature is a ValueError."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        one_hot = torch.zeros_like(logits)
        return one_hot.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 1.0)
    return (logits / temperature).softmax(dim=-1)


def speculative_step(
    target: Model,
    draft: Model,
    ids: list[int],
    k: int,
    temperature: float,
    generator: torch.Generator,
) -> list[int]:
    """One step of speculative decoding after the context `ids`: the new tokens
    (1 to k + 1 of them).

    Plan: the draft proposes x_1 .. x_k, each drawn from p_d = probs(draft's
    last logits, temperature) after the context and the proposals before it
    (k draft calls). The target runs ONCE on context + all k proposals; its
    logits at the last k + 1 positions give p_t for x_1 .. x_k and for the
    bonus. For i = 1 .. k: accept x_i with probability min(1, p_t(x_i) /
    p_d(x_i)) (one uniform draw, at a positive temperature); at the first
    rejection return the accepted ones followed by one draw from the residual
    (module docstring). All accepted: add one draw from the target's last
    distribution. At temperature 0 no draw is random (the rule above with
    one-hot distributions). k = 0 is a plain target step (one token).
    """
    raise NotImplementedError("hw6.5: Speculative decoding")


def speculative_generate(
    target: Model,
    draft: Model,
    prompt: list[int],
    max_new_tokens: int,
    k: int,
    temperature: float = 0.0,
    seed: int | None = None,
) -> tuple[list[int], dict[str, Any]]:
    """Exactly `max_new_tokens` new tokens after `prompt` by speculative steps, and
    statistics.

    Each step proposes k' = min(k, remaining - 1) tokens, where remaining is the
    number of tokens still to produce, so that no step produces more than
    needed (the last step may be a plain target step, k' = 0). The generator of
    every step is one `torch.Generator` seeded `seed` (a fresh random seed when
    None). Stats:

    - "proposed": draft tokens proposed, summed over the steps (the k's);
    - "accepted": proposals accepted;
    - "acceptance_rate": accepted / proposed (0.0 when nothing was proposed);
    - "target_calls": target forward passes, one per step.

    Every step yields its accepted proposals plus one target token, so
    len(tokens) == accepted + target_calls.
    """
    raise NotImplementedError("hw6.5: Speculative decoding")
