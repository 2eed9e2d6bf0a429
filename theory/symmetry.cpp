#include "theory/symmetry.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"

namespace theta::theory {

// Note [Exact discrete laws]
// torch.optim.SGD with weight decay lambda, momentum beta and dampening tau runs
//   d_k = g_k + lambda theta_k,  b_k = beta b_{k-1} + c_k d_k,  theta_{k+1} = theta_k - eta_k b_k,
// with c_k = 1 - tau, except c_k = 1 when the buffer is new (b_k = d_k), and without momentum
// b_k = d_k. The symmetries give, for the loss gradient g alone (not g + lambda theta):
// - translation: <v, g> = 0 for v = "1 on every class of input unit j" (softmax is invariant to
//   adding a constant to all logits). The linear Q = <v, theta> and B = <v, b> then obey
//     B_k = beta B_{k-1} + c_k lambda Q_k,  Q_{k+1} = Q_k - eta_k B_k,
//   i.e. Q_{k+1} = (1 - eta lambda) Q_k without momentum and
//   Q_{k+1} = (1 + beta - eta lambda) Q_k - beta Q_{k-1} with constant eta and tau = 0.
// - scale, rescale, balancedness: Q = sum_p s_p X_p X_p^T, where X_p are parameter slices whose
//   rows are units (scale: [W[c, :], b_c], sign +; rescale and balancedness: W_out^T with sign +,
//   [W_in, b_in] with sign -) and s_p = +-1. The symmetry makes sum_p s_p X_p G_p^T antisymmetric
//   (its diagonal is <g, theta> = 0 for scale and rescale; for balancedness
//   W_out^T G_out = G_in W_in^T holds for linear layers, and for Conv2d layers with their
//   channel slices as rows: Note [Convolution units] in symmetry_tracker.cpp), so its symmetric
//   part vanishes. With Z_k = sym(sum_p s_p X_p B_{p,k-1}^T) (Z_0 from the buffer before the first step, 0 if none),
//   E_k = sum_p s_p B_{p,k} B_{p,k}^T and W_k = beta Z_k + c_k lambda Q_k, expanding
//   theta_{k+1} = theta_k - eta b_k gives
//     Q_{k+1} = Q_k - 2 eta W_k + eta^2 E_k,   Z_{k+1} = W_k - eta E_k.
//   Without momentum this is Q_{k+1} = (1 - eta lambda)^2 Q_k + eta^2 sum_p s_p G_p G_p^T.
//   Scale and rescale keep only the diagonal (one number per unit).
// These are identities of the arithmetic, true for any minibatch sequence and any learning-rate
// schedule. The predictions are propagated from Q_0 and driven only by the measured |g_k|^2
// (plain SGD) or |b_k|^2 (momentum), so they match the measured Q to rounding.

// Note [Continuous predictions]
// Plain SGD: Kunin's modified gradient flow (the flow whose Euler steps match SGD to O(eta^2) per
// step) gives dQ/dt = -lambda Q for translation and dQ/dt = -2 lambda Q + eta sum_p s_p |G_p|^2
// for the quadratic quantities, t = eta k. We integrate them step by step with the forcing held
// at its measured value during the step: Q(t + eta) = e^{-r eta} Q(t) + gain F (decay_step), a
// discounted recursion equal to Q(t) = e^{-2 lambda t} Q(0) + eta int_0^t e^{-2 lambda (t - s)}
// |g(s)|^2 ds with a piecewise-constant |g|^2. Accumulating e^{+2 lambda s} |g|^2 and multiplying
// by e^{-2 lambda t} at the end would be the same formula, but e^{+2 lambda t} overflows a double
// once 2 lambda t > 709.
// Momentum: expanding theta_{k+1} and theta_{k-1} about t = eta k to second order turns
// theta_{k+1} - theta_k = beta (theta_k - theta_{k-1}) - eta (1 - tau) (g + lambda theta) into
//   m theta'' + (1 - beta) theta' = -(1 - tau) (g + lambda theta),  m = eta (1 + beta) / 2,
// a damped oscillator. Its slow mode is gradient flow with the effective learning rate
// eta (1 - tau) / (1 - beta); the fast mode decays at rate (1 - beta) / m, within about
// 2 / (1 - beta) steps. We keep the full oscillator rather than only the slow mode because it
// describes the start-up transient (the buffer starts at zero, so early steps are shorter than
// the effective learning rate says) and because for translation it reproduces Kunin's closed form
// Q(t) = e^{-gamma t} (cosh(delta t) + gamma / delta sinh(delta t)) Q(0), gamma = (1 - beta) / (2m),
// delta^2 = gamma^2 - (1 - tau) lambda / m. Translation: m Q'' + (1 - beta) Q' + (1 - tau) lambda Q = 0.
// Quadratic quantities: with <theta, g> = 0, y = Q obeys
//   m y'' + (1 - beta) y' + 2 (1 - tau) lambda y = 2 m sum_p s_p |theta_p'|^2,
// and the velocity over step k is theta' = -b_k (theta_{k+1} - theta_k = -eta b_k), so the forcing
// is eta (1 + beta) E_k from the measured buffers. Initial velocity: Q'(0) = -B_{-1}, y'(0) =
// -2 Z_0 (zero for a fresh optimizer). At a fixed point (lambda = 0) the forced oscillator grows
// y by eta^2 (1 + beta) / (1 - beta) |b|^2 per step, as the exact law does; away from it the
// modelling error is O(eta), which history().continuous reports honestly. Each step uses the exact
// propagator oscillator_step(), itself a discounted recursion: its entries decay, nothing grows.

// Note [Relative error]
// Q is a signed sum (translation, rescale, balancedness) and may be near 0 while its terms are
// not, so errors are relative to the size of the terms, the scale at which rounding happens:
// sum_c |W[c, j]| (translation), |theta_c|^2 (scale), |W_out[:, i]|^2 + |W_in[i, :]|^2 + b_i^2
// (rescale), and sum_p |row_a X_p| |row_b X_p| for balancedness entry (a, b) (the Cauchy-Schwarz
// bound of its terms). For scale, and wherever Q is not much smaller than its terms, this is the
// ordinary relative error up to a small factor.

namespace {
constexpr double kTiny = 1e-300;  // keeps 0 / 0 at 0 in relative errors
}  // namespace

Tensor translation_quantity(const Tensor& weight) {
  THETA_CHECK(weight.dim() == 2, ShapeError, "translation_quantity: weight must be [C, J], got ",
              shape_str(weight.shape()));
  return theta::sum(weight, {0});
}

namespace {
// A weight's units as rows, the rest flattened (Note [Convolution units] in symmetry_tracker.cpp):
// [U, a, ...] -> [U, a ...] along axis 0, [a, U, b, ...] -> [U, a b ...] along axis 1. 2-D
// weights are returned as they are (axis 0) or transposed (axis 1).
Tensor unit_rows(const Tensor& weight, std::int64_t axis) {
  if (weight.dim() == 2) return axis == 0 ? weight : weight.t();
  const std::int64_t units = weight.size(axis);
  std::int64_t rest = 1;
  for (std::int64_t a = 0; a < weight.dim(); ++a)
    if (a != axis) rest *= weight.size(a);
  return (axis == 0 ? weight : weight.transpose(0, axis)).reshape_copy({units, rest});
}
}  // namespace

Tensor scale_quantity(const Tensor& weight, const Tensor& bias) {
  THETA_CHECK(weight.dim() >= 2, ShapeError, "scale_quantity: weight must be [C, I] or [C, C_in, k, k], got ",
              shape_str(weight.shape()));
  Tensor q = theta::sum(theta::square(unit_rows(weight, 0)), {1});
  if (!bias.defined()) return q;
  THETA_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), ShapeError, "scale_quantity: bias ",
              shape_str(bias.shape()), " does not match weight ", shape_str(weight.shape()));
  return theta::add(q, theta::square(bias));
}

