#pragma once
// Internal: the products theta computes with its own SIMD kernel rather than OpenBLAS, where
// measurement showed OpenBLAS slower (Note [Own products] in simd_gemm.cpp).

#include <cstdint>

namespace theta::detail {

/// Which kernel simd_gemm uses for a product of this shape (Note [Own products]).
enum class GemmRoute { blas, few_rows, panels };
template <class T> GemmRoute gemm_route(bool b_trans, std::int64_t m, std::int64_t n, std::int64_t k);

/// c = op(a) op(b) (beta 0) or c += op(a) op(b) (beta 1) for row-major c [m, n] with leading
/// dimension ldc, where op(a) is a [m, k] (row-major, leading dimension lda) or, with a_trans, a
/// stored as [k, m]; likewise op(b) [k, n]. Returns false, having done nothing, when the shape is
/// not one theta's kernel takes faster than OpenBLAS.
template <class T>
bool simd_gemm(bool a_trans, bool b_trans, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
               std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, T beta);

}  // namespace theta::detail
