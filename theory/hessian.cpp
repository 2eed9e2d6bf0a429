#include "theory/hessian.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <utility>

#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/checks.hpp"
#include "theory/lanczos.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {

namespace {

using detail::tridiagonal_eigen;
using detail::apply_checked;
using detail::check_operator;
using detail::LanczosRun;
using detail::run_lanczos;

double dot_value(const Tensor& a, const Tensor& b) { return dot(a, b).item<double>(); }
double norm_value(const Tensor& a) { return norm(a).item<double>(); }

// Ritz vectors basis^T y: basis:[m, P] (contiguous rows), y:[m, r] -> [P, r]. For a few vectors,
// one gemv per vector streams the basis at memory bandwidth; gemm would first pack all of it.
Tensor ritz_vectors(const Tensor& basis, const Tensor& y) {
  const std::int64_t m = basis.size(0), n = basis.size(1), r = y.size(1);
  if (r > 4) return matmul(basis.t(), y);
  const Tensor columns = Tensor::empty({r, n}, DType::f64);
  const Tensor y_columns = y.t().contiguous();  // [r, m]
  for (std::int64_t i = 0; i < r; ++i)
    cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<int>(m), static_cast<int>(n), 1.0, basis.data<double>(),
                static_cast<int>(n), y_columns.data<double>() + i * m, 1, 0.0, columns.data<double>() + i * n, 1);
  return columns.t().contiguous();
}

// Indices into ascending Ritz values `theta` of the r requested ones, in output order.
std::vector<std::int64_t> select_ritz(const std::vector<double>& theta, std::int64_t k, Which which) {
  const auto m = static_cast<std::int64_t>(theta.size());
  std::vector<std::int64_t> out;
  auto add_largest = [&] {
    for (std::int64_t i = 0; i < k; ++i) out.push_back(m - 1 - i);
  };
  auto add_smallest = [&] {
    for (std::int64_t i = 0; i < k; ++i) out.push_back(i);
  };
  switch (which) {
    case Which::largest: add_largest(); break;
    case Which::smallest: add_smallest(); break;
    case Which::both_ends:
      add_largest();
      add_smallest();
      break;
    case Which::magnitude: {
      std::vector<std::int64_t> order(static_cast<std::size_t>(m));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
        return std::abs(theta[static_cast<std::size_t>(a)]) > std::abs(theta[static_cast<std::size_t>(b)]);
      });
      out.assign(order.begin(), order.begin() + k);
      break;
    }
  }
  return out;
}

// flat:[P] cut into tensors shaped and typed like `like`: views of flat where the dtype matches
// and flat is contiguous, converted copies otherwise.
std::vector<Tensor> split_like(const Tensor& flat, const std::vector<Tensor>& like, const char* who) {
  std::int64_t total = 0;
  for (const auto& t : like) total += t.numel();
  THETA_CHECK(flat.defined() && flat.dim() == 1 && flat.size(0) == total, ShapeError, who, ": vector ",
              flat.defined() ? shape_str(flat.shape()) : std::string("undefined"), " does not match ", total,
              " elements in ", like.size(), " tensors");
  std::vector<Tensor> out;
  out.reserve(like.size());
  std::int64_t offset = 0;
  for (const auto& t : like) {
    out.push_back(flat.slice(0, offset, offset + t.numel()).to(t.dtype()).reshape_copy(t.shape()));
    offset += t.numel();
  }
  return out;
}

}  // namespace

// ---- flat parameter vectors -----------------------------------------------------------------

Tensor flatten_tensors(const std::vector<Tensor>& tensors) {
  if (tensors.empty()) return zeros({0}, DType::f64);
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    THETA_CHECK(tensors[i].defined() && is_floating(tensors[i].dtype()), DTypeError, "flatten_tensors: tensor ", i,
                " is not a defined floating tensor");
    parts.push_back(tensors[i].to(DType::f64).reshape_copy({-1}));
  }
  return concat(parts, 0);
}

std::vector<Tensor> unflatten_like(const Tensor& flat, const std::vector<Tensor>& like) {
  std::vector<Tensor> out = split_like(flat, like, "unflatten_like");
  for (auto& t : out) t = t.clone();
  return out;
}

std::vector<Tensor> parameter_values(const nn::Module& module) {
  std::vector<Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p.value());
  return out;
}

autograd::ScalarFunction module_loss(std::shared_ptr<nn::Module> model, const Tensor& x, const Tensor& y,
                                     nn::LossFn loss) {
  THETA_CHECK(model != nullptr, std::invalid_argument, "module_loss: null model");
  THETA_CHECK(static_cast<bool>(loss), std::invalid_argument, "module_loss: empty loss function");
  return [model = std::move(model), x, y, loss = std::move(loss)](const std::vector<autograd::Var>& params) {
    const nn::BufferSnapshot keep_buffers(*model);
    return loss(nn::functional_call(*model, params, autograd::Var(x), "module_loss"), y);
  };
}

// ---- linear operators -----------------------------------------------------------------------

