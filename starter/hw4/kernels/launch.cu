// The host functions that Python calls to launch the kernels (provided, not graded).
//
// Python calls these through ctypes (minitorch/cuda_runtime.py). Each takes the
// storages as GPU pointers and the shapes and strides as host arrays, copies
// those to the GPU, launches its kernel of combine.cu and returns the CUDA
// error code (0 when all went well).
//
// This file is compiled on its own, without combine.cu: it sees only the
// declarations of kernels.cuh. It launches each kernel with cudaLaunchKernel,
// which starts the device code of the kernel registered under that name and
// never calls host code of combine.cu, and counts every successful launch
// (launchCounts): the tests of hw2.5 use the counts to check that each
// operation of the CUDA backend ran a kernel on the GPU.

#include <stdint.h>

#include "kernels.cuh"

namespace {

// Shapes and strides are copied to this GPU buffer before each launch.
int* device_layouts = nullptr;

// Successful launches of each kernel in this process, in the order of
// launchCounts. Only the functions of this file change them.
enum Kind { MAP, ZIP, REDUCE, MATMUL, KINDS };
int64_t launches[KINDS] = {0, 0, 0, 0};

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

// Launch `kernel` (a __global__ function) on the default stream and count the
// launch if it succeeded. A name that is not a registered kernel is
// a CUDA error ("invalid resource handle" on an H200), never a call.
cudaError_t launch(Kind kind, const void* kernel, dim3 blocks, dim3 threads, void** args) {
  cudaError_t status = cudaLaunchKernel(kernel, blocks, threads, args, 0, nullptr);
  cudaError_t last = cudaGetLastError();
  if (status == cudaSuccess) status = last;
  if (status == cudaSuccess) ++launches[kind];
  return status;
}

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
  void* args[] = {&out, &d[0], &d[1], &out_size, &out_dims,
                  &in_storage, &d[2], &d[3], &in_dims, &fn_id};
  return launch(MAP, (const void*)mapKernel, blocks_for(out_size, THREADS_PER_BLOCK),
                THREADS_PER_BLOCK, args);
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
  void* args[] = {&out, &d[0], &d[1], &out_size, &out_dims,
                  &a_storage, &d[2], &d[3], &a_dims,
                  &b_storage, &d[4], &d[5], &b_dims, &fn_id};
  return launch(ZIP, (const void*)zipKernel, blocks_for(out_size, THREADS_PER_BLOCK),
                THREADS_PER_BLOCK, args);
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
  void* args[] = {&out, &d[0], &d[1], &out_size,
                  &a_storage, &d[2], &d[3], &dims, &reduce_dim, &reduce_value, &fn_id};
  return launch(REDUCE, (const void*)reduceKernel, out_size, threads, args);
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
  // combine.cu's MM_THREADS and MM_TILE: at most 1024 threads per block.
  const int side = mm_config[0], tile = mm_config[1];
  if (side < 1 || side > 32 || tile < 1) return cudaErrorInvalidConfiguration;
  if (out_shape[0] > 65535) return cudaErrorInvalidConfiguration;
  if (out_shape[0] * out_shape[1] * out_shape[2] == 0) return cudaSuccess;
  dim3 threads(side, side);
  dim3 blocks(blocks_for(out_shape[2], tile), blocks_for(out_shape[1], tile), out_shape[0]);
  void* args[] = {&out, &d[0], &d[1], &a_storage, &d[2], &d[3], &b_storage, &d[4], &d[5]};
  return launch(MATMUL, (const void*)MatrixMultiplyKernel, blocks, threads, args);
}

// counts[0..3] = the successful launches so far of map, zip, reduce and matrix
// multiply, in this process.
int launchCounts(int64_t* counts) {
  for (int k = 0; k < KINDS; ++k) counts[k] = launches[k];
  return cudaSuccess;
}

}  // extern "C"
