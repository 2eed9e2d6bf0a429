// The loss Hessian of an MLP on the UCI digits, before and after training, without forming it:
//  1. top eigenvalues by Lanczos with full reorthogonalisation and the spectral density by
//     stochastic Lanczos quadrature (Ghorbani, Krishnan and Xiao 2019) of a 64-32-10 tanh MLP on
//     the standardised training set, at initialisation and after SGD;
//  2. the check: on a 64-8-10 net and 200 training samples (610 parameters) the dense Hessian
//     (one HVP per column, then LAPACK) gives the exact spectrum, against which Lanczos' top and
//     bottom eigenvalues must agree to 1e-8 relative, and Hutchinson's trace and the SLQ mean
//     must fall within 4 standard errors of tr(H) and tr(H) / P. Checked before and after training;
//  3. the same check on a 64-8-BatchNorm-10 net in training mode, whose loss couples the samples
//     of the batch (module_loss runs the net's own forward, batch statistics included).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nn/data.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "nn/train.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;
using theta::demos::fmt;

namespace {

constexpr const char* kName = "hessian_demo";
constexpr double kLanczosTolerance = 1e-8;  // relative, against the dense spectrum
constexpr double kSigmas = 4.0;             // stochastic estimates must lie within 4 standard errors

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nn::LossFn cross_entropy_loss() {
  return [](const autograd::Var& logits, const Tensor& labels) { return nn::cross_entropy(logits, labels); };
}

// The Hessian operator of the model's mean cross-entropy on (x, y), counting its applications.
struct CountedOperator {
  LinearOperator op;
  std::shared_ptr<std::int64_t> calls = std::make_shared<std::int64_t>(0);
};

CountedOperator counted_hessian(const std::shared_ptr<nn::Sequential>& model, const Tensor& x, const Tensor& y) {
  CountedOperator out;
  const LinearOperator inner =
      hessian_operator(module_loss(model, x, y, cross_entropy_loss()), parameter_values(*model));
  out.op = {inner.size, [inner, calls = out.calls](const Tensor& v) {
              ++*calls;
              return inner.apply(v);
            }};
  return out;
}

// Trains `model` with plain SGD on `data`; returns the final epoch's mean training loss.
double train(const std::shared_ptr<nn::Sequential>& model, const nn::Dataset& data, double lr, std::int64_t epochs,
             std::uint64_t seed) {
  nn::Sgd sgd(model->named_parameters(), {.lr = lr});
  const nn::DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = seed});
  const auto logs = nn::fit(*model, sgd, loader, cross_entropy_loss(), {.epochs = epochs, .quiet = true});
  return logs.back().train_loss;
}

double test_accuracy(const std::shared_ptr<nn::Sequential>& model, const nn::Dataset& data) {
  const autograd::NoGradGuard no_grad;
  return nn::accuracy(model->forward(autograd::Var(data.x)).value(), data.y);
}

// ---- the check against the dense Hessian ---------------------------------------------------

struct DenseCheck {
  std::vector<double> descending;  // the whole dense spectrum, largest first
  std::vector<double> dense_top, lanczos_top, dense_bottom, lanczos_bottom;
  double max_relative_error = 0.0;  // over the top and bottom eigenvalues
  double trace = 0.0;
  double trace_z = 0.0;  // |Hutchinson - tr H| / its standard error
  double slq_z = 0.0;    // |SLQ mean - tr H / P| / (standard error / P)
  std::int64_t size = 0;
};

