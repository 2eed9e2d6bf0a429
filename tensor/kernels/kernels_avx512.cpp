// The kernels of kernels_impl.hpp compiled for xsimd::avx512bw (flags set in tensor/CMakeLists.txt).
#define THETA_KERNEL_NS avx512
#define THETA_KERNEL_ARCH xsimd::avx512bw
#include "tensor/kernels/kernels_impl.hpp"
