#pragma once
// Dense linear algebra on float64 tensors through LAPACK (shipped inside OpenBLAS).

#include "tensor/tensor.hpp"

namespace theta::theory {

struct SymmetricEigen {
  Tensor values{};   // [n], ascending
  Tensor vectors{};  // [n, n], column i is the unit eigenvector of values[i]
};

/// Eigendecomposition of a symmetric matrix a:[n,n] (float64; only the lower triangle is read).
SymmetricEigen eigh(const Tensor& a);

/// Solves a x = b for a:[n,n], b:[n] or [n,k] (LU with partial pivoting); throws on a singular a.
Tensor solve(const Tensor& a, const Tensor& b);

/// f(a) = V diag(f(lambda)) V^T for symmetric a, given its eigendecomposition.
Tensor apply_spectral(const SymmetricEigen& eig, const Tensor& f_of_values);

struct Svd {
  Tensor u{};  // [m, k], orthonormal columns (k = min(m, n))
  Tensor s{};  // [k], descending, non-negative
  Tensor v{};  // [n, k], orthonormal columns: a = u diag(s) v^T
};

/// Thin singular value decomposition of a:[m,n] (float64, LAPACK dgesvd) -> u:[m,k], s:[k], v:[n,k].
Svd svd(const Tensor& a);

/// The singular values of a:[m,n] alone, descending: svd(a).s without forming u and v (cheaper).
Tensor singular_values(const Tensor& a);

}  // namespace theta::theory
