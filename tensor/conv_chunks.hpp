#pragma once
// Internal to theta_tensor: the row-major gemm and the split of a batch into sample chunks shared
// by conv2d's routes (conv.cpp: im2col, conv_winograd.cpp: Winograd's F(2x2, 3x3)).

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "tensor/blas_runtime.hpp"
#include "tensor/parallel.hpp"

namespace theta::detail {

/// c:[m, n] = op(a) op(b) + beta c, all row-major.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const auto i = [](std::int64_t v) { return static_cast<blasint>(v); };
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta, c, i(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

/// How many chunks n samples are split into (Note [Convolution as gemm]): one per thread, one in
/// all inside another parallel region.
inline std::int64_t chunk_count(std::int64_t n) {
  if (n <= 1 || in_parallel_region()) return 1;
  return std::min<std::int64_t>(n, get_num_threads());
}

/// Runs body(chunk, begin, end) over the samples [0, n) split into `chunks` contiguous ranges, in
/// parallel when there is more than one (OpenBLAS single-threaded meanwhile).
template <class Body>
void for_each_chunk(std::int64_t n, std::int64_t chunks, Body&& body) {
  const std::int64_t per = chunks > 0 ? (n + chunks - 1) / chunks : 0;
  const auto run = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) body(c, c * per, std::min(n, (c + 1) * per));
  };
  parallel_for_blas(chunks, 1, run);
}

}  // namespace theta::detail
