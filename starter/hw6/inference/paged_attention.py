"""Attention over a paged KV cache (task hw6.4, with `scheduler.py`):
`paged_attention`, `write_kv`.

    k_cache = torch.zeros(num_blocks, block_size, H, D)     # one layer's keys, likewise values
    write_kv(k_cache, v_cache, slots, k, v)                 # k, v: (N, H, D) into N slots
    out = paged_attention(q, k_cache, v_cache, tables, lens)  # q: (B, H, D) -> (B, H, D)

A layer's cache is `num_blocks` blocks of `block_size` slots; slot
`block * block_size + offset` is row `offset` of block `block`, so the flat
view `k_cache.view(num_blocks * block_size, H, D)` numbers every slot. A
sequence's keys are scattered over the blocks of its block table (see
`block_manager`): its token at position p sits in block `table[p // block_size]`
at offset `p % block_size`. Decoding gives each sequence one new query; the
query attends to that sequence's first `context_lens[b]` cached tokens (the
new token's own key included: it is written first).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["paged_attention", "write_kv"]


def write_kv(k_cache: Tensor, v_cache: Tensor, slots: Tensor, k: Tensor, v: Tensor) -> None:
    """Write `k[i]` and `v[i]` (each (H, D)) into flat slot `slots[i]` of
    `k_cache` and `v_cache` (each (num_blocks, block_size, H, D), contiguous),
    in place, for i in 0 .. N-1. slots: (N,) long, all different; k, v: (N, H, D).

    Plan: view each cache as (num_blocks * block_size, H, D) and assign rows.
    """
    if slots.dim() != 1 or k.shape != v.shape or k.shape[0] != slots.shape[0]:
        raise ValueError(
            f"slots {tuple(slots.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not match"
        )
    raise NotImplementedError("hw6.4: Paged attention and a continuous-batching scheduler")


def paged_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor, context_lens: Tensor
) -> Tensor:
    """One decoding query per sequence, attending to its cached keys.

    q: (B, H, D); k_cache, v_cache: (num_blocks, block_size, H, D);
    block_tables: (B, max_blocks) long, row b listing sequence b's blocks in
    order, padded with -1; context_lens: (B,) long, 1 <= context_lens[b] <=
    max_blocks * block_size. With K_b and V_b, (L, H, D), the keys and values of
    sequence b's positions 0 .. L-1 (L = context_lens[b]) gathered through its
    table, returns out (B, H, D) with, for every head h,

        out[b, h] = softmax(K_b[:, h] q[b, h] / sqrt(D)) V_b[:, h]

    Slots past L (the rest of the last block, padding blocks) hold whatever
    (finite) values were there before, and must not count.

    Plan: gather every table's blocks at once (a padded entry may read any
    block), flatten them to positions 0 .. max_blocks * block_size - 1, score
    each position, mask the positions at or past context_lens, softmax, sum
    the values.
    """
    if q.dim() != 3 or block_tables.dim() != 2 or context_lens.shape != (q.shape[0],):
        raise ValueError(
            f"q {tuple(q.shape)}, block_tables {tuple(block_tables.shape)}, "
            f"context_lens {tuple(context_lens.shape)} do not fit together"
        )
    if block_tables.shape[0] != q.shape[0]:
        raise ValueError("block_tables needs one row per query")
    capacity = block_tables.shape[1] * k_cache.shape[1]
    if q.shape[0] and (int(context_lens.min()) < 1 or int(context_lens.max()) > capacity):
        raise ValueError(f"context lengths must lie in 1 .. {capacity}")
    raise NotImplementedError("hw6.4: Paged attention and a continuous-batching scheduler")
