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
// memory too. The host functions that launch these kernels are provided in
// launch.cu (Python calls them through ctypes, see `minitorch/cuda_runtime.py`);
// kernels.cuh declares what this file and launch.cu share: the kernels'
// signatures, MAX_DIMS, the block sizes and the `fn` ids. This file is
// compiled on its own: its macros and functions reach no other file, and all
// of its work must be done by its kernels, on the GPU.
//
// Build and test: see the handout (README.md). Python builds the library with
// nvcc the first time a CUDA operation runs.

#include <math.h>

#include "kernels.cuh"

// MatrixMultiply launches blocks of MM_THREADS x MM_THREADS threads, each block
// computing an MM_TILE x MM_TILE tile of one output matrix and stepping through
// the inner dimension MM_DEPTH at a time, so each thread computes
// (MM_TILE / MM_THREADS)^2 outputs. MM_TILE defaults to MM_THREADS: one output
// per thread, the handout's first step. Raise it only once every thread of your
// kernel computes R x R outputs: define it as R * MM_THREADS above the default,
// in place of the starter's hw2.4 stub comment there, e.g.
// `#define MM_TILE (4 * MM_THREADS)`. A kernel with one output per thread under
// a larger MM_TILE leaves most of every tile unwritten. The reference has each
// thread compute a 4 x 4 block of outputs (MM_TILE 64), which reuses every
// number it loads four times. Change these to fit your kernel, in this file.
#ifndef MM_THREADS
#define MM_THREADS 16
#endif
#ifndef MM_TILE
#define MM_TILE 64
#endif
#ifndef MM_TILE
#define MM_TILE MM_THREADS
#endif
#ifndef MM_DEPTH
#define MM_DEPTH 16
#endif

// How launch.cu learns the launch shape above (it cannot see these defines).
extern "C" const int mm_config[2] = {MM_THREADS, MM_TILE};

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
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= out_size) return;
  to_index(i, out_shape, out_index, out_dims);
  broadcast_index(out_index, out_shape, in_shape, in_index, out_dims, in_dims);
  float x = in_storage[index_to_position(in_index, in_strides, in_dims)];
  out[index_to_position(out_index, out_strides, out_dims)] = fn(fn_id, x);
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
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= out_size) return;
  to_index(i, out_shape, out_index, out_dims);
  broadcast_index(out_index, out_shape, a_shape, a_index, out_dims, a_dims);
  broadcast_index(out_index, out_shape, b_shape, b_index, out_dims, b_dims);
  float x = a_storage[index_to_position(a_index, a_strides, a_dims)];
  float y = b_storage[index_to_position(b_index, b_strides, b_dims)];
  out[index_to_position(out_index, out_strides, out_dims)] = fn(fn_id, x, y);
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
  int ordinal = blockIdx.x;
  if (ordinal >= out_size) return;
  to_index(ordinal, out_shape, index, dims);
  int out_position = index_to_position(index, out_strides, dims);
  index[reduce_dim] = 0;
  int base = index_to_position(index, a_strides, dims);
  int step = a_strides[reduce_dim];
  int length = a_shape[reduce_dim];
  int t = threadIdx.x;
  float acc = reduce_value;
  for (int k = t; k < length; k += blockDim.x) {
    acc = fn(fn_id, acc, a_storage[base + k * step]);
  }
  partial[t] = acc;
  __syncthreads();
  for (int active = blockDim.x / 2; active > 0; active /= 2) {
    if (t < active) {
      partial[t] = fn(fn_id, partial[t], partial[t + active]);
    }
    __syncthreads();
  }
  if (t == 0) {
    out[out_position] = partial[0];
  }
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
  // a's part is stored transposed (k first) so the inner loop reads rows of both;
  // the +1 spreads a column's numbers over the shared-memory banks.
  __shared__ float a_part[MM_DEPTH][MM_TILE + 1];
  __shared__ float b_part[MM_DEPTH][MM_TILE];

  // This block's matrices (a batch of 1 broadcasts: its batch stride is 0) and
  // their strides, the tile's first row and column, this thread's place in it.
  const int batch = blockIdx.z;
  const int rows = out_shape[1], cols = out_shape[2], inner = a_shape[2];
  const float* a = a_storage + (a_shape[0] > 1 ? batch * a_strides[0] : 0);
  const float* b = b_storage + (b_shape[0] > 1 ? batch * b_strides[0] : 0);
  float* o = out + batch * out_strides[0];
  const int a_row = a_strides[1], a_col = a_strides[2];
  const int b_row = b_strides[1], b_col = b_strides[2];
  const int row0 = blockIdx.y * MM_TILE, col0 = blockIdx.x * MM_TILE;
  const int tx = threadIdx.x, ty = threadIdx.y;

  // Each thread computes PER x PER outputs: rows ty + MM_THREADS * r and
  // columns tx + MM_THREADS * c of the tile (so neighbouring threads read
  // neighbouring numbers from shared memory and write neighbouring outputs).
  constexpr int PER = MM_TILE / MM_THREADS;
  constexpr int THREADS = MM_THREADS * MM_THREADS;
  const int tid = ty * MM_THREADS + tx;

  float acc[PER][PER];
  for (int r = 0; r < PER; ++r)
    for (int c = 0; c < PER; ++c) acc[r][c] = 0.0f;

  for (int k0 = 0; k0 < inner; k0 += MM_DEPTH) {
    // Neighbouring threads copy neighbouring k of a (a row) and neighbouring
    // columns of b, which are adjacent in memory for row-major tensors.
    for (int e = tid; e < MM_TILE * MM_DEPTH; e += THREADS) {
      int r = e / MM_DEPTH, k = e % MM_DEPTH;
      int row = row0 + r, kk = k0 + k;
      a_part[k][r] = (row < rows && kk < inner) ? a[row * a_row + kk * a_col] : 0.0f;
    }
    for (int e = tid; e < MM_TILE * MM_DEPTH; e += THREADS) {
      int k = e / MM_TILE, c = e % MM_TILE;
      int col = col0 + c, kk = k0 + k;
      b_part[k][c] = (col < cols && kk < inner) ? b[kk * b_row + col * b_col] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < MM_DEPTH; ++k) {
      float a_reg[PER], b_reg[PER];
#pragma unroll
      for (int r = 0; r < PER; ++r) a_reg[r] = a_part[k][ty + MM_THREADS * r];
#pragma unroll
      for (int c = 0; c < PER; ++c) b_reg[c] = b_part[k][tx + MM_THREADS * c];
#pragma unroll
      for (int r = 0; r < PER; ++r)
#pragma unroll
        for (int c = 0; c < PER; ++c) acc[r][c] += a_reg[r] * b_reg[c];
    }
    __syncthreads();
  }

  for (int r = 0; r < PER; ++r) {
    int row = row0 + ty + MM_THREADS * r;
    if (row >= rows) break;
    for (int c = 0; c < PER; ++c) {
      int col = col0 + tx + MM_THREADS * c;
      if (col < cols) o[row * out_strides[1] + col * out_strides[2]] = acc[r][c];
    }
  }
}
