// implicit_bias_demo, part 4: diagonal linear networks in the kernel and rich regimes.


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

// ---- 4. diagonal linear networks ---------------------------------------------------------------

struct DiagonalRun {
  double alpha = 0.0, eta = 0.0;
  Tensor beta{};
  double max_null = 0.0;  // max over records of |P_null mirror| / |mirror|
  double residual = 0.0;  // |x beta - y| / |y| at the end
};

// GD on 1/(2n) |x beta - y|^2 from u = v = alpha, with eta = 0.01 / max(1, alpha^2): the
// curvature grows like alpha^2 (Note [Diagonal net invariant]).
DiagonalRun train_diagonal(const Tensor& x, const Tensor& y, const LeastSquaresModes& modes, double alpha,
                           std::int64_t steps) {
  DiagonalRun run{.alpha = alpha, .eta = 0.01 / std::max(1.0, alpha * alpha)};
  DiagonalNet net(x.size(1), alpha);
  const nn::Var xv(x), yv(y);
  gradient_descent(
      net, {.lr = run.eta}, steps,
      [&] { return nn::mse_loss(net(xv), yv, nn::Reduction::sum) * (0.5 / static_cast<double>(x.size(0))); },
      [&](std::int64_t k, const nn::Var&) {
        if (k == 0 || (k % 100 != 0 && k != steps)) return;
        const Tensor mirror = woodworth_mirror(net.beta(), alpha);
        run.max_null = std::max(run.max_null, norm2(null_space_component(modes, mirror)) / norm2(mirror));
      });
  run.beta = net.beta();
  run.residual = norm2(matmul(x, run.beta) - y) / norm2(y);
  return run;
}

double relative(const Tensor& a, const Tensor& b) { return norm2(a - b) / norm2(b); }

void diagonal_part(Results& results, Rng& rng) {
  const std::int64_t n = 40, d = 100;
  const Tensor x = rng.normal({n, d});
  // A 3-sparse truth with entries of size 1 to 2 and random signs.
  std::vector<double> truth(d, 0.0);
  const Tensor support = rng.permutation(d).slice(0, 0, 3);
  for (std::int64_t i = 0; i < 3; ++i)
    truth[static_cast<std::size_t>(support.at({i}))] = (rng.uniform01() < 0.5 ? -1.0 : 1.0) * (1.0 + rng.uniform01());
  const Tensor beta_star = from_vector(truth);
  const Tensor y = matmul(x, beta_star);
  const LeastSquaresModes modes = least_squares_modes(x, y);
  const Tensor pinv = min_norm_solution(x, y);

  // The small init needs the most steps: it escapes the origin only after t ~ ln(1 / alpha).
  demos::progress("diagonal net: alpha = 1e-3, 0.3, 30 (100000, 20000, 5000 GD steps)");
  const DiagonalRun rich = train_diagonal(x, y, modes, 1e-3, 100000);
  const DiagonalRun middle = train_diagonal(x, y, modes, 0.3, 20000);
  const DiagonalRun kernel = train_diagonal(x, y, modes, 30.0, 5000);

  const double worst_null =
      std::max({rich.max_null / rich.eta, middle.max_null / middle.eta, kernel.max_null / kernel.eta});
  results.check({.id = "mirror_invariant",
                 .claim = "asinh(beta / (2 alpha^2)) stays in the row space of x (exact for the flow, O(eta) for GD)",
                 .measured = "max |P_null m| / |m| = " + fmt(rich.max_null) + " (alpha 1e-3, eta 1e-2), " +
                             fmt(middle.max_null) + " (alpha 0.3, eta 1e-2), " + fmt(kernel.max_null) +
                             " (alpha 30, eta " + fmt(kernel.eta) + ")",
                 .predicted = "0 + O(eta)",
                 .tolerance = "<= 10 eta",
                 .pass = worst_null <= 10.0,
                 .limit = 10.0});
  const double rich_error = relative(rich.beta, beta_star);
  results.check({.id = "rich_sparse",
                 .claim = "small init (alpha = 1e-3): the diagonal net recovers the 3-sparse truth (rich regime)",
                 .measured = "|beta - beta*| / |beta*| = " + fmt(rich_error) + " (|beta - x^+ y| / |x^+ y| = " +
                             fmt(relative(rich.beta, pinv)) + ", residual " + fmt(rich.residual) + ")",
                 .predicted = "0",
                 .tolerance = "<= 1e-2",
                 .pass = rich_error <= 1e-2,
                 .limit = 1e-2});
  const double kernel_error = relative(kernel.beta, pinv);
  results.check(
      {.id = "kernel_min_l2",
       .claim = "large init (alpha = 30): the diagonal net finds the minimum-l2 solution x^+ y (kernel regime)",
       .measured = "|beta - x^+ y| / |x^+ y| = " + fmt(kernel_error) +
                   " (|beta - beta*| / |beta*| = " + fmt(relative(kernel.beta, beta_star)) + ")",
       .predicted = "0",
       .tolerance = "<= 1e-2",
       .pass = kernel_error <= 1e-2,
       .limit = 1e-2});
  std::vector<Tensor> minimizers;
  double worst_q = 0.0;
  std::ostringstream q_text;
  for (const DiagonalRun* run : {&rich, &middle, &kernel}) {
    minimizers.push_back(woodworth_minimizer(x, y, run->alpha));
    const double error = relative(run->beta, minimizers.back());
    worst_q = std::max(worst_q, error);
    q_text << (run == &rich ? "" : ", ") << fmt(error) << " (alpha " << fmt(run->alpha) << ")";
  }
  results.check({.id = "woodworth_minimizer",
                 .claim = "at every alpha GD reaches argmin Q_alpha(beta) subject to x beta = y",
                 .measured = "|beta - beta_Q| / |beta_Q| = " + q_text.str(),
                 .predicted = "0 + O(eta)",
                 .tolerance = "<= 1e-2",
                 .pass = worst_q <= 1e-2,
                 .limit = 1e-2});
  std::vector<double> index;
  for (std::int64_t i = 0; i < d; ++i) index.push_back(static_cast<double>(i));
  results.write_csv(
      "diagonal_net.csv",
      {"i", "beta_star", "pinv", "beta_small", "beta_mid", "beta_large", "q_small", "q_mid", "q_large"},
      {index, truth, to_vector(pinv), to_vector(rich.beta), to_vector(middle.beta), to_vector(kernel.beta),
       to_vector(minimizers[0]), to_vector(minimizers[1]), to_vector(minimizers[2])});
}


}  // namespace theta::demos::implicit_bias