LinearOperator hessian_operator(const autograd::ScalarFunction& loss, const std::vector<Tensor>& params) {
  auto hvp = std::make_shared<const autograd::HessianVectorOperator>(loss, params);
  std::vector<Tensor> like;
  like.reserve(params.size());
  for (const auto& p : params) like.push_back(Tensor::empty(p.shape(), p.dtype()));
  // The pieces of v may be views of it: apply() reads them as constants and never writes.
  return {hvp->size(), [hvp, like = std::move(like)](const Tensor& v) {
            return flatten_tensors(hvp->apply(split_like(v, like, "hessian_operator")));
          }};
}

LinearOperator matrix_operator(const Tensor& a) {
  THETA_CHECK(a.defined() && a.dim() == 2 && a.size(0) == a.size(1), ShapeError,
              "matrix_operator: expected a square matrix, got ", a.defined() ? shape_str(a.shape()) : "undefined");
  const Tensor m = a.to(DType::f64).contiguous();
  detail::require_finite(m, "matrix_operator", "matrix");
  const double asymmetry = max(abs(m - m.t())).item(), scale = max(abs(m)).item();
  THETA_CHECK(asymmetry <= 1e-12 * scale, std::invalid_argument, "matrix_operator: the matrix ",
              shape_str(a.shape()), " is not symmetric (max |a - a^T| = ", asymmetry, ", max |a| = ", scale, ")");
  const std::int64_t n = m.size(0);
  return {n, [m, n](const Tensor& v) {
            THETA_CHECK(v.defined() && v.dim() == 1 && v.size(0) == n, ShapeError, "matrix_operator: vector ",
                        v.defined() ? shape_str(v.shape()) : std::string("undefined"), " for a [", n, ", ", n,
                        "] matrix");
            return matmul(m, v.to(DType::f64));
          }};
}

// ---- Lanczos --------------------------------------------------------------------------------

EigenResult lanczos_top_k(const LinearOperator& op, std::int64_t k, const LanczosOptions& options) {
  check_operator(op, "lanczos_top_k");
  const std::int64_t n = op.size;
  THETA_CHECK(k >= 1, std::invalid_argument, "lanczos_top_k: k must be at least 1, got ", k);
  const std::int64_t r = options.which == Which::both_ends ? 2 * k : k;
  THETA_CHECK(r <= n, std::invalid_argument, "lanczos_top_k: ", r, " eigenpairs requested from an operator of size ",
              n);
  THETA_CHECK(options.iterations >= 0, std::invalid_argument, "lanczos_top_k: negative iterations ",
              options.iterations);
  const std::int64_t m =
      options.iterations > 0 ? std::min(options.iterations, n) : std::min(n, std::max<std::int64_t>(2 * r + 20, 40));
  THETA_CHECK(m >= r, std::invalid_argument, "lanczos_top_k: ", options.iterations, " iterations cannot give ", r,
              " eigenpairs");

  Rng rng(options.seed);
  Tensor start = rng.normal({n});
  start = start / norm_value(start);
  const LanczosRun run = run_lanczos(op, start, m, &rng, "lanczos_top_k");
  const std::int64_t steps = run.steps();
  THETA_CHECK(steps >= r, std::runtime_error, "lanczos_top_k: the Krylov space closed after ", steps,
              " steps, fewer than the ", r, " eigenpairs requested");

  const SymmetricEigen eig = tridiagonal_eigen(run);
  const std::vector<double> theta = to_vector(eig.values);
  const std::vector<std::int64_t> chosen = select_ritz(theta, k, options.which);
  const Tensor index = from_indices(chosen);

  EigenResult result;
  result.iterations = steps;
  result.ritz_values = eig.values;
  result.values = index_select(eig.values, 0, index);
  const Tensor y = index_select(eig.vectors, 1, index);                  // [m, r]
  result.vectors = ritz_vectors(run.basis.slice(0, 0, steps), y);
  std::vector<double> residuals;
  const double last_beta = run.beta.back();
  for (std::int64_t i = 0; i < r; ++i) {
    const double lambda = theta[static_cast<std::size_t>(chosen[static_cast<std::size_t>(i)])];
    if (options.explicit_residuals) {
      check_interrupt();
      const Tensor x = result.vectors.select(1, i).contiguous();
      residuals.push_back(norm_value(apply_checked(op, x, "lanczos_top_k") - x * lambda));
    } else {
      residuals.push_back(std::abs(last_beta * y.at({steps - 1, i})));
    }
  }
  result.residuals = from_vector(residuals);
  return result;
}

// ---- stochastic estimators ------------------------------------------------------------------

