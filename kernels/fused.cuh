// What fused.cu (your kernels) and fused_launch.cu (the provided launchers)
// share (provided, not graded).
//
// Like combine.cu and launch.cu of hw2, the two files are compiled each on its
// own and meet only through the declarations below: the six kernels that
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
// each (the row in registers, SOFTMAX_WARP_COLS / 32 keys a lane), in blocks of
// SOFTMAX_WARP_ROWS warps.
#define SOFTMAX_WARP_COLS 1024
#define SOFTMAX_WARP_ROWS 4
// The gamma and beta gradients: blocks of PARAM_COLS x PARAM_ROWS threads, each
// block summing PARAM_COLS columns over a share of the rows.
#define PARAM_COLS 32
#define PARAM_ROWS 8
// Rows a block of the gamma and beta gradients covers at most, before the rows
// are split over more blocks.
#define PARAM_ROWS_PER_BLOCK 64

// Attention softmax, forward (hw4.1). in, out: (batch, heads, queries, cols),
// contiguous. key_padding: nullptr, or (batch, cols) with a nonzero number at
// every key that is padding. causal: 1 when key j > query i is masked.
// Rows of at most SOFTMAX_WARP_COLS keys: attnSoftmaxWarpKernel, a warp per
// row, blocks of 32 * SOFTMAX_WARP_ROWS threads (warp w of block b takes row
// b * SOFTMAX_WARP_ROWS + w). Longer rows: attnSoftmaxKernel, one block per row
// (blockIdx.x = the row), blockDim.x threads (a power of 2 from
// ROW_MIN_THREADS to ROW_THREADS), cols floats of dynamic shared memory.
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

// LayerNorm, backward (hw4.4), the input's gradient: launched as layerNormKernel.
__global__ void layerNormBackwardKernel(float* grad_in, const float* grad_out, const float* in,
                                        const float* gamma, const float* mean,
                                        const float* inv_std, int rows, int width);

// LayerNorm, backward (hw4.4), gamma's and beta's gradients, summed over the rows:
// blocks of (PARAM_COLS, PARAM_ROWS) threads; block (blockIdx.x, blockIdx.y)
// covers columns blockIdx.x * PARAM_COLS on and rows blockIdx.y * PARAM_ROWS +
// threadIdx.y, stepping by gridDim.y * PARAM_ROWS. grad_gamma and grad_beta hold
// zeros when it starts (the launcher clears them).
__global__ void layerNormParamGradKernel(float* grad_gamma, float* grad_beta,
                                         const float* grad_out, const float* in,
                                         const float* mean, const float* inv_std, int rows,
                                         int width);

#endif  // MINITORCH_FUSED_CUH