DenseCheck check_against_dense(const std::shared_ptr<nn::Sequential>& model, const nn::Dataset& data, std::int64_t k,
                               std::uint64_t seed, bool quick) {
  DenseCheck c;
  const auto loss = module_loss(model, data.x, data.y, cross_entropy_loss());
  const std::vector<Tensor> params = parameter_values(*model);
  const Tensor dense = autograd::hessian(loss, params);
  const SymmetricEigen exact = eigh(dense);
  const std::vector<double> spectrum = to_vector(exact.values);
  c.size = dense.size(0);
  c.descending.assign(spectrum.rbegin(), spectrum.rend());
  const auto n = static_cast<std::size_t>(c.size);

  const LinearOperator op = hessian_operator(loss, params);
  const EigenResult r =
      lanczos_top_k(op, k, {.iterations = 160, .seed = seed, .which = Which::both_ends});
  for (std::int64_t i = 0; i < k; ++i) {
    const auto u = static_cast<std::size_t>(i);
    c.dense_top.push_back(spectrum[n - 1 - u]);
    c.dense_bottom.push_back(spectrum[u]);
    c.lanczos_top.push_back(r.values.at({i}));
    c.lanczos_bottom.push_back(r.values.at({k + i}));
    c.max_relative_error = std::max({c.max_relative_error,
                                     std::abs(c.lanczos_top[u] - c.dense_top[u]) / std::abs(c.dense_top[u]),
                                     std::abs(c.lanczos_bottom[u] - c.dense_bottom[u]) / std::abs(c.dense_bottom[u])});
  }

  for (double v : spectrum) c.trace += v;
  const std::int64_t probes = quick ? 30 : 100;
  const TraceEstimate t = hutchinson_trace(op, probes, seed + 1);
  c.trace_z = std::abs(t.mean - c.trace) / t.std_error;
  // SLQ's mean is Hutchinson's estimate over its own probes, divided by P; its standard error is
  // estimated from those probes: v^T H v with v = z / sqrt(P) is the SLQ probe's quadrature mean.
  const SpectralDensity d = slq_density(op, {.probes = probes, .steps = quick ? 20 : 40, .seed = seed + 2});
  std::vector<double> means;
  for (std::size_t l = 0; l < d.nodes.size(); ++l) means.push_back(dot(d.nodes[l], d.weights[l]).item<double>());
  double mean = 0.0, squares = 0.0;
  for (double m : means) mean += m / static_cast<double>(means.size());
  for (double m : means) squares += (m - mean) * (m - mean);
  const double se = std::sqrt(squares / static_cast<double>(means.size() - 1) / static_cast<double>(means.size()));
  c.slq_z = std::abs(mean - c.trace / static_cast<double>(c.size)) / se;
  return c;
}

// CSV rows (trained, rank from the top, dense eigenvalue, Lanczos eigenvalue) for the top and
// bottom eigenvalues of both states of one check.
void write_extremes(demos::Results& results, const std::string& file, const DenseCheck& init,
                    const DenseCheck& trained) {
  std::vector<double> state, rank, dense, lanczos;
  for (const auto& [c, flag] : {std::pair{&init, 0.0}, std::pair{&trained, 1.0}})
    for (std::size_t i = 0; i < c->dense_top.size(); ++i) {
      state.insert(state.end(), {flag, flag});
      rank.insert(rank.end(), {static_cast<double>(i + 1), static_cast<double>(c->size) - static_cast<double>(i)});
      dense.insert(dense.end(), {c->dense_top[i], c->dense_bottom[i]});
      lanczos.insert(lanczos.end(), {c->lanczos_top[i], c->lanczos_bottom[i]});
    }
  results.write_csv(file, {"trained", "rank_from_top", "lambda_dense", "lambda_lanczos"},
                    {state, rank, dense, lanczos});
}

// ---- the spectrum of the larger net --------------------------------------------------------

struct SpectrumReport {
  EigenResult top;
  SpectralDensity density;
  double trace_per_parameter = 0.0;  // SLQ mean eigenvalue
  std::int64_t hvps = 0;
  double seconds = 0.0;
};

