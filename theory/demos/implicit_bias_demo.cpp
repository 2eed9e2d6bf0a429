// Implicit bias of gradient descent, measured on models trained through nn against the closed
// forms of theory/least_squares, theory/max_margin and theory/diagonal_net:
//  1. least squares, n < d: GD from zero stays in the row space and converges to x^+ y; from w0 it
//     converges to x^+ y + P_null w0 (synthetic 20 x 100, and 50 digits x 64 pixels);
//  2. early stopping against ridge with lambda = 1/t (Ali, Kolter and Tibshirani 2019): per-mode
//     gains, estimation risks, and GD's first-order lag behind gradient flow;
//  3. logistic regression on separable data: w(k) = w_hat ln k + w_tilde + o(1) with w_hat the
//     hard-margin SVM and w_tilde from its dual variables (Soudry et al. 2018), so the direction
//     converges like 1/ln k;
//  4. diagonal linear nets beta = u*u - v*v (Woodworth et al. 2020): the mirror-map invariant, the
//     sparse solution for a small init, x^+ y for a large one, and Q_alpha's minimiser in between.
// The parts live in theory/demos/implicit_bias_demo/.

#include <chrono>
#include <sstream>
#include <string>

#include "nn/functional.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/demos/implicit_bias_demo/parts.hpp"

using namespace theta;
using theta::demos::fmt;

namespace theta::demos::implicit_bias {

std::shared_ptr<nn::Linear> linear_model(const Tensor& w0, Rng& rng) {
  auto model = std::make_shared<nn::Linear>(w0.size(1), w0.size(0), rng, nn::LinearOptions{.bias = false});
  model->weight().value().copy_(w0);
  return model;
}

nn::Var half_mse(nn::Module& model, const nn::Var& x, const nn::Var& y) {
  return nn::mse_loss(model(x), y, nn::Reduction::sum) * (0.5 / static_cast<double>(x.size(0)));
}

}  // namespace theta::demos::implicit_bias

namespace {

using namespace theta::demos::implicit_bias;

constexpr const char* kName = "implicit_bias_demo";

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const auto start = std::chrono::steady_clock::now();
  Rng rng(args.seed + 2018);
  const auto lap = [&](const std::string& part) {
    demos::progress(part + " done after " +
                    fmt(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 3) + " s");
  };
  min_norm_part(args, results, rng);
  lap("minimum norm");
  early_stopping_part(args, results, rng);
  lap("early stopping");
  logistic_part(args, results, rng);
  lap("logistic regression");
  diagonal_part(results, rng);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream summary;
  summary << "min-norm, early stopping vs ridge, max margin and diagonal-net regimes (" << fmt(seconds, 3) << " s)";
  return results.finish(summary.str());
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = kName,
                          .description = "implicit bias of gradient descent: minimum norm, early stopping as ridge, "
                                         "max margin, kernel and rich regimes",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
