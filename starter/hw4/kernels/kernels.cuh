// What combine.cu (your kernels) and launch.cu (the provided launchers) share
// (provided, not graded).
//
// The library is built from three translation units, each compiled on its own
// (minitorch/cuda_runtime.py): combine.cu, launch.cu and runtime.cu. They meet
// only through the declarations below: the four kernels, which launch.cu
// launches, and `mm_config`, the launch shape of the matrix multiply that
// combine.cu chooses with its MM_* defines. Nothing else of combine.cu (no
// macro, no other function) reaches the launchers.

#ifndef MINITORCH_KERNELS_CUH
#define MINITORCH_KERNELS_CUH

#include <cuda_runtime.h>

// Most dimensions a tensor may have here.
#define MAX_DIMS 10
// Threads per block of map and zip.
#define THREADS_PER_BLOCK 256
// Most threads per block of reduce (a power of 2).
#define REDUCE_THREADS 256

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

// The kernels (defined in combine.cu; what each computes is described there).
__global__ void mapKernel(float* out, const int* out_shape, const int* out_strides, int out_size,
                          int out_dims, const float* in_storage, const int* in_shape,
                          const int* in_strides, int in_dims, int fn_id);

__global__ void zipKernel(float* out, const int* out_shape, const int* out_strides, int out_size,
                          int out_dims, const float* a_storage, const int* a_shape,
                          const int* a_strides, int a_dims, const float* b_storage,
                          const int* b_shape, const int* b_strides, int b_dims, int fn_id);

__global__ void reduceKernel(float* out, const int* out_shape, const int* out_strides,
                             int out_size, const float* a_storage, const int* a_shape,
                             const int* a_strides, int dims, int reduce_dim, float reduce_value,
                             int fn_id);

__global__ void MatrixMultiplyKernel(float* out, const int* out_shape, const int* out_strides,
                                     const float* a_storage, const int* a_shape,
                                     const int* a_strides, const float* b_storage,
                                     const int* b_shape, const int* b_strides);

// The matrix multiply's launch shape, defined in combine.cu from its defines:
// {MM_THREADS, MM_TILE}. MatrixMultiply launches blocks of
// mm_config[0] x mm_config[0] threads, one block per mm_config[1] x mm_config[1]
// tile of the output.
extern "C" const int mm_config[2];

#endif  // MINITORCH_KERNELS_CUH
