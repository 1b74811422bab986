"""The KV cache (task hw6.1): `KVCache`, `forward_cached`, `generate`.

Decoding one token at a time by recomputing the whole sequence costs
O(T^2) token-passes for T tokens. Yet in a causal model the key and value of a
token never change once computed (they depend only on the tokens up to it), so
they can be kept: a step then runs only the new token through the model, and
its query attends to the cached keys and values of all earlier tokens.

    cache = KVCache(model.config.n_layer)
    logits = forward_cached(model, prompt_ids, cache)   # prefill: (B, P, V), caches P tokens
    logits = forward_cached(model, next_ids, cache)     # one step: (B, 1, V), caches one more

For new tokens ids (B, T_new) with L = `cache.length` tokens already cached:

- new token i sits at position L + i (its position embedding is `wpe(L + i)`);
- in every block, its keys and values are appended to that layer's cache, and
  its query attends to the L + T_new keys there, except the new tokens after
  it: the mask is the last T_new rows of the (L + T_new) causal mask
  (`causal_mask(T_new, L + T_new)` of `inference/model.py`);
- the rest of the block (LayerNorms, MLP, residuals) acts on the new tokens only.

The result equals, to float64 rounding, the last T_new rows of `model(all ids)`,
however the sequence is cut into calls. Run the model's own modules
(`block.attn.qkv(h)`, `block.mlp(...)`, ...; see `inference/model.py`): the
tests count the tokens they see.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import GPT, attend, causal_mask

__all__ = ["KVCache", "forward_cached", "generate"]


class KVCache:
    """The keys and values of every token seen so far, per layer.

    `keys[layer]` and `values[layer]` are None before the first append, then
    tensors of shape (B, H, T, D): batch, heads, tokens cached, head size.
    Between two forward passes every layer holds the same tokens.
    """

    def __init__(self, n_layer: int) -> None:
        self.n_layer = n_layer
        self.keys: list[Tensor | None] = [None] * n_layer
        self.values: list[Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        """Tokens cached: the T of layer 0's keys (0 while empty)."""
        # BEGIN SOLUTION hw6.1
        first = self.keys[0]
        return 0 if first is None else first.shape[2]
        # END SOLUTION

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the keys and values of new tokens (each (B, H, T_new, D)) to `layer`'s
        cache, after the ones already there (concatenate along T), and return that
        layer's whole cache (k_all, v_all), each (B, H, T + T_new, D)."""
        # BEGIN SOLUTION hw6.1
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]
        # END SOLUTION


def forward_cached(model: GPT, ids: Tensor, cache: KVCache) -> Tensor:
    """Logits (B, T_new, V) of the new tokens `ids` (B, T_new), given the `cache.length`
    tokens before them in `cache`, which this call extends by the T_new tokens.

    Plan: read L = cache.length first (appending changes it); embed the new
    tokens at positions L .. L + T_new - 1; per block, as in the model's
    forward pass but with the new tokens' keys and values appended to the
    layer's cache and attention over the whole cache with the last T_new rows
    of the causal mask; final LayerNorm and head. Positions past the model's
    `n_positions` are a ValueError.
    """
    # BEGIN SOLUTION hw6.1
    T_new = ids.shape[1]
    start = cache.length
    if start + T_new > model.config.n_positions:
        raise ValueError(
            f"{start + T_new} tokens exceed the model's {model.config.n_positions} positions"
        )
    positions = torch.arange(start, start + T_new, device=ids.device)
    x = model.wte(ids) + model.wpe(positions)
    mask = causal_mask(T_new, start + T_new, ids.device)
    C = x.shape[-1]
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = (attn.split_heads(t) for t in attn.qkv(block.ln_1(x)).split(C, dim=-1))
        k_all, v_all = cache.append(layer, k, v)
        x = x + attn.proj(attn.merge_heads(attend(q, k_all, v_all, mask)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x))
    # END SOLUTION


def generate(
    model: GPT, prompt_ids: list[int], max_new_tokens: int, eos_id: int | None = None
) -> list[int]:
    """Greedy decoding with the cache: the new tokens (not the prompt), at most
    `max_new_tokens`; when `eos_id` is produced it is the last token returned.

    Token t is the argmax of the logits after the prompt and tokens 0 .. t-1,
    exactly as greedy decoding by full recompute (`model(ids)[0, -1].argmax()`),
    but the prompt runs through the model once (prefill, one call) and each
    later step runs only the one token just produced (one call per step), so
    the model sees len(prompt) + n_new - 1 tokens in all. An empty prompt is a
    ValueError; `max_new_tokens` 0 gives [].
    """
    # BEGIN SOLUTION hw6.1
    if len(prompt_ids) == 0:
        raise ValueError("generate needs a non-empty prompt")
    out: list[int] = []
    if max_new_tokens <= 0:
        return out
    cache = KVCache(model.config.n_layer)
    logits = forward_cached(model, torch.tensor([list(prompt_ids)], dtype=torch.long), cache)
    while True:
        token = int(logits[0, -1].argmax())
        out.append(token)
        if token == eos_id or len(out) == max_new_tokens:
            return out
        logits = forward_cached(model, torch.tensor([[token]], dtype=torch.long), cache)
    # END SOLUTION
