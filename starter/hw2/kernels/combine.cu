// CUDA kernels of miniTorch's GPU backend (assignment hw2).
//
// The same operations as `minitorch.fast_ops`, for tensors on the GPU:
//
//   mapKernel             out[i] = fn(in[broadcast(i)])                  (hw2.1)
//   zipKernel             out[i] = fn(a[broadcast(i)], b[broadcast(i)])  (hw2.2)
//   reduceKernel          out[i] = fn-fold of a's row along reduce_dim   (hw2.3)
//   MatrixMultiplyKernel  out[n] = a[n] @ b[n], batched                  (hw2.4)
//
// Tensors are float32 storages in GPU memory with a shape and strides (the
// layout of `minitorch.tensor_data`); shapes and strides are int arrays in GPU
// memory too. The `extern "C"` functions at the end are what Python calls
// (through ctypes, see `minitorch/cuda_runtime.py`): they take the storages as
// GPU pointers and the shapes and strides as host arrays, copy those to the
// GPU, launch the kernel and return the CUDA error code (0 when all went well).
//
// Build and test: see the handout (README.md). Python builds this file with
// nvcc the first time a CUDA operation runs.

#include <cuda_runtime.h>
#include <math.h>

// Most dimensions a tensor may have here.
#define MAX_DIMS 10
// Threads per block of map and zip.
#define THREADS_PER_BLOCK 256
// Most threads per block of reduce (a power of 2).
#define REDUCE_THREADS 256

// MatrixMultiply launches blocks of MM_THREADS x MM_THREADS threads, each block
// computing an MM_TILE x MM_TILE tile of one output matrix and stepping through
// the inner dimension MM_DEPTH at a time. With MM_TILE == MM_THREADS each thread
// computes one output; the reference has each thread compute a 4 x 4 block of
// outputs (MM_TILE = 4 * MM_THREADS), which reuses every number it loads four
// times. Change these to fit your kernel.
#ifndef MM_THREADS
#define MM_THREADS 16
#endif
#ifndef MM_TILE
#define MM_TILE 64
#endif
#ifndef MM_DEPTH
#define MM_DEPTH 16
#endif

// The functions a kernel can apply, by id (minitorch/cuda_runtime.py, FN_IDS).
#define ADD 1
#define MUL 2
#define ID 3
#define NEG 4
#define LT 5
#define EQ 6
#define SIGMOID 7
#define RELU 8
#define RELU_BACK 9
#define LOG 10
#define LOG_BACK 11
#define EXP 12
#define INV 13
#define INV_BACK 14
#define IS_CLOSE 15
#define MAX 16

// fn(fn_id, x) for the functions of one argument, fn(fn_id, x, y) for two.
__device__ float fn(int fn_id, float x, float y = 0.0f) {
  switch (fn_id) {
    case ADD: return x + y;
    case MUL: return x * y;
    case ID: return x;
    case NEG: return -x;
    case LT: return x < y ? 1.0f : 0.0f;
    case EQ: return x == y ? 1.0f : 0.0f;
    case SIGMOID:
      if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
      return expf(x) / (1.0f + expf(x));
    case RELU: return x > 0.0f ? x : 0.0f;
    case RELU_BACK: return x > 0.0f ? y : 0.0f;
    case LOG: return logf(x);
    case LOG_BACK: return y / x;
    case EXP: return expf(x);
    case INV: return 1.0f / x;
    case INV_BACK: return -y / (x * x);
    case IS_CLOSE: return fabsf(x - y) < 1e-2f ? 1.0f : 0.0f;
    case MAX: return x > y ? x : y;
    default: return 0.0f;
  }
}

// ---------------------------------------------------------------------------
// Index helpers (provided): the device versions of minitorch.tensor_data's.
// ---------------------------------------------------------------------------

// The storage position of `index`: sum of index[k] * strides[k].
__device__ int index_to_position(const int* index, const int* strides, int num_dims) {
  int position = 0;
  for (int k = 0; k < num_dims; ++k) {
    position += index[k] * strides[k];
  }
  return position;
}

// The index of `ordinal` (0 .. size - 1, row-major order) in `shape`, into `out_index`.
__device__ void to_index(int ordinal, const int* shape, int* out_index, int num_dims) {
  for (int k = num_dims - 1; k >= 0; --k) {
    out_index[k] = ordinal % shape[k];
    ordinal /= shape[k];
  }
}

// The index into `shape` that `big_index` of the broadcast shape `big_shape`
// maps to: trailing dimensions line up, and a dimension of size 1 takes index 0.
__device__ void broadcast_index(const int* big_index, const int* big_shape, const int* shape,
                                int* out_index, int num_dims_big, int num_dims) {
  for (int k = 0; k < num_dims; ++k) {
    int big = k + num_dims_big - num_dims;
    out_index[k] = shape[k] > 1 ? big_index[big] : 0;
  }
}

// ---------------------------------------------------------------------------
// The kernels
// ---------------------------------------------------------------------------

