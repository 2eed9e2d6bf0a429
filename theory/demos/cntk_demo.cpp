// cntk_demo: the convolutional NTK of a ReLU CNN on the 8x8 digits (3 convolutions 3x3, global
// average pooling, one output, NTK parameterisation).
//   (i)  The empirical kernel of finite networks (structured, Conv2d's rule) approaches the
//        analytic CNTK (Arora et al. 2019) as channels grow. With one convolution, each kernel is
//        an average over independent channels and its error per init falls as channels^-1/2
//        (log-log slope -0.5 +- 0.1 over 64..4096 channels). With three, the mean over inits of
//        the widest networks is within 5% of the analytic kernel, and the spread over inits falls
//        with the channel count (-0.5 asymptotically; on 32..512 channels the O(1 / channels)
//        terms still steepen it, so the check takes [-1, -0.4]).
//   (ii) Kernel regression on a fixed 1000/797 split of the digits with CNTK-GAP, CNTK-flatten and
//        the fully connected ReLU NTK of the same depth: test accuracies side by side, CNTK-GAP
//        expected at least as accurate as the fully connected kernel.

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "tensor/ops.hpp"
#include "theory/cntk.hpp"
#include "theory/ntk.hpp"
#include "theory/demos/demo_common.hpp"

using namespace theta;

namespace {

constexpr std::int64_t kConvLayers = 3;
constexpr double kSigmaW = 1.0;

// The finite network whose infinite-channel limit analytic_cntk computes (theory/cntk.hpp).
std::shared_ptr<nn::Sequential> finite_cnn(std::int64_t conv_layers, std::int64_t channels, std::uint64_t seed) {
  Rng rng(seed);
  return nn::cnn({.image = {1, 8, 8},
                  .channels = std::vector<std::int64_t>(static_cast<std::size_t>(conv_layers), channels),
                  .kernel_size = 3,
                  .out_features = 1,
                  .parameterization = nn::Parameterization::ntk,
                  .sigma_w = kSigmaW,
                  .sigma_b = 0.0},
                 rng);
}

// Test accuracy of kernel regression to one-hot labels: f(x) = K(x, X) K(X, X)^-1 Y.
double regression_accuracy(const Tensor& k_train, const Tensor& k_test, const Tensor& y_train, const Tensor& y_test) {
  const std::int64_t n = y_train.size(0);
  Tensor targets = zeros({n, 10});
  for (std::int64_t i = 0; i < n; ++i) targets.data<double>()[i * 10 + static_cast<std::int64_t>(y_train.at({i}))] = 1.0;
  const Tensor f = theory::ntk_regression({.k_test_train = k_test,
                                           .k_train_train = k_train,
                                           .y_train = targets,
                                           .f0_train = zeros({n, 10}),
                                           .f0_test = zeros({k_test.size(0), 10})});
  return nn::accuracy(f, y_test);
}

// The empirical kernels of `inits` networks of each width against the analytic CNTK.
struct Convergence {
  std::vector<double> channels, error_per_init, error_of_mean, spread;
};

Convergence convergence(const Tensor& x, std::int64_t conv_layers, const std::vector<std::int64_t>& widths, int inits,
                        std::uint64_t seed) {
  const std::int64_t n = x.size(0);
  const Tensor rows = x.reshape({n, -1});
  const Tensor exact = theory::analytic_cntk(x, x, {.conv_layers = conv_layers, .sigma_w = kSigmaW}).ntk;
  const double scale = demos::frobenius(exact);
  Convergence out;
  for (const std::int64_t c : widths) {
    std::vector<Tensor> kernels;
    Tensor mean_kernel = zeros(exact.shape());
    double err = 0;
    for (int s = 0; s < inits; ++s) {
      auto net = finite_cnn(conv_layers, c, seed * 1000 + static_cast<std::uint64_t>(c) * 10 + static_cast<std::uint64_t>(s));
      kernels.push_back(theory::empirical_ntk_matrix(*net, rows, rows));
      err += demos::frobenius(kernels.back() - exact) / scale / inits;
      mean_kernel = mean_kernel + kernels.back() / inits;
    }
    double spread = 0;
    for (const Tensor& k : kernels) spread += std::pow(demos::frobenius(k - mean_kernel), 2) / (inits - 1);
    out.channels.push_back(static_cast<double>(c));
    out.error_per_init.push_back(err);
    out.error_of_mean.push_back(demos::frobenius(mean_kernel - exact) / scale);
    out.spread.push_back(std::sqrt(spread) / scale);
    demos::progress(std::to_string(conv_layers) + " conv layers, " + std::to_string(c) + " channels: relative error " +
                    demos::fmt(err) + " per init, " + demos::fmt(out.error_of_mean.back()) + " for the mean of " +
                    std::to_string(inits) + " inits; spread over inits " + demos::fmt(out.spread.back()));
  }
  return out;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const nn::Dataset digits = nn::load_digits();
  const Tensor images = (digits.x / 16.0).reshape({-1, 1, 8, 8});

  // (i) Empirical against analytic on 24 digits: one convolution, where each kernel is an average
  // over independent channels and the channels^-1/2 law shows from the start, and three.
  const Tensor x = images.slice(0, 0, 24);
  const Convergence shallow = convergence(x, 1, {64, 128, 256, 512, 1024, 2048, 4096}, 12, args.seed + 7);
  const Convergence deep = convergence(x, kConvLayers, {32, 64, 128, 256, 512}, 10, args.seed);
  results.write_csv("convergence_1_layer.csv", {"channels", "relative_error_per_init", "relative_error_of_mean",
                                                "relative_spread_over_inits"},
                    {shallow.channels, shallow.error_per_init, shallow.error_of_mean, shallow.spread});
  results.write_csv("convergence.csv",
                    {"channels", "relative_error_per_init", "relative_error_of_mean", "relative_spread_over_inits"},
                    {deep.channels, deep.error_per_init, deep.error_of_mean, deep.spread});
  const double shallow_slope = demos::log_log_slope(shallow.channels, shallow.error_per_init);
  const double slope = demos::log_log_slope(deep.channels, deep.spread);
  std::printf("log-log slopes against channels: 1 conv layer, error per init %.3f; %d conv layers, spread over "
              "inits %.3f, error per init %.3f\n",
              shallow_slope, static_cast<int>(kConvLayers), slope, demos::log_log_slope(deep.channels, deep.error_per_init));
  const std::vector<double>& averaged_errors = deep.error_of_mean;
  const std::int64_t widest = static_cast<std::int64_t>(deep.channels.back());
  const int inits = 10;

  // (ii) Kernel regression on the first 1000 digits, tested on the other 797.
  const std::int64_t n_train = 1000, n_test = 797;
  const Tensor train = images.slice(0, 0, n_train), test = images.slice(0, n_train, n_train + n_test);
  const Tensor y_train = digits.y.slice(0, 0, n_train), y_test = digits.y.slice(0, n_train, n_train + n_test);
  struct Row {
    const char* name;
    double accuracy;
  };
  std::vector<Row> rows;
  for (const auto readout : {theory::CntkReadout::global_average, theory::CntkReadout::flatten}) {
    const theory::CntkOptions o{.conv_layers = kConvLayers, .readout = readout, .sigma_w = kSigmaW};
    const char* name = readout == theory::CntkReadout::global_average ? "CNTK-GAP" : "CNTK-flatten";
    demos::progress(std::string(name) + ": " + std::to_string(n_train) + " x " + std::to_string(n_train) + " and " +
                    std::to_string(n_test) + " x " + std::to_string(n_train) + " kernels");
    const Tensor k_train = theory::analytic_cntk(train, train, o).ntk, k_test = theory::analytic_cntk(test, train, o).ntk;
    rows.push_back({name, regression_accuracy(k_train, k_test, y_train, y_test)});
  }
  {
    const Tensor a = train.reshape({n_train, 64}), b = test.reshape({n_test, 64});
    const auto fc = [&](const Tensor& u, const Tensor& v) {
      return theory::analytic_ntk(u, v, kConvLayers + 1, nn::ActivationKind::relu, kSigmaW, 0.0).ntk;
    };
    rows.push_back({"FC NTK", regression_accuracy(fc(a, a), fc(b, a), y_train, y_test)});
  }
  std::vector<double> index, accuracy;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::printf("%-13s test accuracy %.4f\n", rows[i].name, rows[i].accuracy);
    index.push_back(static_cast<double>(i));
    accuracy.push_back(rows[i].accuracy);
  }
  results.write_csv("kernel_regression.csv", {"kernel (0 CNTK-GAP, 1 CNTK-flatten, 2 FC NTK)", "test_accuracy"},
                    {index, accuracy});

