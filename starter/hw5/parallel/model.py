"""A small GPT in PyTorch, and seeded synthetic token data, for hw5's tests and demos.

    config = GPTConfig(vocab_size=32, n_embd=16, n_head=2, n_layer=2, n_positions=16)
    model = GPT(config, dtype=torch.float64, seed=0)
    ids = make_tokens(8, 12, config.vocab_size, seed=1)   # (8, 12) token ids
    logits = model(ids)                                   # (8, 12, 32)
    loss = model.loss(ids)                                # next-token cross-entropy

The model: token and position embeddings, `n_layer` pre-LayerNorm blocks
(x + attn(ln_1(x)), then x + mlp(ln_2(x))) with causal multi-head
self-attention and a 4x GELU MLP, a final LayerNorm and a linear head to the
vocabulary (no bias). With `tie_weights` the head shares the token embedding's
weight (one parameter, used twice). There are no buffers and no dropout, so a
forward pass is a pure function of the parameters and the ids.

Initial values: every Linear and Embedding weight from N(0, 0.02^2), biases 0,
LayerNorm weights 1 and biases 0, drawn in registration order from a generator
seeded `seed` (or from torch's global generator when `seed` is None).

This file is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GPT", "GPTConfig", "make_tokens", "sequential_from_spec"]


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 32
    n_embd: int = 16
    n_head: int = 2
    n_layer: int = 2
    n_positions: int = 16
    tie_weights: bool = False


class CausalSelfAttention(nn.Module):
    """softmax(q k^T / sqrt(d) + causal mask) v over `n_head` heads of size d."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd {config.n_embd} is not a multiple of n_head {config.n_head}")
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for t in self.qkv(x).split(C, dim=-1)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_head)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The model of the module docstring; `forward(ids)` maps (B, T) ids to (B, T, vocab) logits."""

    def __init__(
        self, config: GPTConfig, dtype: torch.dtype = torch.float32, seed: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.to(dtype)
        self._init_weights(None if seed is None else torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator | None) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                if not (module is self.lm_head and self.config.tie_weights):
                    module.weight.normal_(0.0, 0.02, generator=generator)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()

    def forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[1]
        if T > self.config.n_positions:
            raise ValueError(f"sequence length {T} exceeds n_positions {self.config.n_positions}")
        x = self.wte(ids) + self.wpe(torch.arange(T, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def loss(self, ids: Tensor) -> Tensor:
        """Mean cross-entropy of predicting ids[:, t + 1] from ids[:, : t + 1], for every t."""
        logits = self(ids[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def make_tokens(n: int, seq_len: int, vocab_size: int, seed: int) -> Tensor:
    """(n, seq_len) int64 ids, the same for the same arguments: each row counts from a
    random start in a random stride modulo `vocab_size` (a pattern a GPT can learn),
    with one token in ten replaced by a random one."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab_size, (n, 1), generator=g)
    stride = torch.randint(1, max(2, vocab_size // 4), (n, 1), generator=g)
    ids = (start + stride * torch.arange(seq_len)) % vocab_size
    noise = torch.rand(n, seq_len, generator=g) < 0.1
    return torch.where(noise, torch.randint(0, vocab_size, (n, seq_len), generator=g), ids)


def sequential_from_spec(spec: list, params: dict) -> nn.Sequential:
    """A float64 `nn.Sequential` from plain data (how the pipeline's tests describe
    a model): layer k of `spec` is `("linear", in_features, out_features)`,
    `("tanh",)` or `("gelu",)`; a linear layer's values are
    `params[str(k)]["weight"]` and `params[str(k)]["bias"]`."""
    activations = {"tanh": nn.Tanh, "gelu": nn.GELU}
    layers: list[nn.Module] = []
    for k, (kind, *dims) in enumerate(spec):
        if kind != "linear":
            layers.append(activations[kind]())
            continue
        layer = nn.Linear(*dims, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(params[str(k)]["weight"]))
            layer.bias.copy_(torch.as_tensor(params[str(k)]["bias"]))
        layers.append(layer)
    return nn.Sequential(*layers)
