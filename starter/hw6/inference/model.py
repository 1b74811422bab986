"""A small GPT in PyTorch for hw6's inference tasks, and seeded prompts.

    config = GPTConfig(vocab_size=32, n_embd=32, n_head=4, n_layer=2, n_positions=64)
    model = GPT(config, dtype=torch.float64, seed=0)
    logits = model(ids)                                   # (B, T, vocab), full recompute
    logits = model(ids, positions=pos, attention_mask=m)  # left-padded batch
    prompts = make_prompts(4, config.vocab_size, 3, 9, seed=1)

The model: token and position embeddings, `n_layer` pre-LayerNorm blocks
(x + attn(ln_1(x)), then x + mlp(ln_2(x))) with multi-head self-attention and
a 4x GELU MLP, a final LayerNorm and a linear head to the vocabulary (no bias).
There is no dropout and no buffer: a forward pass is a pure function of the
parameters and its inputs. The parameters do not require gradients (inference
only), so outputs need no `torch.no_grad()` and convert with `.numpy()`.

`GPT.forward` recomputes everything from the ids: it is the oracle every
faster way of decoding must match. The pieces a cached forward pass needs are
public: per block, `block.ln_1`, `block.attn.qkv`, `block.attn.split_heads`,
`attend`, `block.attn.merge_heads`, `block.attn.proj`, `block.ln_2`,
`block.mlp`; then `model.ln_f` and `model.lm_head`. One block, written out:

    h = block.ln_1(x)
    q, k, v = (block.attn.split_heads(t) for t in block.attn.qkv(h).split(C, dim=-1))
    x = x + block.attn.proj(block.attn.merge_heads(attend(q, k, v, mask)))
    x = x + block.mlp(block.ln_2(x))

Initial values: Linear and Embedding weights from N(0, 0.35^2) (far wider than
training's usual 0.02, so that the logits of an untrained model are peaked and
greedy decoding never meets a tie in practice), biases 0, LayerNorm weights 1
and biases 0, drawn in registration order from a generator seeded `seed` (or
from torch's global generator when `seed` is None).

This file is given.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["GPT", "Attention", "Block", "GPTConfig", "attend", "causal_mask", "make_prompts"]

#: Standard deviation of the initial Linear and Embedding weights.
INIT_STD = 0.35


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 32
    n_embd: int = 32
    n_head: int = 4
    n_layer: int = 2
    n_positions: int = 64


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(D)) v over the keys `mask` allows.

    q: (B, H, Tq, D); k, v: (B, H, Tk, D); mask: None (every key allowed) or a
    bool tensor broadcastable to (B, H, Tq, Tk), True where query i may attend
    to key j. Returns (B, H, Tq, D). A query row with no allowed key has no
    softmax: that is a ValueError, never a silent row of NaN.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"attend: mask must be a bool tensor, got {mask.dtype}")
        mask = mask.expand(scores.shape)
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("attend: a query row has no key it may attend to")
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> Tensor:
    """(t_q, t_k) bool, True where query i may attend to key j: the last t_q rows
    of the (t_k, t_k) lower triangle (query i sits at position t_k - t_q + i)."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(t_k - t_q)


class Attention(nn.Module):
    """Multi-head self-attention: `qkv` makes queries, keys and values from x, each
    split into `n_head` heads of `head_dim`; `attend` mixes the values; `proj`
    maps the merged heads back to n_embd."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd {config.n_embd} is not a multiple of n_head {config.n_head}")
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, C) -> (B, H, T, D)."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.head_dim).transpose(1, 2)

    def merge_heads(self, y: Tensor) -> Tensor:
        """(B, H, T, D) -> (B, T, C), the inverse of `split_heads`."""
        B, H, T, D = y.shape
        return y.transpose(1, 2).reshape(B, T, H * D)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (B, T, C), mask as in `attend` (None: every key, no causality)."""
        q, k, v = (self.split_heads(t) for t in self.qkv(x).split(x.shape[-1], dim=-1))
        return self.proj(self.merge_heads(attend(q, k, v, mask)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The model of the module docstring."""

    def __init__(
        self, config: GPTConfig, dtype: torch.dtype = torch.float64, seed: int | None = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.to(dtype)
        self._init_weights(None if seed is None else torch.Generator().manual_seed(seed))
        self.requires_grad_(False)  # inference only: no autograd graph, outputs convert freely
        self.eval()

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator | None) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, INIT_STD, generator=generator)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()

    def forward(
        self,
        ids: Tensor,
        positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) of ids (B, T), recomputing everything.

        positions: (T,) or (B, T) long, the position of each token (default
        0 .. T-1). attention_mask: (B, T) with 1 for real tokens and 0 for pads;
        query i attends to key j when j <= i (causal) and key j is real. A pad
        query may also attend to itself, so that no row is empty (its output is
        meaningless and must be ignored); a real query never sees a pad.
        """
        B, T = ids.shape
        if positions is None:
            if T > self.config.n_positions:
                raise ValueError(
                    f"sequence length {T} exceeds n_positions {self.config.n_positions}"
                )
            positions = torch.arange(T, device=ids.device)
        elif positions.numel() and int(positions.max()) >= self.config.n_positions:
            raise ValueError(f"a position exceeds n_positions {self.config.n_positions}")
        mask = causal_mask(T, T, ids.device)
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, T):
                got = tuple(attention_mask.shape)
                raise ValueError(f"attention_mask must be {(B, T)}, got {got}")
            keys = attention_mask.bool()[:, None, None, :]
            self_only = torch.eye(T, dtype=torch.bool, device=ids.device)
            mask = mask & (keys | self_only)
        x = self.wte(ids) + self.wpe(positions)
        for block in self.blocks:
            x = block(x, mask)
        return self.lm_head(self.ln_f(x))


def make_prompts(n: int, vocab: int, min_len: int, max_len: int, seed: int) -> list[list[int]]:
    """`n` prompts of token ids in [0, vocab), lengths uniform in [min_len, max_len],
    the same for the same arguments."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = random.Random(seed)
    return [[rng.randrange(vocab) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]
