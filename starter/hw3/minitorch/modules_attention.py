"""Multi-head self-attention (task hw3.3).

    >>> attn = MultiHeadAttention(n_embd=64, n_head=4, rng=0)
    >>> y = attn(x)          # x, y of shape (batch, seq_len, 64)

For an input `x` of shape `(B, T, n_embd)` and `n_head` heads of size
`hs = n_embd / n_head`:

    q, k, v = x @ Wq + bq, x @ Wk + bk, x @ Wv + bv     each (B, T, n_embd)
    split each into heads:                               (B, n_head, T, hs)
    A = softmax(q k^T / sqrt(hs) + M)                    (B, n_head, T, T), over the keys
    y = (A v with the heads joined again) @ Wo + bo      (B, T, n_embd)

`M` is an additive mask: 0 where query `i` may look at key `j`, `MASK_VALUE`
where it may not, i.e. when the attention is causal and `j > i` (a token
never sees later tokens), or when key `j` is padding. `exp` of
`MASK_VALUE` plus any reasonable score is exactly 0.0 in floating point, so a
masked key gets no weight at all, yet a row whose keys are all masked still
gives finite numbers (-inf would give 0 / 0).

Dropout (probability `p_dropout`) is applied to the attention weights `A`.

With `use_fused_kernel=True` (task hw4.5, on `CudaKernelBackend`) the masked
softmax is one kernel of hw4 (`minitorch.cuda_fused.attn_softmax`), which masks
keys itself instead of adding `M` (see `forward_fused`).
"""

from __future__ import annotations

import math

import numpy as np

from .fast_ops import FastTensorBackend
from .module import Module
from .modules_basic import Dropout, Linear, Rng, make_rng
from .nn_functions import full_like, softmax
from .tensor import Tensor
from .tensor_ops import TensorBackend

__all__ = ["MASK_VALUE", "MultiHeadAttention"]

#: The score added where attention is not allowed.
MASK_VALUE = -1e9


class MultiHeadAttention(Module):
    """Multi-head self-attention with four `Linear` projections of `n_embd` to `n_embd`.

    Attributes:
        q_projection, k_projection, v_projection: the query, key and value
            projections (`Wq`, `Wk`, `Wv` and their biases).
        out_projection: the output projection (`Wo`, `bo`).
        dropout: the `Dropout` of the attention weights.
        n_embd, n_head, head_size: sizes; `head_size = n_embd // n_head`.
        causal: whether query `i` sees only keys `j <= i`.
        use_fused_kernel: whether `forward` is `forward_fused` (hw4.5).

    The projections are made in the order q, k, v, out from one generator
    (`rng`, see `minitorch.modules_basic`), which the dropout then uses.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        causal: bool = True,
        p_dropout: float = 0.1,
        bias: bool = True,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
        use_fused_kernel: bool = False,
    ) -> None:
        super().__init__()
        if n_head < 1 or n_embd % n_head != 0:
            raise ValueError(f"n_head ({n_head}) must divide n_embd ({n_embd})")
        self.n_embd = n_embd
        self.n_head = n_head
        self.head_size = n_embd // n_head
        self.causal = causal
        self.use_fused_kernel = use_fused_kernel
        self.backend = backend
        gen = make_rng(rng)
        self.q_projection = Linear(n_embd, n_embd, bias, backend, gen)
        self.k_projection = Linear(n_embd, n_embd, bias, backend, gen)
        self.v_projection = Linear(n_embd, n_embd, bias, backend, gen)
        self.out_projection = Linear(n_embd, n_embd, bias, backend, gen)
        self.dropout = Dropout(p_dropout, gen)

    def attention_mask(
        self, batch: int, seq_len: int, key_padding_mask: Tensor | None
    ) -> Tensor | None:
        """The additive mask `M` as a constant tensor of the scores' shape
        `(batch, n_head, seq_len, seq_len)`, or None when nothing is masked
        (not causal and no padding mask).

        `key_padding_mask` (shape `(batch, seq_len)`) holds 1.0 at the
        positions that are padding (no query may attend to them) and 0.0
        elsewhere. M[b, h, i, j] is `MASK_VALUE` when the attention is causal
        and `j > i`, or when key `j` of sequence `b` is padding; 0 otherwise
        (the same for every head h).

        Plan: build it with NumPy (it is a constant: no gradient), then
        `Tensor.make` on this module's backend.
        """
        raise NotImplementedError("hw3.3: Multi-head attention")

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Self-attention of `x` (shape `(B, T, n_embd)`): shape `(B, T, n_embd)`.

        `key_padding_mask`: None, or shape `(B, T)` with 1.0 at padding keys
        (see `attention_mask`).

        Plan:
        1. project `x` to q, k and v;
        2. split the heads: view `(B, T, n_head, head_size)` and permute to
           `(B, n_head, T, head_size)` (for k: to `(B, n_head, head_size, T)`,
           which is k^T); the matrix product takes 3-D tensors, so make each
           contiguous and view it as `(B * n_head, ., .)`;
        3. scores `q @ k^T` times 1 / sqrt(head_size), seen as
           `(B, n_head, T, T)`, plus the mask; softmax over the keys (the
           last dimension); dropout;
        4. weights @ v, `(B * n_head, T, head_size)`, back to
           `(B, T, n_embd)` (view, permute, contiguous, view);
        5. the output projection.
        """
        if x.dims != 3 or x.shape[2] != self.n_embd:
            raise ValueError(f"MultiHeadAttention({self.n_embd}, ...) got shape {x.shape}")
        if self.use_fused_kernel:
            return self.forward_fused(x, key_padding_mask)
        batch, seq_len, _ = x.shape
        n_head, head_size = self.n_head, self.head_size
        raise NotImplementedError("hw3.3: Multi-head attention")

    def forward_fused(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """`forward` with hw4's fused softmax (task hw4.5): the same numbers (up
        to float32), for `x` on `CudaKernelBackend`.

        As `forward`, except step 3: the scaled scores `(B, n_head, T, T)` go
        to `cuda_fused.attn_softmax(scores, key_padding_mask, causal=self.causal)`,
        which masks the keys inside the kernel (no additive mask is built),
        then dropout. A row whose every key is masked gets zeros there (not
        the uniform weights of `forward`), which no causal layer meets unless
        a sequence starts with padding.
        """
        if x.dims != 3 or x.shape[2] != self.n_embd:
            raise ValueError(f"MultiHeadAttention({self.n_embd}, ...) got shape {x.shape}")
        b, t, _ = x.shape
        nh, hs = self.n_head, self.head_size
        raise NotImplementedError("hw4.5: Fused kernels in the Transformer layer")