TraceEstimate hutchinson_trace(const LinearOperator& op, std::int64_t probes, std::uint64_t seed) {
  check_operator(op, "hutchinson_trace");
  THETA_CHECK(probes >= 1, std::invalid_argument, "hutchinson_trace: probes must be at least 1, got ", probes);
  Rng rng(seed);
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(probes));
  for (std::int64_t i = 0; i < probes; ++i) {
    check_interrupt();
    const Tensor z = rng.rademacher({op.size});
    samples.push_back(dot_value(z, apply_checked(op, z, "hutchinson_trace")));
  }
  const double count = static_cast<double>(probes);
  const double mean = std::accumulate(samples.begin(), samples.end(), 0.0) / count;
  TraceEstimate out{mean, std::numeric_limits<double>::quiet_NaN(), probes};
  if (probes > 1) {
    double squares = 0.0;
    for (double s : samples) squares += (s - mean) * (s - mean);
    out.std_error = std::sqrt(squares / (count - 1.0) / count);
  }
  return out;
}

SpectralDensity slq_density(const LinearOperator& op, const SlqOptions& options) {
  check_operator(op, "slq_density");
  THETA_CHECK(options.probes >= 1, std::invalid_argument, "slq_density: probes must be at least 1, got ",
              options.probes);
  THETA_CHECK(options.steps >= 1, std::invalid_argument, "slq_density: steps must be at least 1, got ",
              options.steps);
  detail::require_finite(options.sigma, "slq_density", "sigma");
  if (options.grid.defined()) detail::require_finite(options.grid, "slq_density", "grid");
  const std::int64_t n = op.size;
  const std::int64_t steps = std::min(options.steps, n);
  SpectralDensity out;
  Rng rng(options.seed);
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (std::int64_t probe = 0; probe < options.probes; ++probe) {
    check_interrupt();
    const Tensor start = rng.rademacher({n}) / std::sqrt(static_cast<double>(n));
    const LanczosRun run = run_lanczos(op, start, steps, nullptr, "slq_density");
    const SymmetricEigen eig = tridiagonal_eigen(run);
    out.nodes.push_back(eig.values);
    out.weights.push_back(square(eig.vectors.select(0, 0)));
    lo = std::min(lo, min(eig.values).item<double>());
    hi = std::max(hi, max(eig.values).item<double>());
  }
  double sigma = options.sigma;
  if (!(sigma > 0.0)) sigma = hi > lo ? 0.01 * (hi - lo) : 1e-3 * std::max(1.0, std::abs(hi));
  out.sigma = sigma;
  if (options.grid.defined()) {
    THETA_CHECK(options.grid.dim() == 1, ShapeError, "slq_density: grid must be 1-D, got ",
                shape_str(options.grid.shape()));
    out.grid = options.grid.to(DType::f64).contiguous();
  } else {
    THETA_CHECK(options.grid_points >= 2, std::invalid_argument, "slq_density: grid_points must be at least 2, got ",
                options.grid_points);
    out.grid = linspace(lo - 5.0 * sigma, hi + 5.0 * sigma, options.grid_points, DType::f64);
  }
  out.density = smoothed_density(out.nodes, out.weights, out.grid, sigma);
  return out;
}

Tensor smoothed_density(const std::vector<Tensor>& nodes, const std::vector<Tensor>& weights, const Tensor& grid,
                        double sigma) {
  THETA_CHECK(nodes.size() == weights.size() && !nodes.empty(), std::invalid_argument, "smoothed_density: ",
              nodes.size(), " node sets and ", weights.size(), " weight sets");
  THETA_CHECK(sigma > 0.0, std::invalid_argument, "smoothed_density: sigma must be positive, got ", sigma);
  detail::require_finite(sigma, "smoothed_density", "sigma");
  THETA_CHECK(grid.defined() && grid.dim() == 1, ShapeError, "smoothed_density: grid must be 1-D");
  detail::require_finite(grid, "smoothed_density", "grid");
  const std::vector<double> t = to_vector(grid);
  std::vector<double> density(t.size(), 0.0);
  const double norm_const = 1.0 / (sigma * std::sqrt(2.0 * std::numbers::pi) * static_cast<double>(nodes.size()));
  for (std::size_t l = 0; l < nodes.size(); ++l) {
    THETA_CHECK(nodes[l].numel() == weights[l].numel(), ShapeError, "smoothed_density: rule ", l, " has ",
                nodes[l].numel(), " nodes and ", weights[l].numel(), " weights");
    const std::vector<double> theta = to_vector(nodes[l]);
    const std::vector<double> w = to_vector(weights[l]);
    for (std::size_t i = 0; i < theta.size(); ++i)
      for (std::size_t g = 0; g < t.size(); ++g) {
        const double z = (t[g] - theta[i]) / sigma;
        density[g] += w[i] * norm_const * std::exp(-0.5 * z * z);
      }
  }
  return from_vector(density);
}

double quadrature_mean(const SpectralDensity& density) {
  THETA_CHECK(!density.nodes.empty() && density.nodes.size() == density.weights.size(), std::invalid_argument,
              "quadrature_mean: no quadrature rules");
  double total = 0.0;
  for (std::size_t l = 0; l < density.nodes.size(); ++l)
    total += dot_value(density.nodes[l].to(DType::f64), density.weights[l].to(DType::f64));
  return total / static_cast<double>(density.nodes.size());
}

}  // namespace theta::theory
