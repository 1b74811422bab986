// The host functions that Python calls to launch the fused kernels (provided,
// not graded).
//
// Python calls these through ctypes (minitorch/fused_runtime.py). Each takes
// GPU pointers and sizes, picks the launch shape, launches its kernels of
// fused.cu with cudaLaunchKernel and returns the CUDA error code (0 when all
// went well). Like launch.cu of hw2, this file is compiled on its own, without
// fused.cu: it sees only the declarations of fused.cuh, so nothing of fused.cu
// can change how its kernels are launched; and it counts every successful
// launch of each kernel (fusedLaunchCounts), which hw4's tests read to check
// that the GPU ran the kernel.
//
// Launch shapes. The attention softmax's rows of at most SOFTMAX_WARP_COLS keys
// get a warp each, SOFTMAX_WARP_ROWS warps a block. Every other row kernel
// (and the softmax's longer rows) gets one block per row and, for a row of
// `items` items, the smallest power of 2 of threads from ROW_MIN_THREADS up to
// ROW_THREADS that takes the row with at most `per_thread` items a thread
// (rows longer than ROW_THREADS * per_thread items take more a thread):
//   - the attention softmax (rows longer than SOFTMAX_WARP_COLS) and its
//     gradient: items = cols, per_thread = SOFTMAX_ITEMS_PER_THREAD;
//   - LayerNorm: items = width / 4 when the width is a multiple of 4 (a
//     float4 an item), else width; per_thread = LAYERNORM_ITEMS_PER_THREAD.
// Several items a thread make each block's reductions and __syncthreads()
// pay for more numbers; blocks of at least two warps let an SM (which holds
// at most 32 blocks) fill all of its 2048 threads.
// The softmax's block rows get cols floats of dynamic shared memory.
// LayerNorm's gradient is not one block per row: layerNormBackwardKernel gets
// as many blocks as the GPU holds at once (at most one per row), each taking
// every gridDim.x-th row, threads by the rule above with LayerNorm's items and
// per_thread = LAYERNORM_BACKWARD_ITEMS_PER_THREAD, and the copy of the kernel
// that holds that many items a thread (ITEMS, a power of 2); then
// layerNormParamGradKernel, one row of blocks of PARAM_COLS x PARAM_ROWS
// threads, adds up the blocks' parts of gamma's and beta's gradients (kept in
// a workspace this file allocates and keeps).

#include <stdint.h>

#include "fused.cuh"

namespace {

// Successful launches of each kernel in this process, in the order of
// fusedLaunchCounts. Only the functions of this file change them.
enum Kind { SOFTMAX, SOFTMAX_BACKWARD, LAYERNORM, LAYERNORM_BACKWARD, LAYERNORM_PARAMS, KINDS };
int64_t launches[KINDS] = {0, 0, 0, 0, 0};

// Launch `kernel` (a __global__ function) on the default stream and count the
// launch if it succeeded.
cudaError_t launch(Kind kind, const void* kernel, dim3 blocks, dim3 threads, size_t shared,
                   void** args) {
  cudaError_t status = cudaLaunchKernel(kernel, blocks, threads, args, shared, nullptr);
  cudaError_t last = cudaGetLastError();
  if (status == cudaSuccess) status = last;
  if (status == cudaSuccess) ++launches[kind];
  return status;
}

// Threads of a block for a row of `items` items (see the top of this file).
int row_threads(int items, int per_thread) {
  int threads = ROW_MIN_THREADS;
  while (threads < ROW_THREADS && threads * per_thread < items) threads *= 2;
  return threads;
}

// Items of a LayerNorm row: float4s when the width allows them.
int layer_norm_items(int width) { return width % 4 == 0 ? width / 4 : width; }

// Whether `pointer` is on a 16-byte boundary (where a float4 may be loaded).
bool aligned16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

// A GPU array of at least `floats` floats, kept for the next call (LayerNorm's
// gradient writes its blocks' sums there). It grows when asked for more;
// cudaFree waits for the GPU, so no kernel still uses the old one.
cudaError_t workspace(size_t floats, float** out) {
  static float* held = nullptr;
  static size_t capacity = 0;
  if (floats > capacity) {
    if (held != nullptr) cudaFree(held);
    held = nullptr;
    capacity = 0;
    cudaError_t status = cudaMalloc(&held, floats * sizeof(float));
    if (status != cudaSuccess) return status;
    capacity = floats;
  }
  *out = held;
  return cudaSuccess;
}

// rows = a * b * c, or -1 when it does not fit an int.
int product(int a, int b, int c) {
  int64_t n = (int64_t)a * b * c;
  return n > INT32_MAX ? -1 : (int)n;
}

}  // namespace