// out[i] = fn(in[broadcast(i)]) for every element i of out (hw2.1).
//
// One thread per element of out: thread number
// `blockIdx.x * blockDim.x + threadIdx.x` handles the element of that ordinal,
// if it is below out_size (the last block has threads to spare). `in_shape`
// broadcasts to `out_shape`; neither tensor needs to be contiguous.
__global__ void mapKernel(float* out, const int* out_shape, const int* out_strides, int out_size,
                          int out_dims, const float* in_storage, const int* in_shape,
                          const int* in_strides, int in_dims, int fn_id) {
  int out_index[MAX_DIMS];
  int in_index[MAX_DIMS];
  // TODO hw2.1: Map: not implemented yet (outputs are left untouched).
}

// out[i] = fn(a[broadcast(i)], b[broadcast(i)]) for every element i of out (hw2.2).
//
// As mapKernel, with two inputs that each broadcast to out's shape.
__global__ void zipKernel(float* out, const int* out_shape, const int* out_strides, int out_size,
                          int out_dims, const float* a_storage, const int* a_shape,
                          const int* a_strides, int a_dims, const float* b_storage,
                          const int* b_shape, const int* b_strides, int b_dims, int fn_id) {
  int out_index[MAX_DIMS];
  int a_index[MAX_DIMS];
  int b_index[MAX_DIMS];
  // TODO hw2.2: Zip: not implemented yet (outputs are left untouched).
}

// Fold fn over dimension `reduce_dim` of `a` (hw2.3).
//
// out has a's shape with reduce_dim of size 1; out[i] is
// fn(...fn(fn(reduce_value, a[i, 0]), a[i, 1])..., a[i, n - 1]) along reduce_dim.
// `reduce_value` is the identity of fn (0 for ADD, 1 for MUL, -inf for MAX), so
// partial results may each start from it and be combined in any order.
//
// One block per element of out (block number blockIdx.x is out's ordinal); its
// blockDim.x threads (a power of 2, at most REDUCE_THREADS) share the row: each
// folds every blockDim.x-th element of it, then the block combines the threads'
// partial results in shared memory, halving the number of active threads each
// step (__syncthreads() between steps), and thread 0 writes the result.
__global__ void reduceKernel(float* out, const int* out_shape, const int* out_strides,
                             int out_size, const float* a_storage, const int* a_shape,
                             const int* a_strides, int dims, int reduce_dim, float reduce_value,
                             int fn_id) {
  __shared__ float partial[REDUCE_THREADS];
  int index[MAX_DIMS];
  // TODO hw2.3: Reduce: not implemented yet (outputs are left untouched).
}

// Batched matrix product out[n] = a[n] @ b[n] of 3-D tensors (hw2.4).
//
// a is (batch, I, K), b is (batch, K, J), out is (batch, I, J); a batch size of
// 1 in a or b broadcasts (use a batch stride of 0 for it). None needs to be
// contiguous. Block (blockIdx.x, blockIdx.y, blockIdx.z) computes the
// MM_TILE x MM_TILE tile of out[blockIdx.z] whose first row is
// blockIdx.y * MM_TILE and first column blockIdx.x * MM_TILE.
//
// Tiling: for each step of MM_DEPTH along K, the block's threads copy the
// MM_TILE x MM_DEPTH part of a and the MM_DEPTH x MM_TILE part of b that the
// tile needs into shared memory (zeros outside the matrices), wait for each
// other (__syncthreads), multiply-add from shared memory, and wait again before
// the next copy overwrites it. Each number of a and b is then read from GPU
// memory once per block instead of once per output.
__global__ void MatrixMultiplyKernel(float* out, const int* out_shape, const int* out_strides,
                                     const float* a_storage, const int* a_shape,
                                     const int* a_strides, const float* b_storage,
                                     const int* b_shape, const int* b_strides) {
  // TODO hw2.4: Matrix multiply: not implemented yet (outputs are left untouched).
}

// ---------------------------------------------------------------------------
// Host functions called from Python (provided)
// ---------------------------------------------------------------------------

namespace {

// Shapes and strides are copied to this GPU buffer before each launch.
int* device_layouts = nullptr;

// Copy `count` host arrays of `lengths[k]` ints to the GPU, one after another;
// `placed[k]` is where array k landed.
cudaError_t place_layouts(const int* const* arrays, const int* lengths, int count,
                          const int** placed) {
  int packed[8 * MAX_DIMS];
  int used = 0;
  for (int k = 0; k < count; ++k) {
    if (lengths[k] < 0 || lengths[k] > MAX_DIMS) return cudaErrorInvalidValue;
    for (int j = 0; j < lengths[k]; ++j) packed[used + j] = arrays[k][j];
    used += lengths[k];
  }
  if (device_layouts == nullptr) {
    cudaError_t status = cudaMalloc(&device_layouts, sizeof(packed));
    if (status != cudaSuccess) return status;
  }
  // On the default stream, like the kernels: an earlier kernel still reading
  // the buffer finishes before it is overwritten.
  cudaError_t status = cudaMemcpy(device_layouts, packed, used * sizeof(int),
                                  cudaMemcpyHostToDevice);
  used = 0;
  for (int k = 0; k < count; ++k) {
    placed[k] = device_layouts + used;
    used += lengths[k];
  }
  return status;
}

int blocks_for(int size, int threads) { return (size + threads - 1) / threads; }

}  // namespace

