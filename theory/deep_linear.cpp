#include "theory/deep_linear.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/engine.hpp"
#include "nn/init.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {

using detail::require_finite;

// Note [Deep linear time convention]
// With L = 1/(2n) sum_i |y_i - W x_i|^2 for the end-to-end map W = W_D ... W_1 and whitened inputs
// (x^T x / n = I), dL/dW = W - Sigma_yx, so the layer gradients are
//   G_l = dL/dW_l = (W_D ... W_{l+1})^T (W - Sigma_yx) (W_{l-1} ... W_1)^T.
// Take the aligned form W_l = R_l diag(a) R_{l-1}^T with orthonormal columns R_0 = V, R_D = U and
// R_l:[h_l, m]. Then W_D ... W_{l+1} = U diag(a^{D-l}) R_l^T, W_{l-1} ... W_1 = R_{l-1}
// diag(a^{l-1}) V^T and W - Sigma_yx = U diag(a^D - s) V^T, hence
//   G_l = R_l diag(a^{D-1} (a^D - s)) R_{l-1}^T,
// the same diagonal for every layer. One GD step W_l <- W_l - eta G_l keeps the form and maps
//   a <- a + eta a^{D-1} (s - a^D),
// which is Euler's method with step eta for da/dt = a^{D-1} (s - a^D). So t = eta k (Saxe's
// t / tau = eta k, tau = 1), and u = a^D obeys du/dt = D a^{D-1} da/dt = D u^{2 - 2/D} (s - u).
// For D = 2 this is the logistic equation du/dt = 2u (s - u), solved by
//   u(t) = s e^{2st} / (e^{2st} - 1 + s/u0).
// Another loss normalisation rescales time: the element-mean MSE (1/(n d_out)) sum |.|^2 has
// 2/d_out times our gradient, so with it t = 2 eta k / d_out.
// Because GD is Euler's method on this flow, a run lags or leads the curve by O(eta): the error in
// u/s grows like eta s^2 ln(s/u0) (about 1.4e-3 for s = 2, u0 = 1e-3, eta = 1e-3) and halves
// with eta. Strengths s <= 2 keep a run at eta = 1e-3 within 2e-3 of the curve.

// Note [Effective initial strength]
// From a small random init (depth 2) the modes are not aligned. Let a = W_1 v_a and
// b = W_2^T u_a (vectors in the hidden layer). While W = W_2 W_1 is negligible next to Sigma_yx,
// the flow is linear: da/dt = W_2^T (Sigma_yx - W) v_a = s_a b + O(|W|), db/dt = s_a a + O(|W|).
// So a + b grows like e^{st}, a - b decays like e^{-st}, and with p = (a0 + b0)/2,
// q = (a0 - b0)/2,
//   u_a = a . b = |p|^2 e^{2st} - |q|^2 e^{-2st}.
// After a time of order 1/s this is Saxe's early regime u0 e^{2st} with u0 = |a0 + b0|^2 / 4,
// and from then on a ~ b (balanced and aligned), so the mode follows Saxe's curve with that u0
// and reaches s/2 at t_half = (1/(2s)) ln(s/u0 - 1). The corrections are relative O(u0 / s) from
// the neglected O(|W|) terms, the O(eta s) Euler lag of Note [Deep linear time convention], and
// the coupling of modes whose hidden directions overlap (random directions in h dimensions
// overlap by O(1/sqrt(h)), so a wide hidden layer makes it small). Since t_half ~ ln(s/u0)/(2s),
// strong modes are learned first: stage-like learning.

// Note [Balancedness]
// For any loss of the end-to-end map, W_{l+1}^T G_{l+1} = G_l W_l^T (both equal
// (W_D ... W_{l+1})^T dL/dW (W_{l-1} ... W_1)^T). A GD step W <- W - eta G therefore changes
// B_l = W_{l+1}^T W_{l+1} - W_l W_l^T by
//   -eta (G_{l+1}^T W_{l+1} + W_{l+1}^T G_{l+1} - G_l W_l^T - W_l G_l^T) + eta^2 (G_{l+1}^T G_{l+1}
//   - G_l G_l^T) = eta^2 (G_{l+1}^T G_{l+1} - G_l G_l^T)
// exactly: the first-order terms cancel, so B_l is conserved by the gradient flow and drifts only
// by this eta^2 term under GD. train_deep_linear checks the law step by step in float64, where it
// holds to rounding. On the balanced aligned form both Gram terms equal
// R_l diag(a^{2D-2} (a^D - s)^2) R_l^T, so there B_l stays exactly 0.

