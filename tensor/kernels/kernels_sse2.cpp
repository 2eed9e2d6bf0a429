// The kernels of kernels_impl.hpp compiled for xsimd::sse2 (flags set in tensor/CMakeLists.txt).
#define THETA_KERNEL_NS sse2
#define THETA_KERNEL_ARCH xsimd::sse2
#include "tensor/kernels/kernels_impl.hpp"
