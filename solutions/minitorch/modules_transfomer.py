"""A GPT-2 style decoder-only Transformer (task hw3.4).

    >>> model = DecoderLM(n_vocab=1000, n_embd=64, n_head=4, n_layer=2, n_positions=64, rng=0)
    >>> logits = model(idx)      # idx: token ids (B, T); logits: (B, T, n_vocab)

The model (pre-LN, as GPT-2):

    x = dropout(token_embeddings(idx) + position_embeddings(0 .. T-1))
    for each layer:
        x = x + attention(ln_1(x))          (causal multi-head self-attention)
        x = x + ff(ln_2(x))                 (Linear -> GELU -> Linear -> dropout)
    logits = lm_head(ln(x))                 (Linear without bias)

The file name keeps the course's historical spelling (`transfomer`).
Parameters are drawn from one generator (`rng`, see
`minitorch.modules_basic`) in the order the layers are made.
"""

from __future__ import annotations

import numpy as np

from .fast_ops import FastTensorBackend
from .module import Module
from .modules_attention import MultiHeadAttention
from .modules_basic import Dropout, Embedding, LayerNorm1d, Linear, Rng, make_rng
from .nn_functions import GELU, expand
from .tensor import Tensor
from .tensor_ops import TensorBackend

__all__ = ["DecoderLM", "FeedForward", "TransformerLayer"]


class FeedForward(Module):
    """The position-wise feed-forward block: `dropout(linear_out(GELU(linear_in(x))))`.

    Attributes:
        linear_in: `Linear(n_embd, middle_dim)`.
        linear_out: `Linear(middle_dim, n_embd)`.
        dropout: `Dropout(p_dropout)`.

    `middle_dim` is 4 * n_embd unless given.
    """

    def __init__(
        self,
        n_embd: int,
        middle_dim: int | None = None,
        p_dropout: float = 0.1,
        bias: bool = True,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
    ) -> None:
        super().__init__()
        gen = make_rng(rng)
        middle = 4 * n_embd if middle_dim is None else middle_dim
        self.linear_in = Linear(n_embd, middle, bias, backend, gen)
        self.linear_out = Linear(middle, n_embd, bias, backend, gen)
        self.dropout = Dropout(p_dropout, gen)

    def forward(self, x: Tensor) -> Tensor:
        """The block applied to `x` of shape `(..., n_embd)`: the same shape."""
        # BEGIN SOLUTION hw3.4
        return self.dropout(self.linear_out(GELU(self.linear_in(x))))
        # END SOLUTION