namespace {

// integrate_depth_d refuses a horizon that would take longer than this (minutes of RK4 steps).
constexpr double kMaxRungeKuttaSteps = 1e9;

double max_abs(const Tensor& t) { return t.numel() == 0 ? 0.0 : theta::max(theta::abs(t)).item<double>(); }

void check_modes(const char* op, const Tensor& u, const Tensor& v) {
  THETA_CHECK(u.defined() && v.defined() && u.dim() == 2 && v.dim() == 2 && u.size(1) == v.size(1), ShapeError,
              op, ": expected mode bases u:[d_out, m], v:[d_in, m], got ",
              u.defined() ? shape_str(u.shape()) : "undefined", " and ",
              v.defined() ? shape_str(v.shape()) : "undefined");
}

void check_chain(const char* op, const std::vector<Tensor>& weights) {
  THETA_CHECK(!weights.empty(), std::invalid_argument, op, ": need at least one weight matrix");
  for (std::size_t l = 0; l < weights.size(); ++l) {
    THETA_CHECK(weights[l].defined() && weights[l].dim() == 2, ShapeError, op, ": weight ", l + 1,
                " must be a matrix, got ", weights[l].defined() ? shape_str(weights[l].shape()) : "undefined");
    THETA_CHECK(l == 0 || weights[l].size(1) == weights[l - 1].size(0), ShapeError, op, ": weight ", l + 1, " ",
                shape_str(weights[l].shape()), " does not follow weight ", l, " ", shape_str(weights[l - 1].shape()));
  }
}

}  // namespace

DeepLinearProblem make_saxe_problem(const SaxeProblemOptions& options, Rng& rng) {
  const std::int64_t m = static_cast<std::int64_t>(options.strengths.size());
  THETA_CHECK(options.input_dim > 0 && options.output_dim > 0 && options.samples >= options.input_dim,
              std::invalid_argument, "make_saxe_problem: need d_in, d_out > 0 and samples >= d_in, got n = ",
              options.samples, ", d_in = ", options.input_dim, ", d_out = ", options.output_dim);
  THETA_CHECK(m >= 1 && m <= std::min(options.input_dim, options.output_dim), std::invalid_argument,
              "make_saxe_problem: need 1 <= modes <= min(d_in, d_out), got ", m, " modes");
  for (double s : options.strengths)
    THETA_CHECK(s > 0 && std::isfinite(s), std::invalid_argument,
                "make_saxe_problem: strengths must be positive and finite, got ", s);
  DeepLinearProblem p;
  const double n = static_cast<double>(options.samples);
  p.x = nn::init::orthogonal({options.samples, options.input_dim}, rng) * std::sqrt(n);
  p.u = nn::init::orthogonal({options.output_dim, m}, rng);
  p.v = nn::init::orthogonal({options.input_dim, m}, rng);
  p.s = from_vector(options.strengths);
  const Tensor sigma = matmul(p.u * p.s.unsqueeze(0), p.v.t());
  p.y = matmul(p.x, sigma.t());
  return p;
}

Tensor input_output_correlation(const Tensor& x, const Tensor& y) {
  THETA_CHECK(x.defined() && y.defined() && x.dim() == 2 && y.dim() == 2 && x.size(0) == y.size(0) &&
                  x.size(0) > 0,
              ShapeError, "input_output_correlation: expected x:[n, d_in], y:[n, d_out], got ",
              x.defined() ? shape_str(x.shape()) : "undefined", " and ",
              y.defined() ? shape_str(y.shape()) : "undefined");
  return matmul(y.t(), x) / static_cast<double>(x.size(0));
}

DeepLinearProblem problem_from_data(const Tensor& x, const Tensor& y, std::int64_t modes) {
  const Tensor sigma = input_output_correlation(x, y);
  THETA_CHECK(modes >= 1 && modes <= std::min(sigma.size(0), sigma.size(1)), std::invalid_argument,
              "problem_from_data: modes must be in [1, min(d_in, d_out)], got ", modes);
  const Tensor covariance = matmul(x.t(), x) / static_cast<double>(x.size(0));
  const double whitening_error = max_abs(covariance - eye(x.size(1)));
  THETA_CHECK(whitening_error <= 1e-8, std::invalid_argument,
              "problem_from_data: inputs are not whitened, max |x^T x / n - I| = ", whitening_error);
  const Svd d = svd(sigma);
  return {x, y, d.u.slice(1, 0, modes).contiguous(), d.s.slice(0, 0, modes).contiguous(),
          d.v.slice(1, 0, modes).contiguous()};
}