extern "C" {

// out[i] = fn(in[broadcast(i)]); storages on the GPU, shapes and strides on the host.
int tensorMap(float* out, const int* out_shape, const int* out_strides, int out_size,
              int out_dims, const float* in_storage, const int* in_shape, const int* in_strides,
              int in_dims, int fn_id) {
  const int* arrays[4] = {out_shape, out_strides, in_shape, in_strides};
  const int lengths[4] = {out_dims, out_dims, in_dims, in_dims};
  const int* d[4];
  cudaError_t status = place_layouts(arrays, lengths, 4, d);
  if (status != cudaSuccess || out_size == 0) return status;
  mapKernel<<<blocks_for(out_size, THREADS_PER_BLOCK), THREADS_PER_BLOCK>>>(
      out, d[0], d[1], out_size, out_dims, in_storage, d[2], d[3], in_dims, fn_id);
  return cudaGetLastError();
}

// out[i] = fn(a[broadcast(i)], b[broadcast(i)]).
int tensorZip(float* out, const int* out_shape, const int* out_strides, int out_size,
              int out_dims, const float* a_storage, const int* a_shape, const int* a_strides,
              int a_dims, const float* b_storage, const int* b_shape, const int* b_strides,
              int b_dims, int fn_id) {
  const int* arrays[6] = {out_shape, out_strides, a_shape, a_strides, b_shape, b_strides};
  const int lengths[6] = {out_dims, out_dims, a_dims, a_dims, b_dims, b_dims};
  const int* d[6];
  cudaError_t status = place_layouts(arrays, lengths, 6, d);
  if (status != cudaSuccess || out_size == 0) return status;
  zipKernel<<<blocks_for(out_size, THREADS_PER_BLOCK), THREADS_PER_BLOCK>>>(
      out, d[0], d[1], out_size, out_dims, a_storage, d[2], d[3], a_dims, b_storage, d[4], d[5],
      b_dims, fn_id);
  return cudaGetLastError();
}

// out = fold of fn over a's dimension reduce_dim, from reduce_value (fn's identity).
int tensorReduce(float* out, const int* out_shape, const int* out_strides, int out_size,
                 const float* a_storage, const int* a_shape, const int* a_strides, int dims,
                 int reduce_dim, float reduce_value, int fn_id) {
  if (reduce_dim < 0 || reduce_dim >= dims) return cudaErrorInvalidValue;
  const int* arrays[4] = {out_shape, out_strides, a_shape, a_strides};
  const int lengths[4] = {dims, dims, dims, dims};
  const int* d[4];
  cudaError_t status = place_layouts(arrays, lengths, 4, d);
  if (status != cudaSuccess || out_size == 0) return status;
  // Enough threads for the row, as a power of 2, up to REDUCE_THREADS.
  int threads = 32;
  while (threads < REDUCE_THREADS && threads < a_shape[reduce_dim]) threads *= 2;
  reduceKernel<<<out_size, threads>>>(out, d[0], d[1], out_size, a_storage, d[2], d[3], dims,
                                      reduce_dim, reduce_value, fn_id);
  return cudaGetLastError();
}

// out[n] = a[n] @ b[n] for 3-D tensors: (batch, I, K) @ (batch, K, J) -> (batch, I, J).
int MatrixMultiply(float* out, const int* out_shape, const int* out_strides,
                   const float* a_storage, const int* a_shape, const int* a_strides,
                   const float* b_storage, const int* b_shape, const int* b_strides) {
  const int* arrays[6] = {out_shape, out_strides, a_shape, a_strides, b_shape, b_strides};
  const int lengths[6] = {3, 3, 3, 3, 3, 3};
  const int* d[6];
  cudaError_t status = place_layouts(arrays, lengths, 6, d);
  if (status != cudaSuccess) return status;
  if (out_shape[0] > 65535) return cudaErrorInvalidConfiguration;
  if (out_shape[0] * out_shape[1] * out_shape[2] == 0) return cudaSuccess;
  dim3 threads(MM_THREADS, MM_THREADS);
  dim3 blocks(blocks_for(out_shape[2], MM_TILE), blocks_for(out_shape[1], MM_TILE),
              out_shape[0]);
  MatrixMultiplyKernel<<<blocks, threads>>>(out, d[0], d[1], a_storage, d[2], d[3], b_storage,
                                            d[4], d[5]);
  return cudaGetLastError();
}

}  // extern "C"
