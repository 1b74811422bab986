// What fused.cu (your kernels) and fused_launch.cu (the provided launchers)
// share (provided, not graded).
//
// Like combine.cu and launch.cu of hw2, the two files are compiled each on its
// own and meet only through the declarations below: the kernels that
// fused_launch.cu launches, and the launch shapes they are given.

#ifndef MINITORCH_FUSED_CUH
#define MINITORCH_FUSED_CUH

#include <cuda_runtime.h>

// Most and fewest threads of a block that handles one row (powers of 2).
#define ROW_THREADS 1024
#define ROW_MIN_THREADS 64
// Items of a row a thread takes before the launchers give its block more
// threads (fused_launch.cu says how they pick them).
#define SOFTMAX_ITEMS_PER_THREAD 8
#define LAYERNORM_ITEMS_PER_THREAD 4
// The longest row the attention softmax takes (a row is cached in shared memory).
#define SOFTMAX_MAX_COLS 8192
// The attention softmax's rows of at most SOFTMAX_WARP_COLS keys take one warp
// each (the row in registers: attnSoftmaxWarpKernel<K> holds K keys a lane, the
// launcher picks the smallest K of 1, 2, 4, ... SOFTMAX_WARP_COLS / 32 with
// 32 K >= cols), in blocks of SOFTMAX_WARP_ROWS warps.
#define SOFTMAX_WARP_COLS 1024
#define SOFTMAX_WARP_ROWS 4
// The widest row LayerNorm takes (layerNormBackwardKernel keeps a thread's
// columns in registers: at most 8 floats or 2 float4s of a row of 8192).
#define LAYERNORM_MAX_WIDTH 8192
// Items of a row a thread of layerNormBackwardKernel takes before the launcher
// gives its block more threads (it keeps four numbers for each in registers).
#define LAYERNORM_BACKWARD_ITEMS_PER_THREAD 2
// The gamma and beta gradients' sums of parts: blocks of PARAM_COLS x PARAM_ROWS
// threads, each block summing every part of PARAM_COLS columns.
#define PARAM_COLS 32
#define PARAM_ROWS 32

// Attention softmax, forward (hw4.1). in, out: (batch, heads, queries, cols),
// contiguous. key_padding: nullptr, or (batch, cols) with a nonzero number at
// every key that is padding. causal: 1 when key j > query i is masked.
// Rows of at most SOFTMAX_WARP_COLS keys: attnSoftmaxWarpKernel<K> (32 K >= cols;
// fused.cu compiles K = 1, 2, 4, ... SOFTMAX_WARP_COLS / 32), a warp per row,
// blocks of 32 * SOFTMAX_WARP_ROWS threads (warp w of block b takes row
// b * SOFTMAX_WARP_ROWS + w). Longer rows: attnSoftmaxKernel, one block per row
// (blockIdx.x = the row), blockDim.x threads (a power of 2 from
// ROW_MIN_THREADS to ROW_THREADS), cols floats of dynamic shared memory.
template <int KEYS_PER_LANE>
__global__ void attnSoftmaxWarpKernel(float* out, const float* in, const float* key_padding,
                                      int rows, int cols, int queries, int heads, int causal);
__global__ void attnSoftmaxKernel(float* out, const float* in, const float* key_padding, int rows,
                                  int cols, int queries, int heads, int causal);

// Attention softmax, backward (hw4.2): grad_in = dL/d(in) from grad_out = dL/d(out)
// and out, each (rows, cols), contiguous; one block per row whatever cols,
// blockDim.x threads as attnSoftmaxKernel's longer rows (no dynamic shared memory).
__global__ void attnSoftmaxBackwardKernel(float* grad_in, const float* grad_out, const float* out,
                                          int rows, int cols);

// LayerNorm, forward (hw4.3): out, in (rows, width); gamma, beta (width);
// mean, inv_std (rows). One block per row, blockDim.x threads (a power of 2
// from ROW_MIN_THREADS to ROW_THREADS).
__global__ void layerNormKernel(float* out, float* mean, float* inv_std, const float* in,
                                const float* gamma, const float* beta, int rows, int width,
                                float eps);

// LayerNorm, backward (hw4.4), in one pass: grad_in (rows, width), and each
// block's sums of gamma's and beta's gradients over its rows in row blockIdx.x
// of gamma_part and beta_part (gridDim.x rows of width floats, from the
// launcher). gridDim.x <= rows blocks, about as many as the GPU holds at once
// (block b takes rows b, b + gridDim.x, ...); blockDim.x threads (a power of 2
// from ROW_MIN_THREADS to ROW_THREADS), thread t taking items t, t + blockDim.x,
// ... of each row, at most ITEMS of them. Item: float4 when the width is a
// multiple of 4 and grad_in, grad_out, in and gamma start on 16-byte
// boundaries, else float. fused.cu compiles <float4, 1 or 2> and <float, 1, 2,
// 4 or 8>.
template <typename Item, int ITEMS>
__global__ void layerNormBackwardKernel(float* grad_in, float* gamma_part, float* beta_part,
                                        const float* grad_out, const float* in,
                                        const float* gamma, const float* mean,
                                        const float* inv_std, int rows, int width);

// LayerNorm, backward (hw4.4), gamma's and beta's gradients: the sums per column
// of the `parts` rows of gamma_part and beta_part. One row of blocks of
// (PARAM_COLS, PARAM_ROWS) threads; block blockIdx.x covers columns
// blockIdx.x * PARAM_COLS on, thread (tx, ty) parts ty, ty + PARAM_ROWS, ...
__global__ void layerNormParamGradKernel(float* grad_gamma, float* grad_beta,
                                         const float* gamma_part, const float* beta_part,
                                         int parts, int width);

#endif  // MINITORCH_FUSED_CUH
