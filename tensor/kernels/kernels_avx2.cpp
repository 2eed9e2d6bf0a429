// The kernels of kernels_impl.hpp compiled for xsimd::fma3<xsimd::avx2> (flags set in tensor/CMakeLists.txt).
#define THETA_KERNEL_NS avx2
#define THETA_KERNEL_ARCH xsimd::fma3<xsimd::avx2>
#include "tensor/kernels/kernels_impl.hpp"
