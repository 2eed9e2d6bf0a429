// Whole-tensor predicates on values: allclose and all_finite.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

namespace theta {

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const std::vector<double> va = to_vector(a), vb = to_vector(b);
  for (std::size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) || std::isnan(vb[i])) {
      if (!(equal_nan && std::isnan(va[i]) && std::isnan(vb[i]))) return false;
      continue;
    }
    if (va[i] == vb[i]) continue;  // equal infinities
    if (!(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]))) return false;
  }
  return true;
}

bool all_finite(const Tensor& x) {
  THETA_CHECK(x.defined(), std::invalid_argument, "all_finite: tensor is undefined");
  if (!is_floating(x.dtype())) return true;
  const Tensor dense = x.contiguous();
  return visit_float_dtype(dense.dtype(), [&](auto v) {
    using T = decltype(v);
    // The SIMD max and min reductions propagate NaN, and an infinity is its own max or min: two
    // vectorised passes, no temporary. Block by block, so the second pass reads the block from
    // cache, and blocks in parallel.
    const T* p = dense.data<T>();
    const std::int64_t n = dense.numel();
    if (n == 0) return true;
    const auto& k = detail::typed_kernels<T>(detail::kernels());
    constexpr std::int64_t kBlock = std::int64_t{1} << 14;
    std::atomic<bool> finite{true};
    parallel_for((n + kBlock - 1) / kBlock, 8, [&](std::int64_t b0, std::int64_t b1) {
      for (std::int64_t b = b0; b < b1 && finite.load(std::memory_order_relaxed); ++b) {
        const T* block = p + b * kBlock;
        const std::int64_t len = std::min(kBlock, n - b * kBlock);
        if (!std::isfinite(k.reduce(detail::ReduceOp::max, block, len)) ||
            !std::isfinite(k.reduce(detail::ReduceOp::min, block, len)))
          finite.store(false, std::memory_order_relaxed);
      }
    });
    return finite.load();
  });
}

}  // namespace theta