Tensor rescale_quantity(const Tensor& in_weight, const Tensor& in_bias, const Tensor& out_weight) {
  THETA_CHECK(in_weight.dim() >= 2 && out_weight.dim() >= 2 && out_weight.size(1) == in_weight.size(0), ShapeError,
              "rescale_quantity: need in_weight [H, I] or [H, C, k, k] and out_weight [O, H] or [O, H, k, k], got ",
              shape_str(in_weight.shape()), " and ", shape_str(out_weight.shape()));
  const Tensor out_sq = out_weight.dim() == 2 ? theta::sum(theta::square(out_weight), {0})
                                              : theta::sum(theta::square(unit_rows(out_weight, 1)), {1});
  return theta::sub(out_sq, scale_quantity(in_weight, in_bias));
}

Tensor balancedness(const Tensor& in_weight, const Tensor& out_weight, const Tensor& in_bias) {
  THETA_CHECK(in_weight.dim() >= 2 && out_weight.dim() >= 2 && out_weight.size(1) == in_weight.size(0), ShapeError,
              "balancedness: need in_weight [H, I] or [H, C, k, k] and out_weight [O, H] or [O, H, k, k], got ",
              shape_str(in_weight.shape()), " and ", shape_str(out_weight.shape()));
  const Tensor in = unit_rows(in_weight, 0), out = unit_rows(out_weight, 1);
  Tensor d = theta::sub(theta::matmul(out, out.t()), theta::matmul(in, in.t()));
  if (!in_bias.defined()) return d;
  THETA_CHECK(in_bias.dim() == 1 && in_bias.size(0) == in_weight.size(0), ShapeError, "balancedness: in_bias ",
              shape_str(in_bias.shape()), " does not match in_weight ", shape_str(in_weight.shape()));
  return theta::sub(d, theta::outer(in_bias, in_bias));
}