class TransformerLayer(Module):
    """One pre-LN decoder layer:

        x = x + attention(ln_1(x), key_padding_mask)
        x = x + ff(ln_2(x))

    Attributes:
        ln_1, ln_2: `LayerNorm1d(n_embd, ln_eps)`.
        attention: causal `MultiHeadAttention(n_embd, n_head, p_dropout, bias)`.
        ff: `FeedForward(n_embd, 4 * n_embd, p_dropout, bias)`.
        use_fused_kernel: whether `forward` is `forward_fused` (hw4.5); the
            attention then uses the fused softmax too.

    Made in the order ln_1, attention, ln_2, ff.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        p_dropout: float = 0.1,
        ln_eps: float = 1e-5,
        bias: bool = True,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
        use_fused_kernel: bool = False,
    ) -> None:
        super().__init__()
        gen = make_rng(rng)
        self.use_fused_kernel = use_fused_kernel
        self.ln_1 = LayerNorm1d(n_embd, ln_eps, backend)
        self.attention = MultiHeadAttention(
            n_embd,
            n_head,
            causal=True,
            p_dropout=p_dropout,
            bias=bias,
            backend=backend,
            rng=gen,
            use_fused_kernel=use_fused_kernel,
        )
        self.ln_2 = LayerNorm1d(n_embd, ln_eps, backend)
        self.ff = FeedForward(n_embd, 4 * n_embd, p_dropout, bias, backend, gen)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """The layer applied to `x` of shape `(B, T, n_embd)`: the same shape."""
        if self.use_fused_kernel:
            return self.forward_fused(x, key_padding_mask)
        # BEGIN SOLUTION hw3.4
        x = x + self.attention(self.ln_1(x), key_padding_mask)
        return x + self.ff(self.ln_2(x))
        # END SOLUTION

    def forward_fused(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """`forward` with hw4's fused kernels (task hw4.5), for `x` on
        `CudaKernelBackend`: both layer norms are `cuda_fused.layernorm` with
        the weights, bias and eps of `ln_1` and `ln_2`; the attention is fused
        already (`use_fused_kernel` was passed on to it). The same numbers as
        `forward`, up to float32.
        """
        # BEGIN SOLUTION hw4.5
        from .cuda_fused import layernorm

        def norm(ln: LayerNorm1d, h: Tensor) -> Tensor:
            return layernorm(h, ln.weights.value, ln.bias.value, ln.eps)

        h = x + self.attention(norm(self.ln_1, x), key_padding_mask)
        return h + self.ff(norm(self.ln_2, h))
        # END SOLUTION


class DecoderLM(Module):
    """A decoder-only language model: token ids `(B, T)` to next-token logits
    `(B, T, n_vocab)` (see the module's docstring).

    Attributes:
        token_embeddings: `Embedding(n_vocab, n_embd)`.
        position_embeddings: `Embedding(n_positions, n_embd)`.
        dropout: `Dropout(p_dropout)` of the summed embeddings.
        layer_0 ... layer_{n_layer-1}: the `TransformerLayer`s (also `layers`).
        ln: the final `LayerNorm1d(n_embd, ln_eps)`.
        lm_head: `Linear(n_embd, n_vocab, bias=False)`.

    Made in the order token_embeddings, position_embeddings, dropout, the
    layers, ln, lm_head.
    """

    def __init__(
        self,
        n_vocab: int,
        n_embd: int,
        n_head: int,
        n_layer: int,
        n_positions: int,
        p_dropout: float = 0.1,
        ln_eps: float = 1e-5,
        bias: bool = True,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
    ) -> None:
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"n_layer must be at least 1, not {n_layer}")
        gen = make_rng(rng)
        self.n_vocab = n_vocab
        self.n_embd = n_embd
        self.n_layer = n_layer
        self.n_positions = n_positions
        self.backend = backend
        self.token_embeddings = Embedding(n_vocab, n_embd, backend, gen)
        self.position_embeddings = Embedding(n_positions, n_embd, backend, gen)
        self.dropout = Dropout(p_dropout, gen)
        for i in range(n_layer):
            layer = TransformerLayer(n_embd, n_head, p_dropout, ln_eps, bias, backend, gen)
            setattr(self, f"layer_{i}", layer)
        self.ln = LayerNorm1d(n_embd, ln_eps, backend)
        self.lm_head = Linear(n_embd, n_vocab, False, backend, gen)

    @property
    def layers(self) -> list[TransformerLayer]:
        """The Transformer layers, in order."""
        return [getattr(self, f"layer_{i}") for i in range(self.n_layer)]

    def forward(self, idx: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Logits `(B, T, n_vocab)` for token ids `idx` of shape `(B, T)`, T <= n_positions.

        `key_padding_mask` (optional, `(B, T)`, 1.0 at padding) goes to every
        attention layer. Plan: embeddings of the tokens and of the positions
        0 .. T-1 (a constant tensor of shape `(1, T)` broadcasts over the
        batch), dropout, the layers, the final layer norm, the head.
        """
        if idx.dims != 2:
            raise ValueError(f"DecoderLM takes token ids of shape (B, T), not {idx.shape}")
        seq_len = idx.shape[1]
        if seq_len > self.n_positions:
            raise ValueError(f"sequence of {seq_len} tokens, at most {self.n_positions} fit")
        # BEGIN SOLUTION hw3.4
        positions = Tensor.make(
            np.arange(seq_len, dtype=np.float64), (1, seq_len), backend=self.backend
        )
        tokens = self.token_embeddings(idx)
        x = tokens + expand(self.position_embeddings(positions), tokens.shape)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.lm_head(self.ln(x))
        # END SOLUTION
