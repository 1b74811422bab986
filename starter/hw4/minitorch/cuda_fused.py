"""Fused attention softmax and LayerNorm as differentiable functions (task hw4.5).

    >>> p = attn_softmax(scores, mask, causal=True)   # scores (B, nh, T, T), mask (B, T)
    >>> y = layernorm(x, gamma, beta)                 # x (..., D), gamma and beta (D,)

Each runs one kernel of `kernels/fused.cu` forward and one (or two) backward,
in place of the many map, zip and reduce kernels of hw3's `softmax` and
`LayerNorm1d`. Tensors keep their storage on the host (a float64 NumPy
array, as with `CudaKernelBackend`): `forward` copies the inputs to the GPU as
float32 (`DeviceArray.from_numpy` of `t.to_numpy()`, which is contiguous),
launches through `minitorch.fused_runtime`, copies the outputs back and saves
what `backward` needs; `backward` does the same with the gradient kernels.
Results are float32-accurate.

Both take tensors of the CUDA backend (`CudaKernelBackend`) only: on another
backend they are a ValueError, so no work silently runs on the host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import fused_runtime as fr
from .cuda_runtime import DeviceArray
from .tensor import Tensor
from .tensor_functions import Function

if TYPE_CHECKING:
    from .autodiff import Context

__all__ = ["AttnSoftmax", "LayerNorm", "attn_softmax", "layernorm"]


def _on_gpu(*tensors: Tensor) -> None:
    """ValueError unless every tensor is on a CUDA backend."""
    for t in tensors:
        if not getattr(t.backend, "cuda", False):
            raise ValueError(
                "the fused kernels take tensors of the CUDA backend (CudaKernelBackend)"
            )


def _to_gpu(t: Tensor) -> DeviceArray:
    """`t`'s numbers in row-major order, as float32 on the GPU."""
    return DeviceArray.from_numpy(t.to_numpy())


def _from_gpu(array: DeviceArray, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A new tensor of `shape` on `like`'s backend holding `array`'s numbers."""
    values = array.to_numpy().astype(np.float64)
    return Tensor.make(values, shape, backend=like.backend)


class AttnSoftmax(Function):
    """The masked softmax over the last dimension of attention scores.

    forward(scores, mask, options): `scores` of shape (B, nh, Tq, Tk); `mask` of
    shape (B, Tk), nonzero at padding keys; `options` = [causal, has_mask]
    (when has_mask is 0, `mask` is ignored). A masked key gets probability 0;
    a row whose every key is masked is all zeros.

    Gradient (y the output, g the output's gradient): y * (g - sum_k g_k y_k)
    along each row; `mask` and `options` get none.
    """

    @staticmethod
    def forward(ctx: Context, scores: Tensor, mask: Tensor, options: Tensor) -> Tensor:
        batch, heads, queries, keys = scores.shape
        causal, has_mask = (bool(options[i]) for i in range(2))
        raise NotImplementedError("hw4.5: Fused kernels in the Transformer layer")

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float, float]:
        raise NotImplementedError("hw4.5: Fused kernels in the Transformer layer")


class LayerNorm(Function):
    """LayerNorm over the last dimension (as `LayerNorm1d`, in one kernel).

    forward(x, gamma, beta, eps): x of shape (..., D), gamma and beta of shape
    (D,), eps a 1-element tensor. Saves the inputs on the GPU and each row's
    mean and 1 / std (the kernel's outputs) for `backward`, which returns the
    gradients of x, gamma and beta (and none for eps).
    """

    @staticmethod
    def forward(ctx: Context, x: Tensor, gamma: Tensor, beta: Tensor, eps: Tensor) -> Tensor:
        width = x.shape[-1]
        rows = x.size // width
        raise NotImplementedError("hw4.5: Fused kernels in the Transformer layer")

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        raise NotImplementedError("hw4.5: Fused kernels in the Transformer layer")


def attn_softmax(x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
    """The softmax over the keys (last dimension) of attention scores `x` of
    shape (B, nh, Tq, Tk), in one kernel, with autodiff.

    `mask`: None, or the key padding mask of shape (B, Tk), 1.0 at padding keys
    (as hw3's `key_padding_mask`); `causal`: query i sees keys j <= i only
    (then Tq must equal Tk). Masked keys get probability 0; a row whose every
    key is masked is all zeros (hw3's additive mask would give that row a
    uniform softmax instead)."""
    if x.dims != 4:
        raise ValueError(f"attn_softmax takes scores of shape (B, nh, Tq, Tk), not {x.shape}")
    batch, _, queries, keys = x.shape
    if causal and queries != keys:
        raise ValueError(f"a causal mask needs as many queries as keys, not {x.shape}")
    if mask is not None and mask.shape != (batch, keys):
        raise ValueError(f"mask of shape {mask.shape}, expected {(batch, keys)}")
    _on_gpu(x)
    has_mask = mask is not None
    if mask is None:
        mask = x.zeros((1,))
    options = Tensor.make([float(causal), float(has_mask)], (2,), backend=x.backend)
    return AttnSoftmax.apply(x, mask, options)


def layernorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm of `x` (shape (..., D)) over its last dimension with the gain
    `gamma` and shift `beta` (shape (D,)), in one kernel, with autodiff: the
    same numbers as `LayerNorm1d` with weights gamma and bias beta."""
    width = x.shape[-1]
    if gamma.shape != (width,) or beta.shape != (width,):
        raise ValueError(f"gamma {gamma.shape} and beta {beta.shape} must be ({width},)")
    if not eps > 0.0:
        raise ValueError(f"eps must be positive, not {eps}")
    _on_gpu(x, gamma, beta)
    return LayerNorm.apply(x, gamma, beta, Tensor.make([float(eps)], (1,), backend=x.backend))
