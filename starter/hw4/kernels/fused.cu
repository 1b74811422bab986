// Fused CUDA kernels of a Transformer layer (assignment hw4).
//
// Each kernel does in one launch what hw3's layers do with many map, zip and
// reduce kernels, reading every number of its row from GPU memory once or twice:
//
//   attnSoftmaxWarpKernel,     masked softmax of attention scores, per row    (hw4.1)
//   attnSoftmaxKernel
//   attnSoftmaxBackwardKernel  its gradient                                   (hw4.2)
//   layerNormKernel            LayerNorm; saves each row's mean and 1 / std   (hw4.3)
//   layerNormBackwardKernel    the input's gradient, gamma's and beta's in parts (hw4.4)
//   layerNormParamGradKernel   the parts of gamma's and beta's gradients added  (hw4.4)
//
// Arrays are contiguous float32 arrays in GPU memory. The host functions that
// launch these kernels are provided in fused_launch.cu (Python calls them
// through `minitorch/fused_runtime.py`); fused.cuh declares what the two files
// share: the kernels' signatures and the launch shapes. This file is compiled
// on its own: its macros and functions reach no other file.
//
// Build and test: see the handout (README.md).

#include <math.h>
#include <stdint.h>

#include "fused.cuh"

// ---------------------------------------------------------------------------
// Block reductions (provided)
// ---------------------------------------------------------------------------
//
// The blocks of the row kernels are 1-D, with a multiple of 32 threads (whole
// warps), and every thread of a block must call these together (none may
// have returned). `scratch` is 32 floats of shared memory; the same scratch
// may serve any number of calls in a row.

// The sum of `value` over the 32 threads of a warp, returned to each of them.
__device__ float warpSum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;
}

// The largest `value` of the 32 threads of a warp, returned to each of them.
__device__ float warpMax(float value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

// The sum of `value` over the block, returned to every thread: each warp sums
// its own, lane 0 of each warp writes it to scratch, and every warp then sums
// the warps' partial sums.
__device__ float blockSum(float value, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warpSum(value);
  __syncthreads();  // every warp has read the scratch of an earlier call
  if (lane == 0) scratch[warp] = value;
  __syncthreads();  // every warp's partial sum is in scratch
  return warpSum(lane < warps ? scratch[lane] : 0.0f);
}

// The largest `value` of the block, returned to every thread (as blockSum).
__device__ float blockMax(float value, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warpMax(value);
  __syncthreads();  // every warp has read the scratch of an earlier call
  if (lane == 0) scratch[warp] = value;
  __syncthreads();  // every warp's maximum is in scratch
  return warpMax(lane < warps ? scratch[lane] : -INFINITY);
}

// Whether `pointer` is on a 16-byte boundary (where a float4 may be loaded).
__device__ bool aligned16(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer) % 16 == 0;
}

// ---------------------------------------------------------------------------
// Attention softmax
// ---------------------------------------------------------------------------

// The masked softmax of each row of attention scores (hw4.1).
//
// `in` holds scores of shape (batch, heads, queries, cols): row r belongs to
// query `r % queries` of sequence `r / (heads * queries)`. Key j of a row is
// masked when `causal` is 1 and j > query, or when `key_padding` is not
// nullptr and key_padding[sequence * cols + j] is not 0. Then
//
//   out[r, j] = exp(in[r, j] - m) / sum_k exp(in[r, k] - m)   over the keys k not masked,
//   out[r, j] = 0                                             for a masked key j,
//
// with m the largest score of the row's keys that are not masked (so every
// exponent is <= 0 and one term is 1: no overflow, no 0 / 0). A row whose
// every key is masked is all zeros.
//
// A row takes one of two shapes (the launcher picks by cols; the kernels
// below, provided, find the row and call one of the two functions you write):
//
// - softmaxRowByWarp, rows of up to SOFTMAX_WARP_COLS keys: one warp a row, no
//   __syncthreads() and no shared memory. Lane l takes keys l, l + 32, ...
//   and keeps them in registers, so the row is read once; warpMax and warpSum
//   combine the lanes. Short rows are the common case (a Transformer's
//   attention has one row per query), and a block per row would leave most of
//   its threads idle on them. KEYS_PER_LANE (1, 2, 4, ... SOFTMAX_WARP_COLS /
//   32) is the smallest that holds the row, known when compiling: the
//   launcher picks among compiled copies of the kernel, and a copy for short
//   rows needs few registers, so an SM holds more warps (more loads in flight).
// - softmaxRowByBlock, longer rows: one block a row, blockDim.x threads (a
//   power of 2, ROW_MIN_THREADS to ROW_THREADS, the launcher picks enough for
//   the row); thread t handles keys t, t + blockDim.x, ... Plan: read the row
//   once into `cache` (cols floats of shared memory; masked keys as -INFINITY)
//   keeping each thread's largest score; blockMax; then the exps (back into
//   cache) and blockSum; then write exp / sum.
//
// In both, x and y are the row's scores and outputs, padding the row's key
// padding flags (nullptr when there is no padding mask) and query the row's
// query.

