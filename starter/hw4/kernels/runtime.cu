// GPU memory and device helpers for miniTorch's CUDA backend (provided, not graded).
//
// Built into the same library as combine.cu (minitorch/cuda_runtime.py).
// Every function returns a CUDA error code: 0 (cudaSuccess) when all went well,
// else a code that errorString turns into CUDA's message.

#include <cuda_runtime.h>
#include <stdint.h>

namespace {

// A float in [0, 1) from a seed and a counter (splitmix64): the same numbers on
// every GPU and every run, so two libraries can be fed identical inputs.
__device__ float uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}

__global__ void fillKernel(float* out, int64_t n, uint64_t seed, float low, float high) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    out[i] = low + (high - low) * uniform(seed, (uint64_t)i);
  }
}

// Sum of x[0 .. n-1] in double, added into *total.
__global__ void sumKernel(const float* x, int64_t n, double* total) {
  __shared__ double partial[256];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    acc += x[i];
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int active = blockDim.x / 2; active > 0; active /= 2) {
    if (threadIdx.x < active) partial[threadIdx.x] += partial[threadIdx.x + active];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(total, partial[0]);
}

int grid_for(int64_t n) {
  int64_t blocks = (n + 255) / 256;
  return (int)(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

extern "C" {

int deviceCount(int* count) {
  *count = 0;
  return cudaGetDeviceCount(count);
}

int deviceMalloc(void** pointer, size_t bytes) { return cudaMalloc(pointer, bytes > 0 ? bytes : 4); }

int deviceFree(void* pointer) { return cudaFree(pointer); }

int copyToDevice(void* device, const void* host, size_t bytes) {
  return cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice);
}

int copyToHost(void* host, const void* device, size_t bytes) {
  return cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost);
}

int copyOnDevice(void* to, const void* from, size_t bytes) {
  return cudaMemcpy(to, from, bytes, cudaMemcpyDeviceToDevice);
}

int deviceSynchronize() { return cudaDeviceSynchronize(); }

const char* errorString(int code) { return cudaGetErrorString((cudaError_t)code); }

// out[i] = a uniform number in [low, high) of (seed, i), for i < n.
int fillUniform(float* out, int64_t n, uint64_t seed, float low, float high) {
  if (n <= 0) return cudaSuccess;
  fillKernel<<<grid_for(n), 256>>>(out, n, seed, low, high);
  return cudaGetLastError();
}

// *result = sum of x[0 .. n-1], in double (waits for the GPU).
int deviceSum(const float* x, int64_t n, double* result) {
  *result = 0.0;
  if (n <= 0) return cudaSuccess;
  // One accumulator for the process, allocated once: a cudaMalloc and cudaFree
  // per call would cost more than summing a few megabytes.
  static double* total = nullptr;
  cudaError_t status = cudaSuccess;
  if (total == nullptr) status = cudaMalloc(&total, sizeof(double));
  if (status == cudaSuccess) status = cudaMemset(total, 0, sizeof(double));
  if (status == cudaSuccess) {
    sumKernel<<<grid_for(n), 256>>>(x, n, total);
    status = cudaGetLastError();
  }
  if (status == cudaSuccess) {
    status = cudaMemcpy(result, total, sizeof(double), cudaMemcpyDeviceToHost);
  }
  return status;
}

}  // extern "C"
