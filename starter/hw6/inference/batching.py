"""Batched generation of prompts of different lengths (task hw6.2): `pad_prompts`,
`forward_padded`, `batched_generate`.

One forward pass over B sequences costs little more than over one on hardware
that is busy with a single sequence, but prompts have different lengths. Pad
them on the LEFT to a common length, so that every row's last token is in the
last column and every row's next token goes into the same new column:

    prompts        ids (pad 0)       attention_mask    positions
    [5, 6, 7]      [5, 6, 7]         [1, 1, 1]         [0, 1, 2]
    [8]            [0, 0, 8]         [0, 0, 1]         [0, 0, 0]

A row must compute exactly what it computes alone, so:

- positions count a row's real tokens from 0 (pads get position 0; their
  value is irrelevant, they are never attended);
- a real query attends to the real keys at or before it, never to a pad: the
  attention mask over the keys joins the causal mask;
- a pad query has no real key at or before it; let it attend to its own key
  only (its output is meaningless and never used), so that no row of the
  attention is empty.

The batch's KV cache (`inference.kv_cache.KVCache`) holds the pads' keys and
values too; the attention mask keeps growing with the cache, one column (1,
real) per decoded token, so the pads stay masked for every later query.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .kv_cache import KVCache
from .model import GPT, attend, causal_mask

__all__ = ["batched_generate", "forward_padded", "pad_prompts"]


def pad_prompts(prompts: list[list[int]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """(ids, attention_mask, positions), each (B, T_max) long: the prompts padded on the
    left with `pad_id` to the longest's length T_max; attention_mask 1 at real tokens
    and 0 at pads; positions 0, 1, ... over each row's real tokens and 0 at pads.
    No prompt, or an empty prompt, is a ValueError."""
    raise NotImplementedError("hw6.2: Batched generation of prompts of different lengths")


def forward_padded(
    model: GPT, ids: Tensor, positions: Tensor, attention_mask: Tensor, cache: KVCache
) -> Tensor:
    """Logits (B, T_new, V) of new tokens `ids` (B, T_new) at `positions` (B, T_new),
    after the `cache.length` tokens in `cache` (extended by this call).

    `attention_mask` (B, cache.length + T_new) marks every key, cached then new: 1
    real, 0 pad. New token i (of T_new) may attend to key j when j is at or
    before it (the last T_new rows of the causal mask over cache.length + T_new
    keys) and key j is real, or when j is token i itself. Each block as in
    `kv_cache.forward_cached`, with this mask.
    """
    raise NotImplementedError("hw6.2: Batched generation of prompts of different lengths")


def batched_generate(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_id: int | None = None,
) -> list[list[int]]:
    """Greedy decoding of all `prompts` together: entry i is the new tokens of prompt
    i, exactly what `kv_cache.generate(model, prompts[i], max_new_tokens, eos_id)`
    returns for it alone (at most `max_new_tokens`; ending at `eos_id` when that is
    produced, while the other rows go on).

    Plan: pad the prompts (`pad_prompts`); one `forward_padded` call over the
    whole padded batch (prefill); then one call per step feeding every row's
    newest token (B, 1) at its next position, the attention mask one real
    column longer. A row that has finished may keep being fed (its tokens are
    no longer recorded); stop when every row has finished. Prompt plus new
    tokens must fit in the model's `n_positions`. The tests count what the
    model's modules see (`block.attn.qkv`): one call over all B x T_max padded
    tokens, then one call per step, with at most one token per row.
    """
    raise NotImplementedError("hw6.2: Batched generation of prompts of different lengths")
