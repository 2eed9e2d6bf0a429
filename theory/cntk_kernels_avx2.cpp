// The loops of cntk_kernels_impl.hpp compiled for xsimd::fma3<xsimd::avx2> (flags set in theory/CMakeLists.txt).
#define THETA_CNTK_NS avx2
#define THETA_CNTK_ARCH xsimd::fma3<xsimd::avx2>
#include "theory/cntk_kernels_impl.hpp"