SpectrumReport measure_spectrum(const std::shared_ptr<nn::Sequential>& model, const nn::Dataset& data, std::int64_t k,
                                const std::string& label, std::uint64_t seed, bool quick) {
  const auto start = std::chrono::steady_clock::now();
  SpectrumReport out;
  const CountedOperator h = counted_hessian(model, data.x, data.y);
  demos::progress(label + ": Lanczos top " + std::to_string(k) + " of " + std::to_string(h.op.size) +
                  " parameters");
  out.top = lanczos_top_k(h.op, k, {.iterations = quick ? 40 : 200, .seed = seed});
  demos::progress(label + ": SLQ density");
  out.density = slq_density(h.op, {.probes = quick ? 4 : 10, .steps = quick ? 30 : 100, .seed = seed + 1});
  out.trace_per_parameter = quadrature_mean(out.density);
  out.hvps = *h.calls;
  out.seconds = seconds_since(start);
  demos::progress(label + ": " + std::to_string(out.hvps) + " Hessian-vector products in " + fmt(out.seconds, 2) +
                  " s, lambda_max " + fmt(out.top.values.at({0}), 4) + ", max residual " +
                  fmt(max(out.top.residuals).item<double>(), 2));
  return out;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const auto start = std::chrono::steady_clock::now();
  const bool quick = args.quick;

  // Data: the digits, a fixed 75/25 split, standardised with training statistics.
  const nn::Dataset digits = nn::load_digits();
  nn::Split split = nn::train_test_split(digits, 0.25, 7);
  const nn::Standardizer standardizer = nn::Standardizer::fit(split.train.x);
  split.train.x = standardizer.apply(split.train.x);
  split.test.x = standardizer.apply(split.test.x);
  const nn::Dataset hessian_data =
      quick ? nn::subset(split.train, arange(0, 400, 1, DType::f64).to(DType::i64)) : split.train;

  const double lr = 0.1;
  const std::int64_t epochs = quick ? 4 : 20;
  const std::int64_t k = 10;

  // 1. The 64-32-10 net: spectrum before and after training.
  Rng rng(args.seed);
  auto model = nn::mlp({64, 32, 10}, rng, {.activation = nn::ActivationKind::tanh});
  const SpectrumReport before = measure_spectrum(model, hessian_data, k, "64-32-10 at init", args.seed + 10, quick);
  demos::progress("training 64-32-10 with SGD (lr " + fmt(lr) + ", batch 32, " + std::to_string(epochs) +
                  " epochs)");
  const double train_loss = train(model, split.train, lr, epochs, args.seed + 20);
  const double accuracy = test_accuracy(model, split.test);
  demos::progress("trained: loss " + fmt(train_loss) + ", test accuracy " + fmt(accuracy));
  const SpectrumReport after = measure_spectrum(model, hessian_data, k, "64-32-10 trained", args.seed + 30, quick);

  // 2. The check on the 64-8-10 net and 200 samples, before and after its own training.
  const nn::Dataset small_data = nn::subset(split.train, arange(0, 200, 1, DType::f64).to(DType::i64));
  Rng small_rng(args.seed + 40);
  auto small = nn::mlp({64, 8, 10}, small_rng, {.activation = nn::ActivationKind::tanh});
  const std::int64_t check_k = 5;
  demos::progress("check: dense Hessian of 64-8-10 on 200 samples at init");
  const DenseCheck check_before = check_against_dense(small, small_data, check_k, args.seed + 50, quick);
  train(small, small_data, lr, epochs, args.seed + 60);
  demos::progress("check: dense Hessian of 64-8-10 after training");
  const DenseCheck check_after = check_against_dense(small, small_data, check_k, args.seed + 70, quick);

  // 3. The check on a BatchNorm net in training mode, before and after training.
  Rng bn_rng(args.seed + 80);
  auto bn_net = std::make_shared<nn::Sequential>();
  bn_net->add(std::make_shared<nn::Linear>(64, 8, bn_rng));
  bn_net->add(std::make_shared<nn::BatchNorm1d>(8));
  bn_net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  bn_net->add(std::make_shared<nn::Linear>(8, 10, bn_rng));
  demos::progress("check: dense Hessian of 64-8-BatchNorm-10 (training mode) at init");
  const DenseCheck bn_before = check_against_dense(bn_net, small_data, check_k, args.seed + 90, quick);
  train(bn_net, small_data, lr, epochs, args.seed + 100);
  demos::progress("check: dense Hessian of 64-8-BatchNorm-10 after training");
  const DenseCheck bn_after = check_against_dense(bn_net, small_data, check_k, args.seed + 110, quick);
  for (const DenseCheck* c : {&check_before, &check_after, &bn_before, &bn_after})
    demos::progress("check (P = " + std::to_string(c->size) + "): max rel. error " + fmt(c->max_relative_error, 2) +
                    ", Hutchinson |err|/se " + fmt(c->trace_z, 2) + ", SLQ mean |err|/se " + fmt(c->slq_z, 2));

  // Outputs. Density: both states on one grid and one Gaussian width.
  double lo = std::min(before.density.grid.at({0}), after.density.grid.at({0}));
  double hi = std::max(before.density.grid.at({before.density.grid.numel() - 1}),
                       after.density.grid.at({after.density.grid.numel() - 1}));
  const double sigma = std::max(before.density.sigma, after.density.sigma);
  lo -= 5.0 * sigma;
  hi += 5.0 * sigma;
  const Tensor grid = linspace(lo, hi, 1500);
  const Tensor density_before = smoothed_density(before.density.nodes, before.density.weights, grid, sigma);
  const Tensor density_after = smoothed_density(after.density.nodes, after.density.weights, grid, sigma);
  results.write_csv("hessian_density.csv", {"lambda", "density_init", "density_trained"},
                    {to_vector(grid), to_vector(density_before), to_vector(density_after)});

  std::vector<double> index, top_before, top_after, res_before, res_after;
  for (std::int64_t i = 0; i < k; ++i) {
    index.push_back(static_cast<double>(i + 1));
    top_before.push_back(before.top.values.at({i}));
    top_after.push_back(after.top.values.at({i}));
    res_before.push_back(before.top.residuals.at({i}));
    res_after.push_back(after.top.residuals.at({i}));
  }
  results.write_csv("hessian_top_eigenvalues.csv",
                    {"index", "lambda_init", "lambda_trained", "residual_init", "residual_trained"},
                    {index, top_before, top_after, res_before, res_after});

  // The whole dense spectra, and Lanczos' extreme eigenvalues at their ranks, for both checks.
  std::vector<double> ranks;
  for (std::int64_t i = 0; i < check_before.size; ++i) ranks.push_back(static_cast<double>(i + 1));
  results.write_csv("hessian_check_spectrum.csv", {"rank_from_top", "lambda_dense_init", "lambda_dense_trained"},
                    {ranks, check_before.descending, check_after.descending});
  write_extremes(results, "hessian_check.csv", check_before, check_after);
  write_extremes(results, "hessian_check_batchnorm.csv", bn_before, bn_after);

  auto lanczos_check = [&](const std::string& id, const std::string& net, const DenseCheck& a, const DenseCheck& b) {
    const double worst = std::max(a.max_relative_error, b.max_relative_error);
    results.check({.id = id,
                   .claim = "Lanczos' top and bottom " + std::to_string(check_k) + " eigenvalues equal the dense "
                            "Hessian's (" + net + ", P = " + std::to_string(a.size) + ", at init and trained)",
                   .measured = "max relative error " + fmt(worst, 2),
                   .predicted = "0",
                   .tolerance = "<= " + fmt(kLanczosTolerance),
                   .pass = worst <= kLanczosTolerance,
                   .limit = kLanczosTolerance});
  };
  auto stochastic_check = [&](const std::string& id, const std::string& net, const DenseCheck& a,
                              const DenseCheck& b) {
    const double worst = std::max({a.trace_z, b.trace_z, a.slq_z, b.slq_z});
    results.check({.id = id,
                   .claim = "Hutchinson's trace and the SLQ mean eigenvalue are unbiased (" + net + ")",
                   .measured = "worst |estimate - exact| / standard error " + fmt(worst, 2) + " (Hutchinson " +
                               fmt(a.trace_z, 2) + ", " + fmt(b.trace_z, 2) + "; SLQ " + fmt(a.slq_z, 2) + ", " +
                               fmt(b.slq_z, 2) + ")",
                   .predicted = "tr(H) = " + fmt(a.trace, 4) + " at init, " + fmt(b.trace, 4) + " trained",
                   .tolerance = "<= " + fmt(kSigmas) + " standard errors",
                   .pass = worst <= kSigmas,
                   .limit = kSigmas});
  };
  lanczos_check("lanczos_mlp", "64-8-10 tanh MLP", check_before, check_after);
  stochastic_check("stochastic_mlp", "64-8-10 tanh MLP", check_before, check_after);
  lanczos_check("lanczos_batchnorm", "64-8-BatchNorm-10, training mode", bn_before, bn_after);
  stochastic_check("stochastic_batchnorm", "64-8-BatchNorm-10, training mode", bn_before, bn_after);

  std::ostringstream summary;
  summary << "Lanczos vs dense Hessian (P = " << check_before.size << ") max rel. error "
          << fmt(std::max(check_before.max_relative_error, check_after.max_relative_error), 2) << " (tol "
          << fmt(kLanczosTolerance) << "), BatchNorm net (P = " << bn_before.size << ", training mode) "
          << fmt(std::max(bn_before.max_relative_error, bn_after.max_relative_error), 2)
          << "; 64-32-10 (P = " << before.top.vectors.size(0) << ") lambda_max " << fmt(before.top.values.at({0}))
          << " -> " << fmt(after.top.values.at({0})) << ", tr/P " << fmt(before.trace_per_parameter) << " -> "
          << fmt(after.trace_per_parameter) << ", test acc " << fmt(accuracy) << " (" << fmt(seconds_since(start), 2)
          << " s)";
  return results.finish(summary.str());
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = kName,
                          .description = "top eigenvalues and SLQ spectral density of an MLP's loss Hessian on "
                                         "digits, before and after training, checked against the dense Hessian",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
