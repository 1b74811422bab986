"""Decoding with a trained `DecoderLM` (task hw3.5): greedy and sampled generation.

    >>> out = generate(model, [[1, 57, 310, 4]], max_new_tokens=20, eos_id=2)
    >>> out                      # one continuation per prompt, new tokens only
    [[88, 12, 430, 2]]

A decoder-only model continues a prompt one token at a time: it reads the
sequence so far, the logits at the last position give a distribution over
the next token, one token is chosen and appended, and so on until the model
emits `eos_id` or a length limit is reached.

Choosing the next token from the logits `z` (a vector of `n_vocab` numbers):

- greedy (`temperature == 0`): the id with the largest logit; when several
  ids tie, the lowest of them (what `numpy.argmax` returns);
- sampling (`temperature > 0`): from `p = softmax(z / temperature)`, with
  `top_k` = k keeping only the k ids of largest logits (ties broken towards
  the lower id) and renormalizing `p` over them. Small temperatures sharpen
  the distribution towards greedy, large ones flatten it; `top_k=1` is
  greedy whatever the temperature.

The random draw is fixed, so that a seed fixes the output: at each step,
one `u = rng.random(n)` for the `n` prompts still being continued (in their
order), and the token of prompt `b` is the first id whose cumulative
probability exceeds `u[b]` (`numpy.searchsorted(numpy.cumsum(p), u[b],
side="right")`, or the last id with a nonzero probability if rounding leaves
the total below `u[b]`). The probabilities are computed with NumPy in
float64 from the logits.

There is no cache of keys and values: every step runs the model on the
whole sequence so far. The prompts of a call are continued together, as one
batch padded on the right: a causal model's logits at position `t` depend
only on tokens `0..t`, so the padding after a sequence's last token changes
nothing, and each prompt gets exactly what it would get alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .modules_basic import Rng, make_rng
from .tensor import Tensor

if TYPE_CHECKING:
    from .modules_transfomer import DecoderLM
    from .tensor_ops import TensorBackend

__all__ = ["generate", "next_token_distribution"]


def next_token_distribution(
    logits: np.ndarray, temperature: float, top_k: int | None = None
) -> np.ndarray:
    """The sampling distribution of each row of `logits` (shape `(n, n_vocab)`).

    Row `b` of the result is `softmax(logits[b] / temperature)`, restricted to
    the `top_k` largest logits of row `b` when `top_k` is given (the others get
    probability 0, the kept ones are renormalized; among equal logits the
    lower ids are kept). Computed stably: the row maximum is subtracted before
    `exp`, so no logit overflows.

    Raises:
        ValueError: when `temperature <= 0` or `top_k < 1`.
    """
    if not temperature > 0.0:
        raise ValueError(f"sampling needs a positive temperature, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < z.shape[1]:
        # A stable sort of -z puts larger logits first and, among ties, lower ids first.
        order = np.argsort(-z, axis=1, kind="stable")
        dropped = order[:, top_k:]
        z = z.copy()
        np.put_along_axis(z, dropped, -np.inf, axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _draw(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: for each row `b`, the first id whose cumulative
    probability exceeds `u[b]` (the last id of nonzero probability at most)."""
    # The number of cumulative probabilities <= u is searchsorted(..., side="right").
    ids = (np.cumsum(p, axis=1) <= np.asarray(u)[:, None]).sum(axis=1)
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0.0, axis=1)
    return np.minimum(ids, last)


def generate(
    model: DecoderLM,
    prompts: Sequence[Sequence[int]] | Sequence[np.ndarray],
    max_new_tokens: int,
    eos_id: int | None,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: Rng = None,
    backend: TensorBackend | None = None,
) -> list[list[int]]:
    """Continue each prompt with at most `max_new_tokens` tokens.

    Args:
        model: a `DecoderLM` (any module mapping ids `(B, T)` to logits
            `(B, T, n_vocab)` with an `n_positions` attribute). It runs in
            evaluation mode (no dropout); its mode is restored afterwards.
        prompts: a list of prompts, each a non-empty sequence of token ids
            (a single prompt is a list of one). Prompts may differ in length.
        max_new_tokens: the most tokens added to each prompt (>= 0).
        eos_id: the token that ends a continuation; None to never stop early.
        temperature: 0 for greedy decoding, > 0 to sample (module docstring).
        top_k: sample only among the k most likely tokens (None: all).
        rng: the random source of sampling: a `numpy.random.Generator` (used
            and advanced), an int seed, or None (seed 0). Greedy decoding
            draws nothing.
        backend: the tensor backend of the ids (default: `model.backend`).

    Returns:
        One list per prompt: the new tokens only, in order. A continuation
        that stopped at `eos_id` ends with it (`eos_id` included); otherwise
        it stopped at a length limit: `max_new_tokens` tokens, or as many as
        keep the whole sequence (prompt + continuation) within
        `model.n_positions` tokens, whichever comes first.

    Raises:
        ValueError: for an empty prompt, one longer than `model.n_positions`,
            a negative `max_new_tokens` or temperature, or `top_k < 1`.

    Plan: keep the sequences and the indices of the prompts still being
    continued. Each step: a right-padded `(n_active, longest)` batch of those
    sequences, the model's logits, for each row the logits at its own last
    position; the next tokens (greedy: argmax; sampling:
    `next_token_distribution` and one `rng.random(n_active)`); append them,
    and drop from the active set the rows that emitted `eos_id` or reached a
    limit. Stop when no row is active.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, not {max_new_tokens}")
    if temperature < 0.0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    limit = int(model.n_positions)
    sequences = [[int(t) for t in np.asarray(p).reshape(-1)] for p in prompts]
    for i, seq in enumerate(sequences):
        if not 1 <= len(seq) <= limit:
            raise ValueError(f"prompt {i} has {len(seq)} tokens; 1 to {limit} are allowed")
    backend = model.backend if backend is None else backend
    gen = make_rng(rng) if temperature > 0.0 else None
    was_training = model.training
    model.eval()
    try:
        starts = [len(seq) for seq in sequences]

        def open_rows() -> list[int]:
            return [
                b
                for b, seq in enumerate(sequences)
                if len(seq) - starts[b] < max_new_tokens
                and len(seq) < limit
                and not (eos_id is not None and len(seq) > starts[b] and seq[-1] == eos_id)
            ]

        active = open_rows()
        while active:
            lengths = np.array([len(sequences[b]) for b in active])
            ids = np.zeros((len(active), int(lengths.max())))
            for row, b in enumerate(active):
                ids[row, : lengths[row]] = sequences[b]
            tokens = Tensor.make(ids.ravel(), ids.shape, backend=backend)
            logits = model(tokens).to_numpy()
            last = logits[np.arange(len(active)), lengths - 1]
            if gen is None:
                chosen = np.argmax(last, axis=1)
            else:
                p = next_token_distribution(last, temperature, top_k)
                chosen = _draw(p, gen.random(len(active)))
            for row, b in enumerate(active):
                sequences[b].append(int(chosen[row]))
            active = open_rows()
        return [seq[start:] for seq, start in zip(sequences, starts, strict=True)]
    finally:
        if was_training:
            model.train()
