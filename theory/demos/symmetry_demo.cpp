// Conserved quantities of training (Kunin et al. 2021, "Neural Mechanics") on the UCI digits:
// the translation symmetry of a softmax classifier, the scale symmetry of a Linear feeding
// BatchNorm with eps = 0, and the rescale symmetry of a ReLU MLP, each trained by SGD, SGD with
// weight decay, SGD with momentum, and SGD with momentum and weight decay on shuffled minibatches.
// Every step, theory::SymmetryTracker measures each unit's quantity and predicts it by
//  - the exact discrete law (driven by the measured |g|^2 or |b|^2; must hold to 1e-12 relative),
//  - Kunin's continuous-time modified flow (an O(lr) approximation; its error is reported).
// Outputs: one CSV per run (each group's worst errors per step, and the measured quantity with
// both predictions for the units that move most), one check per net (the worst exact-law error
// over its optimizers must stay below 1e-12), and a summary that also reports Kunin's error.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/data.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/symmetry.hpp"

using namespace theta;
using namespace theta::theory;
using theta::demos::fmt;

namespace {

constexpr const char* kName = "symmetry_demo";
constexpr double kTolerance = 1e-12;    // exact laws, relative (Note [Relative error] in symmetry.cpp)
constexpr std::size_t kUnitsPlotted = 4;  // per layer: the units whose quantity moves most
constexpr std::size_t kMaxCsvRows = 500;  // per run (errors: the maximum since the previous row)

struct NetSpec {
  std::string key, title;
};

struct OptimizerSpec {
  std::string key, title;
  nn::SgdOptions options;
};

std::shared_ptr<nn::Sequential> build(const std::string& key, std::int64_t in, std::int64_t classes, Rng& rng) {
  auto net = std::make_shared<nn::Sequential>();
  if (key == "softmax") {
    net->add(std::make_shared<nn::Linear>(in, classes, rng));
  } else if (key == "batchnorm") {
    net->add(std::make_shared<nn::Linear>(in, 16, rng));
    net->add(std::make_shared<nn::BatchNorm1d>(16, nn::NormOptions{.eps = 0.0, .affine = false}));
    net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
    net->add(std::make_shared<nn::Linear>(16, classes, rng));
  } else {
    net = nn::mlp({in, 16, 16, classes}, rng);
  }
  return net;
}

struct GroupResult {
  std::string name;
  double exact_error = 0.0, continuous_error = 0.0;
};

struct RunResult {
  std::string net, optimizer;
  bool momentum = false;
  std::vector<GroupResult> groups;
  double final_loss = 0.0;
};

std::string file_key(const std::string& group) {
  std::string out;
  for (char c : group) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

// The units (flat indices) whose measured quantity spans the widest range over the run.
std::vector<std::int64_t> lively_units(const Tensor& measured) {
  const Tensor flat = measured.reshape_copy({measured.size(0), -1});
  const std::vector<double> range = to_vector(theta::sub(theta::max(flat, {0}), theta::min(flat, {0})));
  std::vector<std::int64_t> order(range.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    return range[static_cast<std::size_t>(a)] > range[static_cast<std::size_t>(b)];
  });
  order.resize(std::min(order.size(), kUnitsPlotted));
  return order;
}

std::vector<double> column(const Tensor& history, std::int64_t unit) {
  return to_vector(history.reshape_copy({history.size(0), -1}).select(1, unit));
}

// CSV rows: every stride-th step and the last one, at most about kMaxCsvRows of them.
std::vector<std::size_t> csv_rows(std::size_t count) {
  const std::size_t stride = std::max<std::size_t>(1, (count - 1 + kMaxCsvRows - 1) / kMaxCsvRows);
  std::vector<std::size_t> rows;
  for (std::size_t k = 0; k < count; k += stride) rows.push_back(k);
  if (rows.back() != count - 1) rows.push_back(count - 1);
  return rows;
}

// Values of v at `rows`; with window_max, the maximum over the steps since the previous row.
std::vector<double> at_rows(const std::vector<double>& v, const std::vector<std::size_t>& rows, bool window_max) {
  std::vector<double> out;
  std::size_t from = 0;
  for (std::size_t r : rows) {
    double x = v[r];
    if (window_max)
      for (std::size_t k = from; k <= r; ++k) x = std::max(x, v[k]);
    out.push_back(x);
    from = r + 1;
  }
  return out;
}

RunResult run(demos::Results& results, const nn::Dataset& data, const NetSpec& net_spec,
              const OptimizerSpec& opt_spec, std::int64_t steps, std::uint64_t seed) {
  Rng rng(seed);
  const std::int64_t classes = 10;
  auto net = build(net_spec.key, data.x.size(1), classes, rng);
  nn::Sgd opt(net->named_parameters(), opt_spec.options);
  SymmetryTracker tracker;
  tracker.track_sequential(*net, true).attach(opt);

  const nn::DataLoader loader(data, {.batch_size = 64, .shuffle = true, .drop_last = true, .seed = seed + 1});
  RunResult r{net_spec.title, opt_spec.title, opt_spec.options.momentum != 0.0, {}, 0.0};
  std::int64_t step = 0;
  for (std::int64_t epoch = 0; step < steps; ++epoch)
    for (const auto& [x, y] : loader.epoch(epoch)) {
      if (step == steps) break;
      opt.zero_grad();
      const autograd::Var loss = nn::cross_entropy((*net)(autograd::Var(x)), y);
      autograd::backward(loss);
      opt.step();
      r.final_loss = loss.item();
      ++step;
    }

  // CSV: each group's worst errors and its plotted units.
  const std::string run_key = net_spec.key + "_" + opt_spec.key;
  const std::vector<std::size_t> rows = csv_rows(static_cast<std::size_t>(steps) + 1);
  std::vector<std::string> header{"step", "t"};
  std::vector<std::vector<double>> columns(2);
  for (std::size_t k : rows) columns[0].push_back(static_cast<double>(k));
  for (std::size_t i = 0; i < tracker.size(); ++i) {
    const ConservedHistory h = tracker.history(i);
    if (i == 0) columns[1] = at_rows(h.time, rows, false);
    const Tensor exact_err = relative_error_per_step(h.measured, h.exact, h.magnitude);
    const Tensor flow_err = relative_error_per_step(h.measured, h.continuous, h.magnitude);
    GroupResult g{h.name, max_relative_error(h.measured, h.exact, h.magnitude),
                  max_relative_error(h.measured, h.continuous, h.magnitude)};
    r.groups.push_back(g);
    const std::string gk = file_key(h.name);
    header.push_back(gk + "_exact_err");
    columns.push_back(at_rows(to_vector(exact_err), rows, true));
    header.push_back(gk + "_continuous_err");
    columns.push_back(at_rows(to_vector(flow_err), rows, true));

    for (std::int64_t u : lively_units(h.measured))
      for (const auto& [what, t] : {std::pair<std::string, Tensor>{"measured", h.measured}, {"exact", h.exact},
                                    {"continuous", h.continuous}}) {
        header.push_back(gk + "_u" + std::to_string(u) + "_" + what);
        columns.push_back(at_rows(column(t, u), rows, false));
      }
  }
  results.write_csv(run_key + ".csv", header, columns);
  return r;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t steps = args.quick ? 200 : 2000;

  nn::Dataset data;
  std::string data_name = "UCI digits (standardised)";
  try {
    data = nn::load_digits();
  } catch (const std::exception& e) {
    demos::progress(std::string("digits unavailable (") + e.what() + "), using random data");
    Rng rng(args.seed + 99);
    data = nn::Dataset{rng.normal({1797, 64}), rng.integers({1797}, 0, 10)};
    data_name = "random Gaussian data";
  }
  data.x = nn::Standardizer::fit(data.x).apply(data.x);

  const std::vector<NetSpec> nets = {{"softmax", "softmax classifier 64-10"},
                                     {"batchnorm", "64-16 Linear + BatchNorm(eps 0) + ReLU + 16-10"},
                                     {"mlp", "ReLU MLP 64-16-16-10"}};
  const std::vector<OptimizerSpec> optimizers = {
      {"sgd", "SGD lr 0.05", {.lr = 0.05}},
      {"sgd_wd", "SGD lr 0.05, wd 0.01", {.lr = 0.05, .weight_decay = 0.01}},
      {"momentum", "SGD lr 0.01, momentum 0.9", {.lr = 0.01, .momentum = 0.9}},
      {"momentum_wd", "SGD lr 0.01, momentum 0.9, wd 0.01", {.lr = 0.01, .momentum = 0.9, .weight_decay = 0.01}},
  };

  std::vector<RunResult> runs;
  std::uint64_t seed = args.seed * 1000 + 1;
  for (const auto& n : nets)
    for (const auto& o : optimizers) {
      demos::progress(n.title + ", " + o.title + ": " + std::to_string(steps) + " steps on " + data_name);
      runs.push_back(run(results, data, n, o, steps, seed++));
    }

  double worst_exact = 0.0, worst_flow_sgd = 0.0, worst_flow_momentum = 0.0;
  std::cout << "run | group | exact-law max rel err | continuous max rel err | final batch loss\n";
  for (const auto& r : runs)
    for (const auto& g : r.groups) {
      std::cout << r.net << ", " << r.optimizer << " | " << g.name << " | " << fmt(g.exact_error, 3) << " | "
                << fmt(g.continuous_error, 3) << " | " << fmt(r.final_loss, 3) << "\n";
      worst_exact = std::max(worst_exact, g.exact_error);
      double& flow = r.momentum ? worst_flow_momentum : worst_flow_sgd;
      flow = std::max(flow, g.continuous_error);
    }

  // One check per net: its symmetry's exact law under every optimizer (NaN fails: `!(x <= tol)`).
  for (const auto& n : nets) {
    double worst = 0.0, worst_flow = 0.0;
    std::string groups;
    bool finite = true;
    for (const auto& r : runs) {
      if (r.net != n.title) continue;
      for (const auto& g : r.groups) {
        finite = finite && std::isfinite(g.exact_error);
        worst = std::max(worst, g.exact_error);
        worst_flow = std::max(worst_flow, g.continuous_error);
        if (groups.find(g.name) == std::string::npos) groups += (groups.empty() ? "" : ", ") + g.name;
      }
    }
    results.check({.id = n.key,
                   .claim = n.title + ": " + groups + " follow the exact discrete laws of SGD, weight decay and "
                                                      "momentum",
                   .measured = "max |Q - Q_law| / magnitude = " + fmt(worst) + " (Kunin's flow: " +
                               fmt(worst_flow) + ", reported)",
                   .predicted = "0 (rounding)",
                   .tolerance = "<= " + fmt(kTolerance, 2) + " relative",
                   .pass = finite && worst <= kTolerance,
                   .limit = kTolerance});
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string summary = "worst exact-law error " + fmt(worst_exact, 3) + " (tolerance " + fmt(kTolerance, 2) +
                              ") over " + std::to_string(runs.size()) + " runs x " + std::to_string(steps) +
                              " steps; Kunin continuous prediction error: SGD " + fmt(worst_flow_sgd, 3) +
                              ", momentum " + fmt(worst_flow_momentum, 3) + " (O(lr), reported); " +
                              fmt(seconds, 3) + " s";
  return results.finish(summary);
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = kName,
                          .description = "translation, scale and rescale conserved quantities of SGD (with weight "
                                         "decay and momentum) on digits, against the exact discrete laws and "
                                         "Kunin's continuous predictions",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
