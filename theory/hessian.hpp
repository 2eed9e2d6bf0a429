#pragma once
// The loss Hessian without forming it: Hessian-vector products on flat parameter vectors, Lanczos
// with full reorthogonalisation for extreme eigenpairs, Hutchinson's trace estimator and
// stochastic Lanczos quadrature (SLQ) for the spectral density (Ghorbani, Krishnan and Xiao 2019;
// Ubaru, Chen and Saad 2017). Every vector here is a float64 tensor [P]; nothing prints.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "autograd/transforms.hpp"
#include "nn/module.hpp"
#include "nn/train.hpp"

namespace theta::theory {

// ---- flat parameter vectors -----------------------------------------------------------------

/// Concatenates the elements of every tensor, in order, into one float64 vector:
/// {t0:[s0...], t1:[s1...], ...} -> [P] with P = sum of numel.
Tensor flatten_tensors(const std::vector<Tensor>& tensors);

/// The inverse of flatten_tensors: flat:[P] -> tensors with the shapes and dtypes of `like`
/// (fresh copies; P must equal the total numel of `like`).
std::vector<Tensor> unflatten_like(const Tensor& flat, const std::vector<Tensor>& like);

/// The values of a module's parameters in registration order (shared with the module, no copy).
std::vector<Tensor> parameter_values(const nn::Module& module);

/// loss(model(x), y) as a function of parameter values, for the Hessian transforms: the model's
/// own forward runs with its parameters replaced by the argument (one Var per parameter, in
/// named_parameters() order; nn::functional_call), so any Module works, BatchNorm in training
/// mode included (its loss is a function of the whole batch). Buffers written by the forward pass
/// (running statistics) are restored after each call, so evaluating the loss has no side effect.
/// x:[n, in], y as `loss` expects -> a function returning a one-element Var.
autograd::ScalarFunction module_loss(std::shared_ptr<nn::Module> model, const Tensor& x, const Tensor& y,
                                     nn::LossFn loss);

// ---- linear operators -----------------------------------------------------------------------

/// A symmetric linear map on float64 vectors: apply(v:[size]) -> [size].
struct LinearOperator {
  std::int64_t size = 0;
  std::function<Tensor(const Tensor&)> apply{};
};

/// The Hessian of `loss` at `params` as an operator on flat vectors, v:[P] -> H v:[P] (float64
/// whatever the parameters' dtype). The gradient graph is built once, here; each apply() is one
/// backward pass through it (autograd::HessianVectorOperator).
LinearOperator hessian_operator(const autograd::ScalarFunction& loss, const std::vector<Tensor>& params);

/// A dense symmetric matrix as an operator: a:[n, n] -> (v:[n] -> a v:[n]). Throws unless a is
/// finite and symmetric to 1e-12 relative.
LinearOperator matrix_operator(const Tensor& a);

// ---- Lanczos --------------------------------------------------------------------------------

/// Which end of the spectrum lanczos_top_k returns.
enum class Which {
  largest,    // the k largest eigenvalues, descending
  smallest,   // the k smallest, ascending
  magnitude,  // the k of largest |lambda|, by descending |lambda|
  both_ends,  // 2k values: the k largest (descending), then the k smallest (ascending)
};

struct LanczosOptions {
  /// Lanczos steps m (operator applications); 0 picks min(P, max(2 r + 20, 40)) for r requested
  /// eigenpairs (r = 2k for both_ends). Values above P are clamped to P.
  std::int64_t iterations = 0;
  /// Seed of the random (Gaussian) starting vector and of restarts after breakdown.
  std::uint64_t seed = 0;
  Which which = Which::largest;
  /// Compute residuals |H x - lambda x| with one extra operator application per eigenpair;
  /// otherwise report Lanczos' own a posteriori bound |beta_m y_m| (equal in exact arithmetic).
  bool explicit_residuals = true;
};

struct EigenResult {
  Tensor values{};              // [r] Ritz values in the order of LanczosOptions::which
  Tensor vectors{};             // [P, r], column i the unit Ritz vector of values[i]
  Tensor residuals{};           // [r], |H x_i - values[i] x_i|
  Tensor ritz_values{};         // [m], every Ritz value of the run, ascending
  std::int64_t iterations = 0;  // Lanczos steps m taken (not counting residual checks)
};

/// Extreme eigenpairs of a symmetric operator by m Lanczos steps with full reorthogonalisation
/// (Note [Full reorthogonalisation] in lanczos.cpp): the Ritz values of the tridiagonal T [m, m]
/// and the Ritz vectors V y. With m = P the whole spectrum is exact to rounding, multiplicities
/// included (Note [Lanczos breakdown]). op of size P, k >= 1 -> values [r], vectors [P, r].
/// Throws std::invalid_argument for an operator found not symmetric (checked at every step at
/// the cost of one dot product: Note [Symmetry check]) or returning NaN or Inf.
EigenResult lanczos_top_k(const LinearOperator& op, std::int64_t k, const LanczosOptions& options = {});

// ---- stochastic estimators ------------------------------------------------------------------

struct TraceEstimate {
  double mean = 0.0;       // the estimate of tr(H)
  double std_error = 0.0;  // sample standard deviation / sqrt(probes); NaN for one probe
  std::int64_t probes = 0;
};

/// Hutchinson's estimator tr(H) ~ mean of z^T H z over Rademacher probes z:[P] drawn from
/// Rng(seed). Its variance per probe is 2 sum_{i != j} H_ij^2. probes >= 1.
TraceEstimate hutchinson_trace(const LinearOperator& op, std::int64_t probes, std::uint64_t seed = 0);

struct SlqOptions {
  std::int64_t probes = 10;
  /// Lanczos steps per probe (clamped to P; a probe stops early when its Krylov space closes).
  std::int64_t steps = 80;
  std::uint64_t seed = 0;
  /// Width of the Gaussian placed on each node; <= 0 picks 1% of the spread of all nodes.
  double sigma = 0.0;
  /// Evaluation points of the density [G]; undefined picks grid_points points spanning the nodes
  /// with a margin of 5 sigma on either side.
  Tensor grid{};
  std::int64_t grid_points = 1000;
};

struct SpectralDensity {
  Tensor grid{};                  // [G]
  Tensor density{};               // [G], integrates to ~1 over a grid that covers the nodes
  double sigma = 0.0;             // the Gaussian width used
  std::vector<Tensor> nodes{};    // per probe: [m_l] eigenvalues of its tridiagonal T
  std::vector<Tensor> weights{};  // per probe: [m_l] squared first components of T's eigenvectors
};

/// Stochastic Lanczos quadrature: per probe, Lanczos from a normalised Rademacher vector gives
/// the Gauss quadrature (nodes, weights) of that vector's spectral measure; the density is the
/// average over probes of sum_i w_i N(t; node_i, sigma^2) on the grid. op of size P.
SpectralDensity slq_density(const LinearOperator& op, const SlqOptions& options = {});

/// The Gaussian-smoothed density of quadrature rules, averaged over rules:
/// nodes, weights: one [m_l] pair per rule; grid:[G] -> [G].
Tensor smoothed_density(const std::vector<Tensor>& nodes, const std::vector<Tensor>& weights, const Tensor& grid,
                        double sigma);

/// The mean eigenvalue tr(H) / P implied by SLQ quadrature rules: the average over rules of
/// sum_i w_i node_i (equals Hutchinson's estimate over the same probes divided by P).
double quadrature_mean(const SpectralDensity& density);

}  // namespace theta::theory