// One row of up to 32 * KEYS_PER_LANE keys, by the 32 lanes of one warp.
template <int KEYS_PER_LANE>
__device__ void softmaxRowByWarp(float* y, const float* x, const float* padding, int cols,
                                 int query, int causal) {
  const int lane = threadIdx.x % 32;
  // TODO hw4.1: Attention softmax, forward: not implemented yet (outputs are left untouched).
}

// One row of more than SOFTMAX_WARP_COLS keys, by the threads of one block.
__device__ void softmaxRowByBlock(float* y, const float* x, const float* padding, int cols,
                                  int query, int causal, float* cache, float* scratch) {
  // TODO hw4.1: Attention softmax, forward: not implemented yet (outputs are left untouched).
}

// The kernels (provided): each finds the row of its warp or block, and the
// row's query and padding flags, then calls one of the two functions above.
// The launcher launches attnSoftmaxWarpKernel for rows of at most
// SOFTMAX_WARP_COLS keys and attnSoftmaxKernel for longer rows.

// Where a row's numbers are, and what masks its keys.
struct SoftmaxRow {
  const float* x;        // the scores
  float* y;              // the probabilities
  const float* padding;  // the sequence's key-padding flags, or nullptr
  int query;             // the row's query position (for the causal mask)
};

__device__ SoftmaxRow softmaxRow(int row, float* out, const float* in, const float* key_padding,
                                 int cols, int queries, int heads) {
  const int sequence = row / (heads * queries);
  return {in + (size_t)row * cols, out + (size_t)row * cols,
          key_padding == nullptr ? nullptr : key_padding + (size_t)sequence * cols, row % queries};
}

template <int KEYS_PER_LANE>
__global__ void attnSoftmaxWarpKernel(float* out, const float* in, const float* key_padding,
                                      int rows, int cols, int queries, int heads, int causal) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp
  const SoftmaxRow r = softmaxRow(row, out, in, key_padding, cols, queries, heads);
  softmaxRowByWarp<KEYS_PER_LANE>(r.y, r.x, r.padding, cols, r.query, causal);
}

// The kernels the launcher may pick (compiled here, where the template is).
#define WARP_KERNEL(K)                                                                      \
  template __global__ void attnSoftmaxWarpKernel<K>(float*, const float*, const float*, int, \
                                                    int, int, int, int);
WARP_KERNEL(1)
WARP_KERNEL(2)
WARP_KERNEL(4)
WARP_KERNEL(8)
WARP_KERNEL(16)
WARP_KERNEL(32)
#undef WARP_KERNEL

__global__ void attnSoftmaxKernel(float* out, const float* in, const float* key_padding, int rows,
                                  int cols, int queries, int heads, int causal) {
  extern __shared__ float cache[];  // the row: cols floats (given by the launcher)
  __shared__ float scratch[32];     // for blockMax and blockSum
  const int row = blockIdx.x;
  if (row >= rows) return;  // the whole block
  const SoftmaxRow r = softmaxRow(row, out, in, key_padding, cols, queries, heads);
  softmaxRowByBlock(r.y, r.x, r.padding, cols, r.query, causal, cache, scratch);
}

