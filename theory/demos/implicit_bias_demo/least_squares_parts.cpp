// implicit_bias_demo, parts 1 and 2: least squares from zero and from w0, and early stopping
// against ridge.


#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/diagonal_net.hpp"
#include "theory/least_squares.hpp"
#include "theory/max_margin.hpp"

#include "theory/demos/implicit_bias_demo/parts.hpp"

using namespace theta;
using namespace theta::theory;
using theta::demos::fmt;

namespace theta::demos::implicit_bias {

// ---- 1. minimum norm ---------------------------------------------------------------------------

struct MinNormRun {
  double error = 0.0;       // |w_K - target| / |target|
  double max_null = 0.0;    // max_k |P_null w_k| / |w_k| (from zero)
  double null_drift = 0.0;  // max_k |P_null (w_k - w_0)| / |w_0| (from w0)
  std::int64_t steps = 0;
  std::vector<double> k{}, error_path{}, null_path{};
};

// Trains a bias-free Linear from w0 ([d]) on (x, y) by GD with eta = 1 / sigma_max until the
// slowest mode has contracted by 1e-10.
MinNormRun train_min_norm(const Tensor& x, const Tensor& y, const Tensor& w0, Rng& rng) {
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const double top = modes.sigma.at({0}), bottom = modes.sigma.at({modes.sigma.size(0) - 1});
  const nn::SgdOptions options{.lr = 1.0 / top};
  MinNormRun run;
  run.steps = static_cast<std::int64_t>(std::ceil(std::log(1e-10) / std::log1p(-bottom / top))) + 100;
  const Tensor target = min_norm_solution(x, y) + null_space_component(modes, w0);
  const Tensor null0 = null_space_component(modes, w0);
  const double w0_norm = norm2(w0);
  auto model = linear_model(w0.unsqueeze(0), rng);
  const nn::Var xv(x), yv(y.unsqueeze(1));
  const std::int64_t record_every = std::max<std::int64_t>(1, run.steps / 200);
  gradient_descent(
      *model, options, run.steps, [&] { return half_mse(*model, xv, yv); },
      [&](std::int64_t k, const nn::Var&) {
        const Tensor w = model->weight().value().reshape({x.size(1)});
        const double w_norm = norm2(w);
        const Tensor null_part = null_space_component(modes, w);
        const double null_ratio =
            w0_norm == 0 ? (w_norm > 0 ? norm2(null_part) / w_norm : 0.0) : norm2(null_part - null0) / w0_norm;
        if (w0_norm == 0)
          run.max_null = std::max(run.max_null, null_ratio);
        else
          run.null_drift = std::max(run.null_drift, null_ratio);
        if (k % record_every == 0 || k == run.steps) {
          run.k.push_back(static_cast<double>(k));
          run.error_path.push_back(norm2(w - target) / norm2(target));
          run.null_path.push_back(null_ratio);
        }
      });
  run.error = run.error_path.back();
  return run;
}

void min_norm_part(const DemoArgs& args, Results& results, Rng& rng) {
  const Tensor x = rng.normal({20, 100});
  const Tensor y = rng.normal({20});
  const MinNormRun zero = train_min_norm(x, y, zeros({100}), rng);
  const MinNormRun shifted = train_min_norm(x, y, rng.normal({100}), rng);
  // 50 random digits, standardised pixels, target +1 for even digits and -1 for odd ones. Their
  // condition number (1e4 to 5e4 by draw) costs GD 1e5 to 1e6 steps, so --quick leaves them out.
  MinNormRun digit;
  if (!args.quick) {
    const nn::Dataset digits = nn::load_digits();
    const Tensor pick = rng.permutation(digits.size()).slice(0, 0, 50);
    const Tensor pixels = index_select(digits.x, 0, pick);
    const Tensor dx = nn::Standardizer::fit(pixels).apply(pixels);
    std::vector<double> parity;
    for (double label : to_vector(index_select(digits.y, 0, pick).to(DType::f64)))
      parity.push_back(std::fmod(label, 2.0) == 0.0 ? 1.0 : -1.0);
    const Tensor dy = from_vector(parity);
    const LeastSquaresModes digit_modes = least_squares_modes(dx, dy);
    const double condition = digit_modes.sigma.at({0}) / digit_modes.sigma.at({digit_modes.sigma.size(0) - 1});
    demos::progress("digits 50 x 64: condition number " + fmt(condition) + ", GD to 1e-10 on the slowest mode");
    digit = train_min_norm(dx, dy, zeros({64}), rng);
  }
  const std::string digit_error =
      args.quick ? "digits left out in --quick"
                 : fmt(digit.error) + " (digits 50 x 64, " + std::to_string(digit.steps) + " steps)";
  const std::string digit_null = args.quick
                                     ? "digits left out in --quick"
                                     : fmt(digit.max_null) + " (digits, " + std::to_string(digit.steps) + " steps)";
  results.check({.id = "min_norm",
                 .claim = "GD from zero converges to the minimum-norm solution x^+ y",
                 .measured = "|w - x^+ y| / |x^+ y| = " + fmt(zero.error) + " (synthetic 20 x 100, " +
                             std::to_string(zero.steps) + " steps), " + digit_error,
                 .predicted = "0",
                 .tolerance = "<= 1e-8",
                 .pass = std::max(zero.error, digit.error) <= 1e-8,
                 .limit = 1e-8});
  // Each step rounds every weight to the nearest double, and when the updates vary slowly these
  // roundings add up coherently: after K steps the null-space part can reach K eps / 2 |w| with no
  // step of GD leaving the row space. The digits run takes ~1e5 steps, so its budget is that.
  const double digit_budget = static_cast<double>(digit.steps) * std::numeric_limits<double>::epsilon() / 2;
  results.check(
      {.id = "row_space",
       .claim = "from zero, every iterate stays in the row space of x (up to rounding)",
       .measured = "max_k |P_null w_k| / |w_k| = " + fmt(zero.max_null) + " (synthetic, " + std::to_string(zero.steps) +
                   " steps), " + digit_null,
       .predicted = "0",
       .tolerance = "<= 1e-13 (synthetic)" + (args.quick ? "" : "; <= K eps / 2 = " + fmt(digit_budget) + " (digits)"),
       .pass = zero.max_null <= 1e-13 && digit.max_null <= digit_budget,
       .limit = 1e-13});
  results.check({.id = "from_w0",
                 .claim = "from w0, GD converges to x^+ y + P_null w0 and never moves P_null w",
                 .measured = "|w - (x^+ y + P_null w0)| / |.| = " + fmt(shifted.error) +
                             ", max_k |P_null (w_k - w0)| / |w0| = " + fmt(shifted.null_drift),
                 .predicted = "0",
                 .tolerance = "<= 1e-8 and <= 1e-13",
                 .pass = shifted.error <= 1e-8 && shifted.null_drift <= 1e-13,
                 .limit = 1e-8});
  results.write_csv("min_norm_synthetic.csv", {"k", "rel_error", "null_ratio"},
                    {zero.k, zero.error_path, zero.null_path});
  results.write_csv("min_norm_w0.csv", {"k", "rel_error", "null_drift"},
                    {shifted.k, shifted.error_path, shifted.null_path});
  if (!args.quick)
    results.write_csv("min_norm_digits.csv", {"k", "rel_error", "null_ratio"},
                      {digit.k, digit.error_path, digit.null_path});
}

// ---- 2. early stopping and ridge ---------------------------------------------------------------

// GD on the identity targets: after k steps the weight W_k:[n, d] gives GD's linear estimator
// w_k = W_k^T y for every target vector y at once (the outputs train independently).
struct EstimatorPath {
  std::vector<std::int64_t> k{};
  std::vector<Tensor> a{};  // [d, n] at each recorded k
};

EstimatorPath train_estimator(const Tensor& x, double eta, const std::vector<std::int64_t>& record, Rng& rng) {
  const std::int64_t n = x.size(0), d = x.size(1);
  auto model = linear_model(zeros({n, d}), rng);
  const nn::Var xv(x), targets(eye(n));
  EstimatorPath path;
  std::size_t next = 0;
  gradient_descent(
      *model, {.lr = eta}, record.back(), [&] { return half_mse(*model, xv, targets); },
      [&](std::int64_t k, const nn::Var&) {
        if (next < record.size() && k == record[next]) {
          path.k.push_back(k);
          path.a.push_back(model->weight().value().t().contiguous());
          ++next;
        }
      });
  return path;
}

void early_stopping_part(const DemoArgs& args, Results& results, Rng& rng) {
  // n = 50 samples of d = 20 features whose scales fall from 1 to 0.2, so the modes spread over
  // about two decades; y = x w_true + noise.
  const std::int64_t n = 50, d = 20;
  std::vector<double> scales;
  for (std::int64_t j = 0; j < d; ++j) scales.push_back(std::pow(0.2, static_cast<double>(j) / (d - 1)));
  const Tensor x = rng.normal({n, d}) * from_vector(scales).unsqueeze(0);
  const Tensor w_true = rng.normal({d}) / std::sqrt(static_cast<double>(d));
  const double noise = 0.5;
  const Tensor y = matmul(x, w_true) + rng.normal({n}, 0.0, noise);
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const std::int64_t r = modes.sigma.size(0);
  const double top = modes.sigma.at({0}), bottom = modes.sigma.at({r - 1});

  // Closed forms on a log grid of t from 0.01 / sigma_max to 100 / sigma_min.
  std::vector<double> grid;
  for (double t = 0.01 / top; t <= 100.0 / bottom; t *= std::pow(10.0, 0.125)) grid.push_back(t);
  double worst_ratio_error = 0.0, lowest = 2.0, highest = 0.0, worst_risk = 0.0;
  std::vector<double> gf_risk, ridge_risk, risk_ratio;
  for (double t : grid) {
    const Tensor gf = gradient_flow_gains(modes, t), ridge = ridge_gains(modes, 1.0 / t);
    for (std::int64_t i = 0; i < r; ++i) {
      const double ratio = gf.at({i}) / ridge.at({i});
      lowest = std::min(lowest, ratio);
      highest = std::max(highest, ratio);
      worst_ratio_error = std::max(worst_ratio_error, std::abs(ratio - shrinkage_ratio(t * modes.sigma.at({i}))));
    }
    gf_risk.push_back(spectral_risk(modes, gf, w_true, noise));
    ridge_risk.push_back(spectral_risk(modes, ridge, w_true, noise));
    risk_ratio.push_back(gf_risk.back() / ridge_risk.back());
    worst_risk = std::max(worst_risk, risk_ratio.back());
  }
  double peak = 0.0, peak_at = 0.0;
  for (double z = 1e-3; z < 50.0; z *= 1.0001)
    if (shrinkage_ratio(z) > peak) peak = shrinkage_ratio(z), peak_at = z;
  results.check({.id = "mode_gains",
                 .claim = "per mode, gradient flow at t shrinks at most 1.2985x less than ridge at lambda = 1/t",
                 .measured = "gain ratios over " + std::to_string(r) + " modes x " + std::to_string(grid.size()) +
                             " times in [" + fmt(lowest, 10) + ", " + fmt(highest, 7) +
                             "], |ratio - (1 - e^-x)(1 + x)/x| <= " + fmt(worst_ratio_error) +
                             "; sup over x = " + fmt(peak, 7) + " at x = " + fmt(peak_at, 5),
                 .predicted = "in [1, 1.2985]",
                 .tolerance = "1e-12",
                 .pass = lowest >= 1.0 - 1e-12 && highest <= 1.2985 + 1e-12 && worst_ratio_error <= 1e-12,
                 .limit = 1.2985});
  results.check({.id = "risk_ratio",
                 .claim = "the estimation risk of gradient flow is at most 1.6862x that of ridge with lambda = 1/t",
                 .measured = "max_t Risk(GF, t) / Risk(ridge, 1/t) = " + fmt(worst_risk, 5) + " over " +
                             std::to_string(grid.size()) + " times",
                 .predicted = "<= 1.6862 (Ali, Kolter and Tibshirani 2019)",
                 .tolerance = "<= 1.6862",
                 .pass = worst_risk <= 1.6862,
                 .limit = 1.6862});

  // Trained GD at the grid times it reaches within the horizon, at eta and eta / 2.
  const double eta = 0.1 / top;
  const double horizon = (args.quick ? 10.0 : 30.0) / bottom;
  std::vector<std::int64_t> record;
  for (double t : grid)
    if (t <= horizon) {
      const auto k = std::max<std::int64_t>(1, std::llround(t / eta));
      if (record.empty() || k > record.back()) record.push_back(k);
    }
  demos::progress("early stopping: " + std::to_string(record.back()) + " + " + std::to_string(2 * record.back()) +
                  " GD steps on 50 identity targets");
  const EstimatorPath coarse = train_estimator(x, eta, record, rng);
  std::vector<std::int64_t> record_fine;
  for (std::int64_t k : record) record_fine.push_back(2 * k);
  const EstimatorPath fine = train_estimator(x, eta / 2, record_fine, rng);
  double gap = 0.0, gap_fine = 0.0, bound_use = 0.0, gd_risk_ratio = 0.0, gd_risk_gap = 0.0;
  std::vector<double> t_gd, w_gd_err, bound, gd_risk, gd_ridge_risk;
  for (std::size_t j = 0; j < coarse.k.size(); ++j) {
    const double t = eta * static_cast<double>(coarse.k[j]);
    const Tensor flow = gradient_flow_solution(modes, t);
    const double error = norm2(matmul(coarse.a[j], y) - flow);
    gap = std::max(gap, error);
    gap_fine = std::max(gap_fine, norm2(matmul(fine.a[j], y) - flow));
    const double allowed = 2.0 * eta * top * norm2(flow);
    bound_use = std::max(bound_use, error / allowed);
    const double risk = linear_estimator_risk(coarse.a[j], x, w_true, noise);
    const double ridge = spectral_risk(modes, ridge_gains(modes, 1.0 / t), w_true, noise);
    const double flow_risk = spectral_risk(modes, gradient_flow_gains(modes, t), w_true, noise);
    gd_risk_ratio = std::max(gd_risk_ratio, risk / ridge);
    gd_risk_gap = std::max(gd_risk_gap, std::abs(risk - flow_risk) / flow_risk);
    t_gd.push_back(t);
    w_gd_err.push_back(error);
    bound.push_back(allowed);
    gd_risk.push_back(risk);
    gd_ridge_risk.push_back(ridge);
  }
  results.check(
      {.id = "gd_tracks_flow",
       .claim = "GD with step eta follows gradient flow at t = k eta to first order in eta",
       .measured = "max_t |w_GD - w_GF| / (2 eta sigma_max |w_GF|) = " + fmt(bound_use) + " (eta sigma_max = 0.1)",
       .predicted = "0 (GD is Euler's method on the flow)",
       .tolerance = "<= 1, i.e. |w_GD - w_GF| <= 2 eta sigma_max |w_GF|",
       .pass = bound_use <= 1.0,
       .limit = 1.0});
  const double order = gap / gap_fine;
  results.check(
      {.id = "first_order",
       .claim = "halving eta halves GD's gap to gradient flow",
       .measured = "gap(eta) / gap(eta / 2) = " + fmt(order, 4) + " (gaps " + fmt(gap) + ", " + fmt(gap_fine) + ")",
       .predicted = "2",
       .tolerance = "in (1.8, 2.2)",
       .pass = order > 1.8 && order < 2.2});
  results.check({.id = "gd_risk",
                 .claim = "the trained GD estimator's risk tracks gradient flow's and stays within 1.6862x ridge's",
                 .measured = "max_t Risk(GD) / Risk(ridge) = " + fmt(gd_risk_ratio, 5) +
                             ", max_t |Risk(GD) - Risk(GF)| / Risk(GF) = " + fmt(gd_risk_gap),
                 .predicted = "<= 1.6862; Risk(GD) = Risk(GF) + O(eta)",
                 .tolerance = "<= 1.6862 and <= 2 eta sigma_max = 0.2",
                 .pass = gd_risk_ratio <= 1.6862 && gd_risk_gap <= 0.2,
                 .limit = 1.6862});
  results.write_csv("ridge_risk.csv", {"t", "risk_gf", "risk_ridge", "ratio"}, {grid, gf_risk, ridge_risk, risk_ratio});
  results.write_csv("gd_vs_flow.csv", {"t", "gap", "bound", "risk_gd", "risk_ridge"},
                    {t_gd, w_gd_err, bound, gd_risk, gd_ridge_risk});
  std::vector<double> xs, ratios;
  for (double z = 1e-2; z <= 1e2; z *= std::pow(10.0, 0.02)) xs.push_back(z), ratios.push_back(shrinkage_ratio(z));
  results.write_csv("shrinkage_ratio.csv", {"x", "ratio"}, {xs, ratios});
}


}  // namespace theta::demos::implicit_bias
