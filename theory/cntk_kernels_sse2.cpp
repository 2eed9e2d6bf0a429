// The loops of cntk_kernels_impl.hpp compiled for xsimd::sse2 (flags set in theory/CMakeLists.txt).
#define THETA_CNTK_NS sse2
#define THETA_CNTK_ARCH xsimd::sse2
#include "theory/cntk_kernels_impl.hpp"