  results.check({.id = "slope_1_layer",
                 .claim = "one convolution: the empirical CNTK's error per init falls as channels^-1/2",
                 .measured = "log-log slope " + demos::fmt(shallow_slope) + " over 64..4096 channels (12 inits)",
                 .predicted = "-0.5",
                 .tolerance = "+- 0.1",
                 .pass = std::abs(shallow_slope + 0.5) <= 0.1,
                 .limit = 0.1});
  // Over inits the kernel fluctuates as channels^-1/2 asymptotically; at these widths the O(1 /
  // channels) finite-width corrections of a deeper net still steepen the fit, so the check takes
  // [-1, -0.4].
  results.check({.id = "slope",
                 .claim = "three convolutions: the empirical CNTK's spread over inits falls with the channel count",
                 .measured = "log-log slope " + demos::fmt(slope) + " over 32.." + std::to_string(widest) + " channels",
                 .predicted = "-0.5 asymptotically, down to -1 where O(1/channels) terms remain",
                 .tolerance = "in [-1, -0.4]",
                 .pass = slope >= -1.0 && slope <= -0.4,
                 .limit = -0.4});
  results.check({.id = "mean_kernel",
                 .claim = "the mean empirical CNTK of the widest networks is the analytic CNTK",
                 .measured = "relative error " + demos::fmt(averaged_errors.back()) + " at " +
                             std::to_string(widest) + " channels (" + std::to_string(inits) + " inits)",
                 .predicted = "0",
                 .tolerance = "<= 0.05",
                 .pass = averaged_errors.back() <= 0.05,
                 .limit = 0.05});
  results.check({.id = "gap_vs_fc",
                 .claim = "CNTK-GAP regression is at least as accurate as the fully connected NTK's (Arora et al. 2020)",
                 .measured = "CNTK-GAP " + demos::fmt(rows[0].accuracy, 4) + ", FC NTK " + demos::fmt(rows[2].accuracy, 4),
                 .predicted = "CNTK-GAP >= FC NTK",
                 .tolerance = "none (a comparison)",
                 .pass = rows[0].accuracy >= rows[2].accuracy});
  std::string side_by_side;
  for (const Row& r : rows) side_by_side += std::string(side_by_side.empty() ? "" : ", ") + r.name + " " + demos::fmt(r.accuracy, 4);
  return results.finish("slope " + demos::fmt(shallow_slope) + " (1 layer), spread slope " + demos::fmt(slope) +
                        " (3 layers), mean kernel error " +
                        demos::fmt(averaged_errors.back()) + "; kernel regression test accuracy: " + side_by_side);
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = "cntk_demo",
                          .description = "empirical against analytic convolutional NTK, and CNTK regression on digits"},
                         demo_main);
}