double saxe_mode_strength(double s, double u0, double t) {
  require_finite(s, "saxe_mode_strength", "s");
  require_finite(u0, "saxe_mode_strength", "u0");
  require_finite(t, "saxe_mode_strength", "t");
  // s e^{2st} / (e^{2st} - 1 + s/u0) = s / (1 + (s/u0 - 1) e^{-2st}): no overflow for large t.
  return s / (1.0 + (s / u0 - 1.0) * std::exp(-2.0 * s * t));
}

double saxe_half_time(double s, double u0) {
  require_finite(s, "saxe_half_time", "s");
  require_finite(u0, "saxe_half_time", "u0");
  THETA_CHECK(s > 0 && u0 > 0 && u0 < s / 2, std::invalid_argument,
              "saxe_half_time: need 0 < u0 < s/2, got s = ", s, ", u0 = ", u0);
  return std::log(s / u0 - 1.0) / (2.0 * s);
}

double depth_d_rate(int depth, double s, double u) {
  require_finite(s, "depth_d_rate", "s");
  require_finite(u, "depth_d_rate", "u");
  const double d = static_cast<double>(depth);
  return d * std::pow(std::max(u, 0.0), 2.0 - 2.0 / d) * (s - u);
}

std::vector<double> integrate_depth_d(int depth, double s, double u0, const std::vector<double>& times, double dt) {
  require_finite(s, "integrate_depth_d", "s");
  require_finite(u0, "integrate_depth_d", "u0");
  require_finite(dt, "integrate_depth_d", "dt");
  for (double target : times) require_finite(target, "integrate_depth_d", "every time");
  THETA_CHECK(depth >= 1 && dt > 0 && u0 >= 0, std::invalid_argument,
              "integrate_depth_d: need depth >= 1, dt > 0, u0 >= 0, got depth = ", depth, ", dt = ", dt,
              ", u0 = ", u0);
  std::vector<double> out;
  out.reserve(times.size());
  double u = u0, t = 0.0;
  for (double target : times) {
    THETA_CHECK(target >= t, std::invalid_argument, "integrate_depth_d: times must be non-decreasing and >= 0");
    const double steps = std::ceil((target - t) / dt);
    THETA_CHECK(steps <= kMaxRungeKuttaSteps, std::invalid_argument, "integrate_depth_d: reaching t = ", target,
                " with dt = ", dt, " takes ", steps, " steps (at most ", kMaxRungeKuttaSteps, "): choose a larger dt");
    const double h = steps > 0 ? (target - t) / steps : 0.0;
    for (double i = 0; i < steps; ++i) {
      const double k1 = depth_d_rate(depth, s, u);
      const double k2 = depth_d_rate(depth, s, u + 0.5 * h * k1);
      const double k3 = depth_d_rate(depth, s, u + 0.5 * h * k2);
      const double k4 = depth_d_rate(depth, s, u + h * k3);
      u += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
    }
    t = target;
    out.push_back(u);
  }
  return out;
}

std::vector<Tensor> balanced_aligned_init(const std::vector<std::int64_t>& widths, const Tensor& u,
                                          const Tensor& v, const Tensor& u0, Rng& rng) {
  check_modes("balanced_aligned_init", u, v);
  const std::int64_t m = u.size(1);
  THETA_CHECK(widths.size() >= 2 && widths.front() == v.size(0) && widths.back() == u.size(0), ShapeError,
              "balanced_aligned_init: widths must run from d_in = ", v.size(0), " to d_out = ", u.size(0));
  THETA_CHECK(u0.defined() && u0.dim() == 1 && u0.size(0) == m && theta::min(u0).item<double>() > 0,
              std::invalid_argument, "balanced_aligned_init: u0 must be [", m, "] and positive");
  require_finite(u0, "balanced_aligned_init", "u0");
  const std::size_t depth = widths.size() - 1;
  const Tensor a = theta::pow(u0.to(DType::f64), 1.0 / static_cast<double>(depth)).unsqueeze(0);
  // Orthonormal bases R_0 = V, R_l:[h_l, m] random, R_D = U (Note [Deep linear time convention]).
  std::vector<Tensor> bases{v};
  for (std::size_t l = 1; l < depth; ++l) {
    THETA_CHECK(widths[l] >= m, std::invalid_argument, "balanced_aligned_init: hidden width ", widths[l],
                " is below the number of modes ", m);
    bases.push_back(nn::init::orthogonal({widths[l], m}, rng));
  }
  bases.push_back(u);
  std::vector<Tensor> weights;
  for (std::size_t l = 1; l <= depth; ++l) weights.push_back(matmul(bases[l] * a, bases[l - 1].t()));
  return weights;
}

