#include "theory/lanczos.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "theory/checks.hpp"

namespace theta::theory::detail {

// Note [Full reorthogonalisation]
// In exact arithmetic the three-term recurrence beta_j q_{j+1} = H q_j - alpha_j q_j -
// beta_{j-1} q_{j-1} keeps the Lanczos vectors orthonormal. In floating point they lose
// orthogonality as soon as a Ritz value converges (Paige 1971), and T then grows spurious copies
// ("ghosts") of converged eigenvalues: the top-k of T are no longer the top-k of H, and SLQ
// quadrature weights are split between ghosts. We therefore orthogonalise every new vector
// against all previous ones with classical Gram-Schmidt as two gemv calls (c = Q w, w -= Q^T c),
// repeated once when the first pass removed more than 1 - 1/sqrt(2) of the norm (the DGKS
// criterion of Daniel, Gragg, Kaufman and Stewart 1976: "twice is enough"). It makes m = P
// reproduce the dense spectrum to rounding. The price: the basis holds m P doubles, and step j
// streams j + 1 of them twice, so the bookkeeping is memory-bound and grows like m^2 P. On the
// 784-512-512-10 MLP of bench/bench_hessian.cpp (P = 669,706, one HVP ~ 25 ms) step 20 already
// spends about as long reorthogonalising as applying H; runs of a few dozen steps are the
// sweet spot there, while on nets of a few thousand parameters m in the hundreds costs little.
//
// Note [Lanczos breakdown]
// When beta_j vanishes the Krylov space of the start vector is H-invariant: T's eigenvalues are
// then exact eigenvalues of H, but only one per distinct eigenvalue the start vector touches.
// For eigenpairs (lanczos_top_k) we restart with a fresh random vector orthogonalised against the
// basis and set beta_j = 0, so T becomes block diagonal and a run of m = P steps recovers every
// eigenvalue with its multiplicity. For quadrature (slq_density) we stop instead: the Gauss rule
// of the probe's spectral measure is exact at that point, and a restarted block would only add
// nodes of zero weight. "Vanishes" means beta_j <= 1e-10 times the largest |alpha| or beta seen,
// an estimate of |H|; dropping a coupling that small moves the Ritz values by at most as much.

namespace {

constexpr double kDgks = 0.7071067811865476;  // 1 / sqrt(2)
constexpr double kBreakdown = 1e-10;


// w:[n] minus its projection on the j orthonormal rows of q:[j, n], in place, with a second pass
// when the first removed most of w (Note [Full reorthogonalisation]); returns the new |w|.
// `c` is scratch space for j coefficients. Raw BLAS: level-2 gemv streams q once per product at
// memory bandwidth, and nothing is allocated per step.
double reorthogonalise(const double* q, std::int64_t j, std::int64_t n, double* w, double* c) {
  const int rows = static_cast<int>(j), cols = static_cast<int>(n);
  const double before = std::sqrt(cblas_ddot(cols, w, 1, w, 1));
  double after = before;
  for (int pass = 0; pass < 2; ++pass) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0, q, cols, w, 1, 0.0, c, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, rows, cols, -1.0, q, cols, c, 1, 1.0, w, 1);
    const double previous = after;
    after = std::sqrt(cblas_ddot(cols, w, 1, w, 1));
    if (after >= kDgks * previous) break;
  }
  return after;
}

// Note [Symmetry check]
// Lanczos assumes H = H^T; on a non-symmetric operator it returns numbers that are eigenvalues of
// nothing. The check is free: for symmetric H, <q_{j-1}, H q_j> = <H q_{j-1}, q_j> = beta_{j-1}
// (the coupling the previous step computed), up to rounding and to the removed components of size
// 1e-10 |H| at a restart (Note [Lanczos breakdown]). One dot product per step compares the two.
// The tolerance 1e-6 |H| admits operators evaluated in float32 (rounding near 1e-7 |H|) and
// catches any asymmetry of practical size; an operator that is symmetric only to 1e-5 is refused.
void check_symmetric_step(double coupling, double beta, double scale, std::int64_t step, const char* who) {
  THETA_CHECK(std::abs(coupling - beta) <= 1e-6 * scale, std::invalid_argument, who,
              ": the operator is not symmetric: at step ", step, ", <q_prev, H q> = ", coupling,
              " but <H q_prev, q> = ", beta, " (|H| ~ ", scale, ")");
}

}  // namespace

