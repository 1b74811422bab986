"""Tensor operations on the GPU, with the CUDA kernels of `kernels/combine.cu` (hw2).

`CudaKernelOps` is a tensor ops class like `SimpleOps` and `FastOps`, so

    from minitorch.cuda_kernel_ops import CudaKernelBackend
    x = minitorch.rand((100, 100), backend=CudaKernelBackend)

gives tensors whose map, zip, reduce and matrix multiply run on the GPU, and
everything built on them (autodiff, `nn`) works unchanged. A tensor's storage
stays a float64 NumPy array on the host: each operation copies its inputs to
the GPU as float32 (`DeviceArray.from_numpy`), runs one kernel through the
functions of `minitorch.cuda_runtime` and copies the output back. Results are
therefore float32-accurate (about 7 significant digits).

Task hw2.5 is the Python side of each operation below: make the output
tensor, move the storages, launch the kernel with the right layouts, copy back.
Every operation must launch its own kind of kernel: the launchers count their
launches (`cuda_runtime.launches()`) and hw2.5's tests check the counts, with
`SimpleOps` and `FastOps` refusing work meanwhile, so an operation computed on
the host earns nothing.
Importing this module needs no GPU; the library is built and the GPU looked
for at the first operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import cuda_runtime as rt
from .tensor_data import shape_broadcast
from .tensor_ops import MapProto, TensorBackend, TensorOps, matmul_operands

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["CudaKernelBackend", "CudaKernelOps", "fn_id"]


def fn_id(fn: Callable[..., float]) -> int:
    """The kernels' id of an operator of `minitorch.operators` (e.g. `operators.add`)."""
    name = getattr(fn, "__name__", "")
    if name not in rt.FN_IDS:
        raise ValueError(
            f"the CUDA kernels have no function {name or fn!r}; "
            f"they know {', '.join(sorted(rt.FN_IDS))}"
        )
    return rt.FN_IDS[name]


def to_device(t: Tensor) -> rt.DeviceArray:
    """A GPU copy of `t`'s whole storage (its layout is `t.shape`, `t._tensor.strides`)."""
    return rt.DeviceArray.from_numpy(t._tensor._storage)


def from_device(array: rt.DeviceArray, t: Tensor) -> None:
    """Copy `array` back into `t`'s storage (float32 numbers into its float64 array)."""
    t._tensor._storage[:] = array.to_numpy()


class CudaKernelOps(TensorOps):
    """Tensor operations whose loops run as CUDA kernels."""

    cuda = True

    @staticmethod
    def map(fn: Callable[[float], float]) -> MapProto:
        """`fn` of every element on the GPU: `ret(a)` or `ret(a, out)` (as `SimpleOps.map`)."""
        kernel_fn = fn_id(fn)

        def ret(a: Tensor, out: Tensor | None = None) -> Tensor:
            if out is None:
                out = a.zeros(a.shape)
            out_gpu, a_gpu = to_device(out), to_device(a)
            rt.tensor_map(
                kernel_fn,
                out_gpu,
                out.shape,
                out._tensor.strides,
                a_gpu,
                a.shape,
                a._tensor.strides,
            )
            from_device(out_gpu, out)
            return out

        return ret

    @staticmethod
    def zip(fn: Callable[[float, float], float]) -> Callable[[Tensor, Tensor], Tensor]:
        """`fn` of matching elements of two tensors broadcast to one shape, on the GPU."""
        kernel_fn = fn_id(fn)

        def ret(a: Tensor, b: Tensor) -> Tensor:
            shape = a.shape if a.shape == b.shape else shape_broadcast(a.shape, b.shape)
            out = a.zeros(shape)
            out_gpu, a_gpu, b_gpu = to_device(out), to_device(a), to_device(b)
            rt.tensor_zip(
                kernel_fn,
                out_gpu,
                out.shape,
                out._tensor.strides,
                a_gpu,
                a.shape,
                a._tensor.strides,
                b_gpu,
                b.shape,
                b._tensor.strides,
            )
            from_device(out_gpu, out)
            return out

        return ret

    @staticmethod
    def reduce(
        fn: Callable[[float, float], float], start: float = 0.0
    ) -> Callable[[Tensor, int], Tensor]:
        """`fn` folded over dimension `dim` on the GPU: `ret(a, dim)`; the result has
        `dim` of size 1. `start` must be the identity of `fn` (0 for add, 1 for mul),
        as the kernel starts every partial result from it."""
        kernel_fn = fn_id(fn)

        def ret(a: Tensor, dim: int) -> Tensor:
            out_shape = list(a.shape)
            out_shape[dim] = 1
            out = a.zeros(tuple(out_shape))
            out_gpu, a_gpu = to_device(out), to_device(a)
            rt.tensor_reduce(
                kernel_fn,
                start,
                out_gpu,
                out.shape,
                out._tensor.strides,
                a_gpu,
                a.shape,
                a._tensor.strides,
                dim,
            )
            from_device(out_gpu, out)
            return out

        return ret

    @staticmethod
    def matrix_multiply(a: Tensor, b: Tensor) -> Tensor:
        """Matrix product of 2-D or 3-D tensors on the GPU (as `SimpleOps.matrix_multiply`).

        Hint: `matmul_operands` gives the output and both operands as 3-D tensors."""
        out, a3, b3, squeeze = matmul_operands(a, b)
        out_gpu, a_gpu, b_gpu = to_device(out), to_device(a3), to_device(b3)
        rt.matrix_multiply(
            out_gpu,
            out.shape,
            out._tensor.strides,
            a_gpu,
            a3.shape,
            a3._tensor.strides,
            b_gpu,
            b3.shape,
            b3._tensor.strides,
        )
        from_device(out_gpu, out)
        return squeeze(out)


CudaKernelBackend = TensorBackend(CudaKernelOps)