DecayStep decay_step(double rate, double h) {
  detail::require_finite(rate, "decay_step", "rate");
  detail::require_finite(h, "decay_step", "h");
  THETA_CHECK(rate >= 0 && h >= 0, std::invalid_argument, "decay_step: need rate >= 0 and h >= 0, got rate ",
              rate, ", h ", h);
  DecayStep s;
  s.decay = std::exp(-rate * h);
  s.gain = rate > 0 ? -std::expm1(-rate * h) / rate : h;
  return s;
}

OscillatorStep oscillator_step(double mass, double damping, double stiffness, double h) {
  THETA_CHECK(mass > 0 && damping >= 0 && stiffness >= 0 && h >= 0 && std::isfinite(mass * damping * stiffness * h),
              std::invalid_argument, "oscillator_step: need mass > 0, damping, stiffness, h >= 0 and finite, got ",
              mass, ", ", damping, ", ", stiffness, ", ", h);
  // Note [Oscillator propagator]
  // With s = (u, v), s' = A s + (0, f / m), A = [[0, 1], [-k/m, -c/m]], so over one step
  // s(t + h) = e^{A h} s(t) + P (0, f / m) with P = int_0^h e^{A s} ds. Both come from Taylor
  // series at tau = h / 2^j with |A tau| <= 1/2 (20 terms reach rounding), then j doublings:
  // e^{2 A tau} = (e^{A tau})^2 and P(2 tau) = (I + e^{A tau}) P(tau).
  using Mat = std::array<std::array<double, 2>, 2>;
  const Mat a{{{0.0, 1.0}, {-stiffness / mass, -damping / mass}}};
  auto mul = [](const Mat& x, const Mat& y) {
    Mat z{};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) z[i][j] = x[i][0] * y[0][j] + x[i][1] * y[1][j];
    return z;
  };
  const double norm = std::max(std::abs(a[0][0]) + std::abs(a[1][0]), std::abs(a[0][1]) + std::abs(a[1][1]));
  int doublings = 0;
  double tau = h;
  while (norm * tau > 0.5) {
    tau *= 0.5;
    ++doublings;
  }
  Mat e{{{1.0, 0.0}, {0.0, 1.0}}};
  Mat p{{{tau, 0.0}, {0.0, tau}}};
  Mat term = e;  // (A tau)^n / n!
  for (int n = 1; n <= 20; ++n) {
    Mat at{};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) at[i][j] = a[i][j] * tau / n;
    term = mul(term, at);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        e[i][j] += term[i][j];
        p[i][j] += term[i][j] * tau / (n + 1);
      }
  }
  for (int d = 0; d < doublings; ++d) {
    Mat i_plus_e = e;
    i_plus_e[0][0] += 1.0;
    i_plus_e[1][1] += 1.0;
    p = mul(i_plus_e, p);
    e = mul(e, e);
  }
  OscillatorStep out;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) out.transition[i][j] = e[i][j];
    out.response[i] = p[i][1] / mass;
  }
  return out;
}

const char* symmetry_name(Symmetry symmetry) {
  switch (symmetry) {
    case Symmetry::translation: return "translation";
    case Symmetry::scale: return "scale";
    case Symmetry::rescale: return "rescale";
    case Symmetry::balancedness: return "balancedness";
  }
  return "unknown";
}

Tensor relative_error_per_step(const Tensor& measured, const Tensor& predicted, const Tensor& magnitude) {
  THETA_CHECK(measured.shape() == predicted.shape() && measured.shape() == magnitude.shape() && measured.dim() >= 1,
              ShapeError, "relative_error_per_step: need equal shapes [K + 1, ...], got ", shape_str(measured.shape()),
              ", ", shape_str(predicted.shape()), ", ", shape_str(magnitude.shape()));
  const Tensor err = theta::div(theta::abs(theta::sub(measured, predicted)),
                                theta::clamp(magnitude, kTiny, std::numeric_limits<double>::infinity()));
  if (err.dim() == 1) return err;
  std::vector<std::int64_t> axes;
  for (std::int64_t a = 1; a < err.dim(); ++a) axes.push_back(a);
  return theta::max(err, axes);
}

double max_relative_error(const Tensor& measured, const Tensor& predicted, const Tensor& magnitude) {
  THETA_CHECK(measured.shape() == predicted.shape() && measured.shape() == magnitude.shape(), ShapeError,
              "max_relative_error: shapes differ: ", shape_str(measured.shape()), ", ", shape_str(predicted.shape()),
              ", ", shape_str(magnitude.shape()));
  if (measured.numel() == 0) return 0.0;
  const Tensor err = theta::div(theta::abs(theta::sub(measured, predicted)),
                                theta::clamp(magnitude, kTiny, std::numeric_limits<double>::infinity()));
  return theta::max(err).item<double>();
}

}  // namespace theta::theory
