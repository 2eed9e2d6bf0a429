#pragma once
// Internal: the Lanczos iteration shared by the eigensolver (hessian.cpp) and stochastic Lanczos
// quadrature (spectral density), with full reorthogonalisation (Note [Full reorthogonalisation]
// in lanczos.cpp).

#include <vector>

#include "tensor/rng.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"

namespace theta::theory::detail {

/// Throws unless `op` has a positive size and an apply function; `who` names the caller.
void check_operator(const LinearOperator& op, const char* who);

/// op.apply(v), checked to be a float64 vector of the operator's size.
Tensor apply_checked(const LinearOperator& op, const Tensor& v, const char* who);

struct LanczosRun {
  std::vector<double> alpha{};  // [m] diagonal of T
  std::vector<double> beta{};   // [m]: beta[j] couples q_j and q_{j+1}; beta[m-1] is the final residual
  Tensor basis{};               // [capacity, P], rows 0..m-1 are the Lanczos vectors
  std::int64_t steps() const { return static_cast<std::int64_t>(alpha.size()); }
};

/// Up to `steps` Lanczos steps from the unit vector `start`:[P]. On breakdown, restarts from
/// restart_rng when given, else stops (Note [Lanczos breakdown]).
LanczosRun run_lanczos(const LinearOperator& op, const Tensor& start, std::int64_t steps, Rng* restart_rng,
                       const char* who);

/// The tridiagonal T [m, m] of a run, eigendecomposed.
SymmetricEigen tridiagonal_eigen(const LanczosRun& run);

}  // namespace theta::theory::detail