void check_operator(const LinearOperator& op, const char* who) {
  THETA_CHECK(op.size > 0, std::invalid_argument, who, ": operator size must be positive, got ", op.size);
  THETA_CHECK(static_cast<bool>(op.apply), std::invalid_argument, who, ": operator has no apply function");
}

// op.apply(v), checked to be a float64 vector of the operator's size.
Tensor apply_checked(const LinearOperator& op, const Tensor& v, const char* who) {
  const Tensor w = op.apply(v);
  THETA_CHECK(w.defined() && w.dim() == 1 && w.size(0) == op.size, ShapeError, who, ": operator of size ",
              op.size, " returned ", w.defined() ? shape_str(w.shape()) : std::string("an undefined tensor"));
  require_finite(w, who, "operator result");
  return w.to(DType::f64);
}

// Up to `steps` Lanczos steps from the unit vector `start`:[P]. On breakdown, restarts from
// restart_rng when given, else stops (Note [Lanczos breakdown]).
LanczosRun run_lanczos(const LinearOperator& op, const Tensor& start, std::int64_t steps, Rng* restart_rng,
                       const char* who) {
  const std::int64_t n = op.size;
  const int len = static_cast<int>(n);
  THETA_CHECK(n <= std::numeric_limits<int>::max(), std::invalid_argument, who, ": operator size ", n,
              " exceeds the BLAS index range");
  LanczosRun run;
  run.basis = Tensor::empty({steps, n}, DType::f64);
  run.basis.select(0, 0).copy_(start);
  double* q_all = run.basis.data<double>();
  const Tensor work = Tensor::empty({n}, DType::f64);
  double* w = work.data<double>();
  std::vector<double> coefficients(static_cast<std::size_t>(steps));
  double scale = 0.0;  // running estimate of |H|
  for (std::int64_t j = 0; j < steps; ++j) {
    check_interrupt();
    const double* q = q_all + j * n;
    work.copy_(apply_checked(op, run.basis.select(0, j), who));  // a copy: the operator's result stays intact
    if (j > 0) check_symmetric_step(cblas_ddot(len, q - n, 1, w, 1), run.beta.back(), scale, j, who);
    const double a = cblas_ddot(len, q, 1, w, 1);
    cblas_daxpy(len, -a, q, 1, w, 1);
    if (j > 0 && run.beta.back() != 0.0) cblas_daxpy(len, -run.beta.back(), q - n, 1, w, 1);
    const double b = reorthogonalise(q_all, j + 1, n, w, coefficients.data());
    run.alpha.push_back(a);
    scale = std::max({scale, std::abs(a), b});
    if (j + 1 == steps) {
      run.beta.push_back(b);
      break;
    }
    double* next = q_all + (j + 1) * n;
    if (b > kBreakdown * scale) {
      run.beta.push_back(b);
      cblas_dcopy(len, w, 1, next, 1);
      cblas_dscal(len, 1.0 / b, next, 1);
      continue;
    }
    if (restart_rng == nullptr) {
      run.beta.push_back(b);
      break;
    }
    // A random vector loses most of its norm to the basis only when j is close to P; the second
    // reorthogonalisation keeps the new direction orthogonal to working precision even then.
    work.copy_(restart_rng->normal({n}));
    reorthogonalise(q_all, j + 1, n, w, coefficients.data());
    const double fresh = reorthogonalise(q_all, j + 1, n, w, coefficients.data());
    if (!(fresh > 0.0)) {
      run.beta.push_back(b);
      break;
    }
    run.beta.push_back(0.0);
    cblas_dcopy(len, w, 1, next, 1);
    cblas_dscal(len, 1.0 / fresh, next, 1);
  }
  return run;
}

// The tridiagonal T [m, m] of a run, eigendecomposed.
SymmetricEigen tridiagonal_eigen(const LanczosRun& run) {
  const std::int64_t m = run.steps();
  Tensor t = zeros({m, m}, DType::f64);
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < m; ++i) {
    p[i * m + i] = run.alpha[static_cast<std::size_t>(i)];
    if (i + 1 < m) {
      p[i * m + i + 1] = run.beta[static_cast<std::size_t>(i)];
      p[(i + 1) * m + i] = run.beta[static_cast<std::size_t>(i)];
    }
  }
  return eigh(t);
}

}  // namespace theta::theory::detail
