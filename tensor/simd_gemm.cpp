// The products theta computes with its own SIMD kernel rather than OpenBLAS (Note [Own products]).

#include "tensor/simd_gemm.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/parallel.hpp"

namespace theta::detail {

// Note [Own products]
// Two kinds of product go to the few-row kernel (Note [Few-row products] in
// tensor/kernels/few_rows_impl.hpp) instead of OpenBLAS:
//   few rows: op(a) with at most the kernel table's few_rows_max rows (two register groups) and
//     op(b) with contiguous rows. OpenBLAS packs both operands, which for so few rows costs as
//     much as the product: 10 x 64 x 2048 ran 3.8x as fast here (AVX-512), 1.0-2.2x (AVX2).
//   panels: any other product with k up to kMaxPanelDepth, when the kernel table has 512-bit
//     vectors and OpenBLAS's core does not use them (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU,
//     or a core older than the CPU). op(b) goes by column panels sized for the L2 cache (b^T's
//     copied into a contiguous buffer, b's read in place), and every group of rows of op(a) runs
//     the kernel over the panel: a 2560 x 320 Gram ran at 80 GFlop/s against OpenBLAS Haswell's
//     52 (1.5x).
// Every entry is then one multiply-add per term (fused where the instruction set has FMA) in
// order of k, so the split of rows and columns, over panels or threads, does not change a bit of
// the result.

namespace {

// Columns of op(b) at least, for the few-row kernel (narrower products stay with OpenBLAS).
constexpr std::int64_t kMinColumns = 32;
// The deepest panel: op(b) panels of k x columns numbers are kept in the L2 cache.
constexpr std::int64_t kMaxPanelDepth = 1024;
constexpr std::int64_t kPanelBytes = std::int64_t{512} << 10;
// Multiply-adds below which a product runs on one thread (OpenBLAS's own threshold is about the
// same: Note [Batched gemm threads] in ops_linalg.cpp).
constexpr std::int64_t kThreadWork = std::int64_t{1} << 18;

// Whether OpenBLAS's core leaves the CPU's 512-bit vectors unused (Note [Own products]).
bool blas_core_without_avx512() {
  static const bool without = [] {
    const std::string core = blas_core_name();
    return core != "SkylakeX" && core != "Cooperlake" && core != "SapphireRapids";
  }();
  return without;
}

template <class T>
void few_rows(const TypedKernels<T>& kernels, bool a_trans, std::int64_t m, std::int64_t n, std::int64_t k,
              const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, bool accumulate) {
  const std::int64_t a_row = a_trans ? 1 : lda, a_col = a_trans ? lda : 1;
  const std::int64_t grain = std::max<std::int64_t>(kMinColumns, kThreadWork / std::max<std::int64_t>(1, m * k));
  parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end) {
    kernels.few_rows_product(a, m, a_row, a_col, k, b + begin, ldb, c + begin, ldc, end - begin, accumulate);
  });
}

// c (+)= op(a) op(b) by column panels of op(b) (Note [Own products]).
template <class T>
void by_panels(const TypedKernels<T>& kernels, bool a_trans, bool b_trans, std::int64_t m, std::int64_t n,
               std::int64_t k, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
               bool accumulate) {
  const std::int64_t a_row = a_trans ? 1 : lda, a_col = a_trans ? lda : 1;
  constexpr std::int64_t step = 64;  // a multiple of the kernel's blocks of two vectors
  const std::int64_t columns = std::max(step, kPanelBytes / static_cast<std::int64_t>(k * sizeof(T)) / step * step);
  const std::int64_t panels = (n + columns - 1) / columns, rows = kernels.few_rows_max / 2;
  const std::int64_t grain = std::max<std::int64_t>(1, kThreadWork / std::max<std::int64_t>(1, m * k * columns));
  parallel_for(panels, grain, [&](std::int64_t begin, std::int64_t end) {
    thread_local std::vector<T> copy;  // kept by each thread for its next product
    for (std::int64_t p = begin; p < end; ++p) {
      const std::int64_t x0 = p * columns, width = std::min(columns, n - x0);
      // op(b)'s panel where it lies, or b^T's copied: copy[j, x] = b[x0 + x, j], by tiles of 8 x 8
      // so that both sides' accesses stay within a few cache lines.
      const T* panel = b + x0;
      std::int64_t panel_row = ldb;
      if (b_trans) {
        copy.resize(static_cast<std::size_t>(k * width));
        for (std::int64_t x = 0; x < width; x += 8)
          for (std::int64_t j = 0; j < k; j += 8)
            for (std::int64_t xx = x; xx < std::min(width, x + 8); ++xx)
              for (std::int64_t jj = j; jj < std::min(k, j + 8); ++jj)
                copy[static_cast<std::size_t>(jj * width + xx)] = b[(x0 + xx) * ldb + jj];
        panel = copy.data();
        panel_row = width;
      }
      for (std::int64_t i0 = 0; i0 < m; i0 += rows)
        kernels.few_rows_product(a + i0 * a_row, std::min(rows, m - i0), a_row, a_col, k, panel, panel_row,
                                 c + i0 * ldc + x0, ldc, width, accumulate);
    }
  });
}

}  // namespace

template <class T> GemmRoute gemm_route(bool b_trans, std::int64_t m, std::int64_t n, std::int64_t k) {
  const TypedKernels<T>& kernels = typed_kernels<T>(detail::kernels());
  if (n < kMinColumns || k < 1) return GemmRoute::blas;
  if (m <= kernels.few_rows_max && !b_trans) return GemmRoute::few_rows;
  const bool wide_vectors = kernels.few_rows_max >= 24;
  if (k <= kMaxPanelDepth && wide_vectors && blas_core_without_avx512()) return GemmRoute::panels;
  return GemmRoute::blas;
}

template <class T>
bool simd_gemm(bool a_trans, bool b_trans, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T beta) {
  const TypedKernels<T>& kernels = typed_kernels<T>(detail::kernels());
  switch (gemm_route<T>(b_trans, m, n, k)) {
    case GemmRoute::few_rows:
      few_rows(kernels, a_trans, m, n, k, a, lda, b, ldb, c, ldc, beta != T(0));
      return true;
    case GemmRoute::panels:
      by_panels(kernels, a_trans, b_trans, m, n, k, a, lda, b, ldb, c, ldc, beta != T(0));
      return true;
    case GemmRoute::blas:
      break;
  }
  return false;
}

template GemmRoute gemm_route<float>(bool, std::int64_t, std::int64_t, std::int64_t);
template GemmRoute gemm_route<double>(bool, std::int64_t, std::int64_t, std::int64_t);
template bool simd_gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                               const float*, std::int64_t, float*, std::int64_t, float);
template bool simd_gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                                const double*, std::int64_t, double*, std::int64_t, double);

}  // namespace theta::detail
