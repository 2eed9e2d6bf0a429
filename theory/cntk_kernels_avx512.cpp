// The loops of cntk_kernels_impl.hpp compiled for xsimd::avx512bw (flags set in theory/CMakeLists.txt).
#define THETA_CNTK_NS avx512
#define THETA_CNTK_ARCH xsimd::avx512bw
#include "theory/cntk_kernels_impl.hpp"