// The gradient of the softmax (hw4.2).
//
// With y = out (the softmax of a row) and g = grad_out (dL/dy of the row),
//
//   grad_in[r, j] = y[r, j] * (g[r, j] - sum_k g[r, k] y[r, k]).
//
// A masked key has y = 0, so its gradient is 0 without looking at the mask.
// One block per row whatever cols (no dynamic shared memory). Plan:
// each thread's part of the dot product g . y, blockSum, then the formula.
__global__ void attnSoftmaxBackwardKernel(float* grad_in, const float* grad_out, const float* out,
                                          int rows, int cols) {
  __shared__ float scratch[32];  // for blockSum
  const int row = blockIdx.x;
  if (row >= rows) return;
  const float* g = grad_out + (size_t)row * cols;
  const float* y = out + (size_t)row * cols;
  float* dx = grad_in + (size_t)row * cols;
  // TODO hw4.2: Attention softmax, backward: not implemented yet (outputs are left untouched).
}

// ---------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------

// LayerNorm of each row of `in` (rows, width) (hw4.3):
//
//   mean[r]    = sum_j x[r, j] / width
//   inv_std[r] = 1 / sqrt(sum_j (x[r, j] - mean[r])^2 / width + eps)
//   out[r, j]  = (x[r, j] - mean[r]) * inv_std[r] * gamma[j] + beta[j]
//
// (the biased variance, divided by width, as torch.nn.functional.layer_norm).
// One block per row, blockDim.x threads (a power of 2, ROW_MIN_THREADS to ROW_THREADS).
//
// Read the row once for the statistics, in one pass: either Welford's update
// or the sums of (x - p) and (x - p)^2 with a pivot p near the mean (the
// row's first number will do): the variance is then
// sum (x - p)^2 / width - (mean - p)^2, and a large common offset of the row
// cancels before anything is squared. (The plain sums of x and x^2 lose
// every digit of the variance when |mean| is much larger than the spread.)
//
// Vectorized loads: where `vectorized` is true (the width is a multiple of 4
// and every array starts on a 16-byte boundary, so every row does too), load
// and store float4s: 4 numbers per instruction, thread t handling float4s
// t, t + blockDim.x, ... of the row. Elsewhere a float4 would start inside a
// row or past its end: take one number at a time.
__global__ void layerNormKernel(float* out, float* mean, float* inv_std, const float* in,
                                const float* gamma, const float* beta, int rows, int width,
                                float eps) {
  __shared__ float scratch[32];  // for blockSum
  const int row = blockIdx.x;
  if (row >= rows) return;
  const float* x = in + (size_t)row * width;
  float* y = out + (size_t)row * width;
  const bool vectorized = width % 4 == 0 && aligned16(in) && aligned16(out) && aligned16(gamma) &&
                          aligned16(beta);
  // TODO hw4.3: LayerNorm, forward: not implemented yet (outputs are left untouched).
}