extern "C" {

// The masked softmax of scores (batch, heads, queries, cols) into out (same
// shape); key_padding: nullptr or (batch, cols), nonzero at padding keys;
// causal: 1 to mask key j > query i.
int attnSoftmax(float* out, const float* in, const float* key_padding, int batch, int heads,
                int queries, int cols, int causal) {
  if (batch < 0 || heads < 0 || queries < 0 || cols < 0 || cols > SOFTMAX_MAX_COLS) {
    return cudaErrorInvalidValue;
  }
  int rows = product(batch, heads, queries);
  if (rows < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  causal = causal ? 1 : 0;
  void* args[] = {&out, &in, &key_padding, &rows, &cols, &queries, &heads, &causal};
  if (cols <= SOFTMAX_WARP_COLS) {  // a warp per row, the fewest keys a lane that hold it
    static_assert(SOFTMAX_WARP_COLS == 32 * 32, "the kernels below hold 1 to 32 keys a lane");
    const void* kernel = cols <= 32    ? (const void*)attnSoftmaxWarpKernel<1>
                         : cols <= 64  ? (const void*)attnSoftmaxWarpKernel<2>
                         : cols <= 128 ? (const void*)attnSoftmaxWarpKernel<4>
                         : cols <= 256 ? (const void*)attnSoftmaxWarpKernel<8>
                         : cols <= 512 ? (const void*)attnSoftmaxWarpKernel<16>
                                       : (const void*)attnSoftmaxWarpKernel<32>;
    int blocks = (rows + SOFTMAX_WARP_ROWS - 1) / SOFTMAX_WARP_ROWS;
    return launch(SOFTMAX, kernel, blocks, 32 * SOFTMAX_WARP_ROWS, 0, args);
  }
  return launch(SOFTMAX, (const void*)attnSoftmaxKernel, rows,
                row_threads(cols, SOFTMAX_ITEMS_PER_THREAD), cols * sizeof(float), args);
}

// grad_in = the softmax's gradient, from grad_out and out, each (rows, cols).
int attnSoftmaxBackward(float* grad_in, const float* grad_out, const float* out, int rows,
                        int cols) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  void* args[] = {&grad_in, &grad_out, &out, &rows, &cols};
  return launch(SOFTMAX_BACKWARD, (const void*)attnSoftmaxBackwardKernel, rows,
                row_threads(cols, SOFTMAX_ITEMS_PER_THREAD), 0, args);
}

// LayerNorm of in (rows, width) into out; mean and inv_std (rows) saved.
int layerNorm(float* out, float* mean, float* inv_std, const float* in, const float* gamma,
              const float* beta, int rows, int width, float eps) {
  if (rows < 0 || width < 0 || width > LAYERNORM_MAX_WIDTH) return cudaErrorInvalidValue;
  if (rows == 0 || width == 0) return cudaSuccess;
  void* args[] = {&out, &mean, &inv_std, &in, &gamma, &beta, &rows, &width, &eps};
  return launch(LAYERNORM, (const void*)layerNormKernel, rows,
                row_threads(layer_norm_items(width), LAYERNORM_ITEMS_PER_THREAD), 0, args);
}

// LayerNorm's gradients: grad_in (rows, width), grad_gamma and grad_beta (width),
// from grad_out and the forward's input and saved mean and inv_std.
int layerNormBackward(float* grad_in, float* grad_gamma, float* grad_beta, const float* grad_out,
                      const float* in, const float* gamma, const float* mean,
                      const float* inv_std, int rows, int width) {
  if (rows < 0 || width < 0 || width > LAYERNORM_MAX_WIDTH) return cudaErrorInvalidValue;
  if (width == 0) return cudaSuccess;
  // The kernel's items: float4s where every row of every array starts on a
  // 16-byte boundary, and as few copies of a thread's columns as hold the row.
  const bool vectorized = width % 4 == 0 && aligned16(grad_in) && aligned16(grad_out) &&
                          aligned16(in) && aligned16(gamma);
  const int items = vectorized ? width / 4 : width;
  const int threads = row_threads(items, LAYERNORM_BACKWARD_ITEMS_PER_THREAD);
  const int per_thread = (items + threads - 1) / threads;  // 1 to 8 (2 for float4s)
  static_assert(LAYERNORM_BACKWARD_ITEMS_PER_THREAD <= 2 && LAYERNORM_MAX_WIDTH <= 8192,
                "the copies below hold at most 2 float4s or 8 floats a thread");
  const void* kernel = vectorized ? (per_thread <= 1 ? (const void*)layerNormBackwardKernel<float4, 1>
                                                     : (const void*)layerNormBackwardKernel<float4, 2>)
                       : per_thread <= 1 ? (const void*)layerNormBackwardKernel<float, 1>
                       : per_thread <= 2 ? (const void*)layerNormBackwardKernel<float, 2>
                       : per_thread <= 4 ? (const void*)layerNormBackwardKernel<float, 4>
                                         : (const void*)layerNormBackwardKernel<float, 8>;
  // As many blocks as the GPU holds at once, one part of the sums each.
  int device = 0, sms = 0, per_sm = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) {
    status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
  if (status == cudaSuccess) {
    status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0);
  }
  if (status != cudaSuccess) return status;
  const int64_t most = (int64_t)sms * (per_sm > 0 ? per_sm : 1);
  int parts = rows < most ? rows : (int)most;
  float* gamma_part = nullptr;
  status = workspace(2 * (size_t)parts * width, &gamma_part);
  if (status != cudaSuccess) return status;
  float* beta_part = gamma_part + (size_t)parts * width;
  if (rows > 0) {
    void* args[] = {&grad_in, &gamma_part, &beta_part, &grad_out, &in,
                    &gamma,   &mean,       &inv_std,   &rows,     &width};
    status = launch(LAYERNORM_BACKWARD, kernel, parts, threads, 0, args);
    if (status != cudaSuccess) return status;
  }
  dim3 blocks((width + PARAM_COLS - 1) / PARAM_COLS), param_threads(PARAM_COLS, PARAM_ROWS);
  void* param_args[] = {&grad_gamma, &grad_beta, &gamma_part, &beta_part, &parts, &width};
  return launch(LAYERNORM_PARAMS, (const void*)layerNormParamGradKernel, blocks, param_threads, 0,
                param_args);
}

// counts[0..4] = the successful launches so far, in this process, of the attention
// softmax (attnSoftmaxWarpKernel or attnSoftmaxKernel), attnSoftmaxBackwardKernel,
// layerNormKernel, layerNormBackwardKernel and layerNormParamGradKernel.
int fusedLaunchCounts(int64_t* counts) {
  for (int k = 0; k < KINDS; ++k) counts[k] = launches[k];
  return cudaSuccess;
}

}  // extern "C"
