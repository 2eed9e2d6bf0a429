#include "theory/cntk_kernels.hpp"

#include <cstring>
#include <xsimd/xsimd.hpp>

#include "tensor/kernels/kernels.hpp"

namespace theta::theory::detail {

namespace avx512 {
const CntkKernelTable& cntk_table();
}
namespace avx2 {
const CntkKernelTable& cntk_table();
}
namespace sse2 {
const CntkKernelTable& cntk_table();
}

const CntkKernelTable& cntk_kernels() {
  // The tensor kernels have already checked what this CPU runs and applied THETA_SIMD (or a
  // test's override); a table is only touched once it is known to run here.
  const char* name = theta::detail::kernels().arch_name;
  if (std::strcmp(name, xsimd::avx512bw::name()) == 0) return avx512::cntk_table();
  if (std::strcmp(name, xsimd::fma3<xsimd::avx2>::name()) == 0) return avx2::cntk_table();
  return sse2::cntk_table();
}

}  // namespace theta::theory::detail