// float4 arithmetic, component by component, so that layerNormBackwardKernel
// can be written once for rows of floats and rows of float4s (provided).
__device__ float4 operator+(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
__device__ float4 operator-(float4 a, float4 b) {
  return make_float4(a.x - b.x, a.y - b.y, a.z - b.z, a.w - b.w);
}
__device__ float4 operator*(float4 a, float4 b) {
  return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
__device__ float4 operator-(float4 a, float b) { return make_float4(a.x - b, a.y - b, a.z - b, a.w - b); }
__device__ float4 operator*(float4 a, float b) { return make_float4(a.x * b, a.y * b, a.z * b, a.w * b); }
__device__ float4 operator*(float a, float4 b) { return b * a; }
__device__ float4& operator+=(float4& a, float4 b) { return a = a + b; }
// The sum of an item's numbers.
__device__ float total(float a) { return a; }
__device__ float total(float4 a) { return (a.x + a.y) + (a.z + a.w); }
// An item of zeros.
template <typename Item>
__device__ Item zeros() {
  return Item{};  // float: 0; float4: four zeros
}

// LayerNorm's gradients (hw4.4), in one pass over grad_out and in: the input's
//
//   grad_in[r, j] = inv_std[r] * (h[j] - sum_k h[k] / width
//                                      - xhat[j] * sum_k h[k] xhat[k] / width),
//
// with xhat[j] = (x[r, j] - mean[r]) * inv_std[r] and h[j] = grad_out[r, j] * gamma[j]
// (use the saved mean and inv_std, do not recompute them), and gamma's and beta's,
//
//   grad_gamma[j] = sum_r grad_out[r, j] * xhat[r, j]      grad_beta[j] = sum_r grad_out[r, j],
//
// sums over every row, which this kernel leaves in parts: block b writes its
// rows' sums to row b of gamma_part and beta_part (gridDim.x rows of width
// numbers each), and layerNormParamGradKernel adds up the parts per column.
//
// The launcher gives the kernel about as many blocks as the GPU holds at once
// (gridDim.x <= rows) and blockDim.x threads (a power of 2, ROW_MIN_THREADS to
// ROW_THREADS). Block b takes rows b, b + gridDim.x, ...; in each, thread t
// takes items t, t + blockDim.x, ... of the row: at most ITEMS of them, as
// the launcher picks ITEMS. An item is a float4 (Item = float4: the width is
// a multiple of 4 and the arrays start on 16-byte boundaries) or one float.
// So each thread handles the same columns in every row: keep its columns'
// gamma and their two running sums in registers (arrays of ITEMS, indexed in
// loops that #pragma unroll unrolls), and write its sums once, at the end.
// Per row: read the row's items (a loop that uses nothing it reads, as in
// softmaxRowByWarp), the two sums (blockSum), then grad_in and the running
// sums. An item past the row's end (index >= n) is zeros and is not written.
template <typename Item, int ITEMS>
__global__ void __launch_bounds__(ROW_THREADS)
    layerNormBackwardKernel(float* grad_in, float* gamma_part, float* beta_part,
                            const float* grad_out, const float* in, const float* gamma,
                            const float* mean, const float* inv_std, int rows, int width) {
  __shared__ float scratch[32];  // for blockSum
  const int n = width / (int)(sizeof(Item) / sizeof(float));  // items of a row
  const Item* g = reinterpret_cast<const Item*>(gamma);
  // TODO hw4.4: LayerNorm, backward: not implemented yet (outputs are left untouched).
}

// The copies of layerNormBackwardKernel the launcher may pick (compiled here,
// where the template is): float4 items up to 2 a thread (8192 / 4 / 1024),
// floats up to 8.
#define BACKWARD_KERNEL(ITEM, K)                                                         \
  template __global__ void layerNormBackwardKernel<ITEM, K>(                             \
      float*, float*, float*, const float*, const float*, const float*, const float*, \
      const float*, int, int);
BACKWARD_KERNEL(float4, 1)
BACKWARD_KERNEL(float4, 2)
BACKWARD_KERNEL(float, 1)
BACKWARD_KERNEL(float, 2)
BACKWARD_KERNEL(float, 4)
BACKWARD_KERNEL(float, 8)
#undef BACKWARD_KERNEL

// gamma's and beta's gradients (hw4.4): the sums of the `parts` rows of
// gamma_part and beta_part (layerNormBackwardKernel's blocks' sums), per column.
//
// One row of blocks of PARAM_COLS x PARAM_ROWS threads: thread (tx, ty) of
// block blockIdx.x handles column blockIdx.x * PARAM_COLS + tx (if it is
// below width) and parts ty, ty + PARAM_ROWS, ... (neighbouring threads read
// neighbouring numbers). Plan: each thread's sums over its parts; the
// PARAM_ROWS threads of a column add theirs up through shared memory (wait for
// every thread to write before reading); one thread per column stores the
// column's totals (a block holds whole columns: nothing to add across blocks).
__global__ void layerNormParamGradKernel(float* grad_gamma, float* grad_beta,
                                         const float* gamma_part, const float* beta_part,
                                         int parts, int width) {
  __shared__ float gamma_sum[PARAM_ROWS][PARAM_COLS];
  __shared__ float beta_sum[PARAM_ROWS][PARAM_COLS];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * PARAM_COLS + tx;
  // TODO hw4.4: LayerNorm, backward: not implemented yet (outputs are left untouched).
}