std::vector<Tensor> random_init(const std::vector<std::int64_t>& widths, double sigma, Rng& rng) {
  require_finite(sigma, "random_init", "sigma");
  THETA_CHECK(widths.size() >= 2 && sigma >= 0, std::invalid_argument,
              "random_init: need at least two widths and sigma >= 0");
  std::vector<Tensor> weights;
  for (std::size_t l = 1; l < widths.size(); ++l) weights.push_back(rng.normal({widths[l], widths[l - 1]}, 0.0, sigma));
  return weights;
}

std::shared_ptr<nn::Sequential> make_deep_linear_net(const std::vector<Tensor>& weights) {
  check_chain("make_deep_linear_net", weights);
  std::vector<std::int64_t> widths{weights.front().size(1)};
  for (const Tensor& w : weights) widths.push_back(w.size(0));
  Rng unused(0);  // the layers' own init is overwritten below
  auto net = nn::mlp(widths, unused, {.activation = nn::ActivationKind::identity, .bias = false});
  std::size_t next = 0;
  for (std::size_t i = 0; i < net->size(); ++i)
    if (const auto* linear = dynamic_cast<const nn::Linear*>(&net->at(i)))
      linear->weight().value().copy_(weights[next++].to(DType::f64));
  return net;
}

std::vector<Tensor> linear_weights(const nn::Sequential& net) {
  std::vector<Tensor> weights;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (const auto* linear = dynamic_cast<const nn::Linear*>(&net.at(i))) weights.push_back(linear->weight().value());
  return weights;
}

Tensor end_to_end(const std::vector<Tensor>& weights) {
  check_chain("end_to_end", weights);
  Tensor product = weights.front();
  for (std::size_t l = 1; l < weights.size(); ++l) product = matmul(weights[l], product);
  return product.contiguous();
}

Tensor mode_strengths(const std::vector<Tensor>& weights, const Tensor& u, const Tensor& v) {
  check_modes("mode_strengths", u, v);
  const Tensor product = end_to_end(weights);
  THETA_CHECK(product.size(0) == u.size(0) && product.size(1) == v.size(0), ShapeError,
              "mode_strengths: network maps ", product.size(1), " -> ", product.size(0), " but modes are ",
              shape_str(v.shape()), " -> ", shape_str(u.shape()));
  return theta::sum(u * matmul(product, v), {0});
}

std::vector<Tensor> balancedness(const std::vector<Tensor>& weights) {
  check_chain("balancedness", weights);
  std::vector<Tensor> out;
  for (std::size_t l = 0; l + 1 < weights.size(); ++l)
    out.push_back(gram(weights[l + 1].t()) - gram(weights[l]));
  return out;
}

Tensor effective_initial_strength(const std::vector<Tensor>& weights, const Tensor& u, const Tensor& v) {
  check_modes("effective_initial_strength", u, v);
  check_chain("effective_initial_strength", weights);
  THETA_CHECK(weights.size() == 2, std::invalid_argument,
              "effective_initial_strength: defined for depth 2, got depth ", weights.size());
  const Tensor sum_ab = matmul(weights[0], v) + matmul(weights[1].t(), u);  // [h, m]
  return theta::sum(theta::square(sum_ab), {0}) * 0.25;
}

nn::Var deep_linear_loss(const nn::Var& pred, const Tensor& y) {
  THETA_CHECK(pred.shape() == y.shape() && y.dim() == 2 && y.size(0) > 0, ShapeError,
              "deep_linear_loss: prediction ", shape_str(pred.shape()), " and target ", shape_str(y.shape()),
              " must both be [n, d_out]");
  const nn::Var residual = pred - nn::Var(y);
  return autograd::sum(autograd::square(residual)) * (0.5 / static_cast<double>(y.size(0)));
}

GdTrace train_deep_linear(nn::Sequential& net, const DeepLinearProblem& problem, const GdOptions& options) {
  require_finite(options.eta, "train_deep_linear", "eta");
  THETA_CHECK(options.eta > 0 && options.steps >= 0 && options.record_every >= 1, std::invalid_argument,
              "train_deep_linear: need eta > 0, steps >= 0, record_every >= 1");
  const auto named = net.named_parameters();
  const std::vector<Tensor> weights = linear_weights(net);
  THETA_CHECK(!weights.empty() && weights.size() == named.size(), std::invalid_argument,
              "train_deep_linear: the network must consist of bias-free Linear layers");
  nn::Sgd optimizer(named, {.lr = options.eta});
  const nn::Var x(problem.x);
  const double eta2 = options.eta * options.eta;

  GdTrace trace;
  std::vector<Tensor> rows;
  std::vector<Tensor> b_start, b_current, law_sum;
  if (options.check_balancedness) {
    b_start = balancedness(weights);
    b_current = b_start;
    for (const Tensor& b : b_start) law_sum.push_back(zeros(b.shape()));
  }
  for (std::int64_t k = 0;; ++k) {
    const nn::Var loss = deep_linear_loss(net(x), problem.y);
    if (k % options.record_every == 0 || k == options.steps) {
      trace.times.push_back(options.eta * static_cast<double>(k));
      trace.losses.push_back(loss.item());
      rows.push_back(mode_strengths(weights, problem.u, problem.v));
      if (options.check_balancedness) {
        double drift = 0.0, predicted = 0.0, residual = 0.0;
        for (std::size_t l = 0; l < b_start.size(); ++l) {
          const Tensor change = b_current[l] - b_start[l];
          drift = std::max(drift, max_abs(change));
          predicted = std::max(predicted, max_abs(law_sum[l]));
          residual = std::max(residual, max_abs(change - law_sum[l]));
        }
        trace.drift.push_back(drift);
        trace.predicted_drift.push_back(predicted);
        trace.law_residual.push_back(residual);
      }
    }
    if (k == options.steps) break;
    optimizer.zero_grad();
    autograd::backward(loss);
    std::vector<Tensor> law;
    if (options.check_balancedness)
      for (std::size_t l = 0; l + 1 < named.size(); ++l) {
        const Tensor& g_in = named[l].second.grad();
        const Tensor& g_out = named[l + 1].second.grad();
        law.push_back((gram(g_out.t()) - gram(g_in)) * eta2);
      }
    optimizer.step();
    if (options.check_balancedness) {
      const std::vector<Tensor> b_next = balancedness(weights);
      for (std::size_t l = 0; l < law.size(); ++l) {
        trace.max_step_law_error = std::max(trace.max_step_law_error, max_abs(b_next[l] - b_current[l] - law[l]));
        law_sum[l] = law_sum[l] + law[l];
      }
      b_current = b_next;
    }
  }
  trace.strengths = stack(rows);
  for (std::size_t l = 0; l < b_start.size(); ++l)
    trace.max_total_law_error =
        std::max(trace.max_total_law_error, max_abs(b_current[l] - b_start[l] - law_sum[l]));
  return trace;
}

std::vector<double> crossing_times(const std::vector<double>& times, const Tensor& strengths, const Tensor& s,
                                   double fraction) {
  require_finite(fraction, "crossing_times", "fraction");
  THETA_CHECK(strengths.dim() == 2 && strengths.size(0) == static_cast<std::int64_t>(times.size()) &&
                  s.dim() == 1 && s.size(0) == strengths.size(1),
              ShapeError, "crossing_times: expected strengths [records, m] and s [m], got ",
              shape_str(strengths.shape()), " and ", shape_str(s.shape()));
  const std::int64_t records = strengths.size(0), m = strengths.size(1);
  const Tensor table = strengths.to(DType::f64).contiguous();
  const double* u = table.data<double>();
  std::vector<double> out(static_cast<std::size_t>(m), std::numeric_limits<double>::quiet_NaN());
  for (std::int64_t a = 0; a < m; ++a) {
    const double target = fraction * s.at({a});
    for (std::int64_t r = 0; r < records; ++r) {
      const double now = u[r * m + a];
      if (now < target) continue;
      if (r == 0) {
        out[static_cast<std::size_t>(a)] = times[0];
      } else {
        const double before = u[(r - 1) * m + a];
        const double w = (target - before) / (now - before);
        out[static_cast<std::size_t>(a)] = times[r - 1] + w * (times[r] - times[r - 1]);
      }
      break;
    }
  }
  return out;
}

}  // namespace theta::theory
