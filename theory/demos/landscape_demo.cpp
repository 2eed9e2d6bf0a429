// Loss landscapes of an MLP trained on the UCI digits (Li, Xu, Taylor, Studer and Goldstein 2018):
//  1. a 64-256-256-10 tanh MLP trained with momentum SGD on all 1797 standardised digits, its
//     parameters recorded after every epoch;
//  2. the loss on a 2-D slice through the trained solution along two filter-normalised Gaussian
//     directions, on a 21 x 21 grid evaluated on all threads (timed), the 1-D interpolation from
//     the initialisation to the solution, and the loss on the plane of the trajectory's top two
//     principal directions with the trajectory projected onto it;
//  3. the checks: (a) a net with BatchNorm (eps 0) after its first Linear: rescaling that layer by
//     c in {0.1, 10} leaves the filter-normalised 1-D slice unchanged, but not the slice along the
//     same direction left unnormalised; (b) the second difference along a direction equals
//     d^T H d from a Hessian-vector product (the MLP uses tanh so the loss is smooth: with ReLU a
//     step of h crosses kinks of some of its 900k units and the second difference is not H's),
//     and d^T H d / |d|^2 is at most the top eigenvalue from Lanczos;
//     (c) the PCA plane by SVD equals the one from the eigendecomposition of the Gram matrix
//     M M^T (the covariance M^T M has the same nonzero eigenvalues, and [P, P] would be 57 GB
//     here), explained-variance ratios sum to <= 1, and the final point projects to the origin;
//     (d) the 21 x 21 grid takes at most 20 s of wall time.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/transforms.hpp"
#include "nn/data.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "nn/train.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/rng.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/hessian.hpp"
#include "theory/landscape_directions.hpp"
#include "theory/landscape_grid.hpp"
#include "theory/trajectory_pca.hpp"

using namespace theta;
using namespace theta::theory;
using theta::demos::fmt;

namespace {

constexpr const char* kName = "landscape_demo";
constexpr double kInvarianceTolerance = 1e-10;  // filter-normalised slices, relative to their range
constexpr double kRawDifference = 0.1;          // unnormalised slices must differ by more than this
constexpr double kCurvatureTolerance = 1e-6;    // second difference against d^T H d, relative
constexpr double kStep = 1e-4;                  // h of the second difference
constexpr double kPcaTolerance = 1e-10;         // SVD against the Gram route
constexpr double kGridSeconds = 20.0;           // the 21 x 21 grid's wall-time budget

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nn::LossFn cross_entropy_loss() {
  return [](const autograd::Var& logits, const Tensor& labels) { return nn::cross_entropy(logits, labels); };
}

double range_of(const Tensor& t) { return max(t).item() - min(t).item(); }
double max_abs(const Tensor& t) { return max(abs(t)).item(); }

// ---- training with a recorded trajectory ------------------------------------------------------

struct Trained {
  Tensor trajectory{};              // [epochs + 1, P]: the initialisation, then after every epoch
  std::vector<double> epoch_loss{};  // mean batch loss of every epoch
  double seconds = 0.0;
};

// Trains `model` with momentum SGD, recording its parameters before training and after each epoch.
Trained train_recording(nn::Module& model, const nn::Dataset& data, std::int64_t epochs, std::uint64_t seed) {
  const auto start = std::chrono::steady_clock::now();
  Trained out;
  std::vector<Tensor> points{parameter_vector(model)};
  nn::Sgd sgd(model.named_parameters(), {.lr = 0.02, .momentum = 0.9});
  const nn::DataLoader loader(data, {.batch_size = 64, .shuffle = true, .seed = seed});
  nn::fit(model, sgd, loader, cross_entropy_loss(),
          {.epochs = epochs, .quiet = true, .on_epoch = [&](const nn::EpochLog& log) {
             points.push_back(parameter_vector(model));
             out.epoch_loss.push_back(log.train_loss);
           }});
  out.trajectory = stack(points);
  out.seconds = seconds_since(start);
  return out;
}

// ---- check (a): BatchNorm scale invariance ------------------------------------------------------

struct ScaleSlices {
  std::vector<double> scales;     // c = 1 first
  std::vector<Tensor> filtered;   // per c: the filter-normalised slice [m]
  std::vector<Tensor> raw;        // per c: the unnormalised slice [m]
  double filtered_worst = 0.0;    // max over c of max |L_c - L_1| / range(L_1)
  double raw_least = 0.0;         // min over c of the same for the raw slices
  std::int64_t parameters = 0;
};

// The flat-vector range [begin, end) of the named parameters whose names start with `prefix`
// (consecutive, as the parameters of one module are).
std::pair<std::int64_t, std::int64_t> parameter_range(const nn::Module& model, const std::string& prefix) {
  std::int64_t offset = 0, begin = -1, end = -1;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.rfind(prefix, 0) == 0) {
      if (begin < 0) begin = offset;
      end = offset + p.numel();
    }
    offset += p.numel();
  }
  THETA_CHECK(begin >= 0, std::invalid_argument, kName, ": no parameter named ", prefix, "*");
  return {begin, end};
}

// 64-128-BatchNorm(eps 0)-tanh-10, trained briefly, then 1-D slices through the solution with
// its first Linear rescaled by c: along the filter-normalised direction at each rescaled point,
// and along one fixed direction (the same draw, at the length of the c = 1 normalised one).
// BatchNorm stays in training mode, normalising with the statistics of all samples as one batch.
ScaleSlices batchnorm_slices(const nn::Dataset& data, const Tensor& alphas, std::int64_t epochs, std::uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(64, 128, rng));
  net->add(std::make_shared<nn::BatchNorm1d>(128, nn::NormOptions{.eps = 0.0}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Linear>(128, 10, rng));
  train_recording(*net, data, epochs, seed + 1);
  net->train();

  ScaleSlices out;
  out.parameters = net->parameter_count();
  const Tensor origin = parameter_vector(*net);
  const auto [begin, end] = parameter_range(*net, "layers.0.");
  const Tensor draw = rng.normal({origin.size(0)});
  const Tensor raw = draw * (norm(filter_normalize(*net, draw, origin)).item() / norm(draw).item());
  for (double c : {1.0, 0.1, 10.0}) {
    const Tensor scaled = origin.clone();
    scaled.slice(0, begin, end).copy_(origin.slice(0, begin, end) * c);
    const Tensor d = filter_normalize(*net, draw, scaled);
    out.scales.push_back(c);
    out.filtered.push_back(loss_slice(*net, data.x, data.y, cross_entropy_loss(), scaled, d, alphas));
    out.raw.push_back(loss_slice(*net, data.x, data.y, cross_entropy_loss(), scaled, raw, alphas));
  }
  out.raw_least = std::numeric_limits<double>::infinity();
  for (std::size_t i = 1; i < out.scales.size(); ++i) {
    out.filtered_worst =
        std::max(out.filtered_worst, max_abs(out.filtered[i] - out.filtered[0]) / range_of(out.filtered[0]));
    out.raw_least = std::min(out.raw_least, max_abs(out.raw[i] - out.raw[0]) / range_of(out.raw[0]));
  }
  return out;
}

// ---- check (b): curvature along a direction ---------------------------------------------------

struct Curvature {
  double second_difference = 0.0;
  double hvp = 0.0;  // d^T H d
  double relative_error() const { return std::abs(second_difference - hvp) / std::abs(hvp); }
};

Curvature curvature_along(const std::shared_ptr<nn::Sequential>& model, const nn::Dataset& data, const Tensor& origin,
                          const Tensor& d) {
  Curvature c;
  const Tensor l = loss_slice(*model, data.x, data.y, cross_entropy_loss(), origin, d,
                              from_vector({-kStep, 0.0, kStep}));
  c.second_difference = (l.at({0}) - 2.0 * l.at({1}) + l.at({2})) / (kStep * kStep);
  const std::vector<Tensor> params = parameter_values(*model);
  const Tensor hd = flatten_tensors(autograd::hvp(module_loss(model, data.x, data.y, cross_entropy_loss()), params,
                                                  unflatten_like(d, params)));
  c.hvp = dot(d, hd).item();
  return c;
}

// ---- outputs -----------------------------------------------------------------------------------

// A grid as long-format columns (x, y, loss), row i of `losses` for xs[i].
void write_grid(demos::Results& results, const std::string& file, const std::vector<std::string>& header,
                const Tensor& xs, const Tensor& ys, const Tensor& losses) {
  std::vector<double> a, b, l;
  for (std::int64_t i = 0; i < xs.size(0); ++i)
    for (std::int64_t j = 0; j < ys.size(0); ++j) {
      a.push_back(xs.at({i}));
      b.push_back(ys.at({j}));
      l.push_back(losses.at({i, j}));
    }
  results.write_csv(file, header, {a, b, l});
}

// Evenly spaced points covering [lo, hi] of the trajectory's coordinates with a margin of 20%.
Tensor covering(const Tensor& coordinates, std::int64_t points) {
  const double lo = min(coordinates).item(), hi = max(coordinates).item(), margin = 0.2 * (hi - lo);
  return linspace(lo - margin, hi + margin, points);
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const auto start = std::chrono::steady_clock::now();
  const bool quick = args.quick;
  const std::int64_t grid_points = quick ? 11 : 21;
  const std::int64_t epochs = quick ? 8 : 30;

  nn::Dataset digits = nn::load_digits();
  digits.x = nn::Standardizer::fit(digits.x).apply(digits.x);
  const nn::LossFn loss = cross_entropy_loss();

  // 1. Training, recording the trajectory.
  Rng rng(args.seed);
  auto model = nn::mlp({64, 256, 256, 10}, rng, {.activation = nn::ActivationKind::tanh});
  demos::progress("training 64-256-256-10 tanh on " + std::to_string(digits.size()) + " digits (SGD lr 0.02, "
                  "momentum 0.9, batch 64, " + std::to_string(epochs) + " epochs)");
  const Trained trained = train_recording(*model, digits, epochs, args.seed + 1);
  const Tensor solution = parameter_vector(*model);
  demos::progress("trained in " + fmt(trained.seconds, 2) + " s: last epoch loss " + fmt(trained.epoch_loss.back()));

  // 2. The 2-D slice along filter-normalised directions, timed.
  Rng direction_rng(args.seed + 2);
  const Tensor d1 = random_direction(*model, direction_rng), d2 = random_direction(*model, direction_rng);
  const Tensor axis = linspace(-1.0, 1.0, grid_points);
  const int threads = get_num_threads();
  const std::string thread_count = std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  demos::progress(std::to_string(grid_points) + " x " + std::to_string(grid_points) + " grid on " +
                  thread_count);
  const auto grid_start = std::chrono::steady_clock::now();
  const Tensor surface = loss_surface(*model, digits.x, digits.y, loss, solution, d1, d2, axis, axis);
  const double grid_seconds = seconds_since(grid_start);
  demos::progress("grid done in " + fmt(grid_seconds, 3) + " s; loss at the centre " +
                  fmt(surface.at({grid_points / 2, grid_points / 2})) + ", at the corners up to " +
                  fmt(max(surface).item()));
  write_grid(results, "landscape_surface.csv", {"alpha", "beta", "loss"}, axis, axis, surface);

  const Tensor path_alphas = linspace(-0.25, 1.25, quick ? 16 : 31);
  const Tensor path = loss_interpolation(*model, digits.x, digits.y, loss, trained.trajectory.select(0, 0), solution,
                                         path_alphas);
  results.write_csv("landscape_interpolation.csv", {"alpha", "loss"}, {to_vector(path_alphas), to_vector(path)});

  // The PCA plane of the trajectory, both routes.
  demos::progress("PCA of the trajectory [" + std::to_string(trained.trajectory.size(0)) + ", " +
                  std::to_string(trained.trajectory.size(1)) + "]");
  const TrajectoryPca pca = trajectory_pca(trained.trajectory, 2, PcaMethod::svd);
  const TrajectoryPca gram = trajectory_pca(trained.trajectory, 2, PcaMethod::gram);
  const double pca_error =
      std::max({max_abs(pca.directions - gram.directions),
                max_abs(pca.singular_values - gram.singular_values) / pca.singular_values.at({0}),
                max_abs(pca.explained_variance_ratio - gram.explained_variance_ratio)});
  const double ratio_sum = sum(pca.explained_variance_ratio).item();
  const double final_point = max_abs(project_onto(pca, solution));
  const Tensor pc1 = covering(pca.coordinates.select(1, 0), grid_points);
  const Tensor pc2 = covering(pca.coordinates.select(1, 1), grid_points);
  demos::progress("loss on the PCA plane (" + std::to_string(grid_points) + " x " + std::to_string(grid_points) + ")");
  const Tensor pca_surface = loss_surface(*model, digits.x, digits.y, loss, pca.origin, pca.directions.select(0, 0),
                                          pca.directions.select(0, 1), pc1, pc2);
  write_grid(results, "landscape_pca_surface.csv", {"pc1", "pc2", "loss"}, pc1, pc2, pca_surface);
  std::vector<double> epoch_index, epoch_loss{std::nan("")};
  for (std::int64_t t = 0; t < trained.trajectory.size(0); ++t) epoch_index.push_back(static_cast<double>(t));
  epoch_loss.insert(epoch_loss.end(), trained.epoch_loss.begin(), trained.epoch_loss.end());
  results.write_csv("landscape_trajectory.csv", {"epoch", "pc1", "pc2", "epoch_train_loss"},
                    {epoch_index, to_vector(pca.coordinates.select(1, 0)), to_vector(pca.coordinates.select(1, 1)),
                     epoch_loss});
  results.write_csv("landscape_pca.csv", {"component", "singular_value_svd", "singular_value_gram", "explained_ratio"},
                    {{1.0, 2.0}, to_vector(pca.singular_values), to_vector(gram.singular_values),
                     to_vector(pca.explained_variance_ratio)});

  // 3a. BatchNorm scale invariance.
  demos::progress("BatchNorm (eps 0) net: 1-D slices with its first layer rescaled by 0.1 and 10");
  const Tensor slice_alphas = linspace(-1.0, 1.0, quick ? 21 : 41);
  const ScaleSlices bn = batchnorm_slices(digits, slice_alphas, quick ? 2 : 5, args.seed + 3);
  std::vector<std::string> slice_header{"alpha"};
  std::vector<std::vector<double>> slice_columns{to_vector(slice_alphas)};
  for (std::size_t i = 0; i < bn.scales.size(); ++i) {
    slice_header.push_back("filter_c" + fmt(bn.scales[i]));
    slice_columns.push_back(to_vector(bn.filtered[i]));
  }
  for (std::size_t i = 0; i < bn.scales.size(); ++i) {
    slice_header.push_back("raw_c" + fmt(bn.scales[i]));
    slice_columns.push_back(to_vector(bn.raw[i]));
  }
  results.write_csv("landscape_batchnorm_slices.csv", slice_header, slice_columns);

  // 3b. Curvature along both plotting directions.
  demos::progress("second differences against Hessian-vector products");
  const Curvature c1 = curvature_along(model, digits, solution, d1), c2 = curvature_along(model, digits, solution, d2);
  const double curvature_error = std::max(c1.relative_error(), c2.relative_error());
  // The plotting directions against the sharpest one: the Rayleigh quotient d^T H d / |d|^2 is at
  // most lambda_max. Lanczos' top Ritz value is itself at most lambda_max, so checking against it
  // is the stronger inequality.
  demos::progress("Lanczos for the top Hessian eigenvalue at the solution");
  const EigenResult top = lanczos_top_k(
      hessian_operator(module_loss(model, digits.x, digits.y, loss), parameter_values(*model)), 1,
      {.iterations = quick ? 20 : 40, .seed = args.seed + 4});
  const double lambda_max = top.values.at({0});
  const double rayleigh = std::max(c1.hvp / dot(d1, d1).item(), c2.hvp / dot(d2, d2).item());

  results.check({.id = "batchnorm_filter_invariant",
                 .claim = "with BatchNorm (eps 0) after a layer, rescaling that layer by c in {0.1, 10} leaves the "
                          "filter-normalised 1-D slice unchanged (64-128-BN-tanh-10, P = " +
                          std::to_string(bn.parameters) + ")",
                 .measured = "max |L_c - L_1| / range(L_1) = " + fmt(bn.filtered_worst, 2),
                 .predicted = "0 (L(c theta + alpha c d) = L(theta + alpha d))",
                 .tolerance = "<= " + fmt(kInvarianceTolerance),
                 .pass = bn.filtered_worst <= kInvarianceTolerance,
                 .limit = kInvarianceTolerance});
  results.check({.id = "batchnorm_raw_changes",
                 .claim = "the same rescaling changes the slice along the unnormalised direction",
                 .measured = "min over c of max |L_c - L_1| / range(L_1) = " + fmt(bn.raw_least),
                 .predicted = "a different slice (the step is relatively 1/c times larger in the layer)",
                 .tolerance = "> " + fmt(kRawDifference),
                 .pass = bn.raw_least > kRawDifference,
                 .limit = kRawDifference});
  results.check({.id = "second_difference_hvp",
                 .claim = "[L(theta + h d) - 2 L(theta) + L(theta - h d)] / h^2 = d^T H d along both filter-"
                          "normalised directions (h = 1e-4, trained 64-256-256-10)",
                 .measured = "max relative error " + fmt(curvature_error, 2) + " (d^T H d = " + fmt(c1.hvp, 6) +
                             ", " + fmt(c2.hvp, 6) + ")",
                 .predicted = "0 (+ O(h^2))",
                 .tolerance = "<= " + fmt(kCurvatureTolerance),
                 .pass = curvature_error <= kCurvatureTolerance,
                 .limit = kCurvatureTolerance});
  results.check({.id = "curvature_below_lambda_max",
                 .claim = "the curvature along the plotting directions is at most the Hessian's largest "
                          "eigenvalue: d^T H d / |d|^2 <= lambda_max (Lanczos)",
                 .measured = "max d^T H d / |d|^2 = " + fmt(rayleigh) + ", lambda_max = " + fmt(lambda_max) +
                             " (residual " + fmt(top.residuals.at({0}), 2) + ")",
                 .predicted = "<= lambda_max (random directions see a small part of the sharpest curvature)",
                 .tolerance = "ratio <= 1",
                 .pass = rayleigh <= lambda_max,
                 .limit = 1.0});
  results.check({.id = "pca_svd_gram",
                 .claim = "the trajectory's PCA plane by SVD equals the eigendecomposition route (M M^T, " +
                          std::to_string(trained.trajectory.size(0)) + " points of P = " +
                          std::to_string(trained.trajectory.size(1)) + ")",
                 .measured = "max difference of directions, relative singular values and ratios " + fmt(pca_error, 2),
                 .predicted = "0",
                 .tolerance = "<= " + fmt(kPcaTolerance),
                 .pass = pca_error <= kPcaTolerance,
                 .limit = kPcaTolerance});
  results.check({.id = "pca_ratios",
                 .claim = "explained-variance ratios sum to at most 1 and the final point projects to the origin",
                 .measured = "ratios " + fmt(pca.explained_variance_ratio.at({0})) + " + " +
                             fmt(pca.explained_variance_ratio.at({1})) + " = " + fmt(ratio_sum, 6) +
                             ", |projection of the final point| = " + fmt(final_point, 2),
                 .predicted = "sum <= 1, projection 0",
                 .tolerance = "sum <= 1, projection == 0",
                 .pass = ratio_sum <= 1.0 && final_point == 0.0,
                 .limit = 1.0});
  if (!quick)
    results.check({.id = "grid_time",
                   .claim = "a 21 x 21 grid of full-batch losses (1797 digits, 64-256-256-10) fits in 20 s on " +
                            thread_count + " (wall time on a shared machine)",
                   .measured = fmt(grid_seconds, 3) + " s",
                   .predicted = "441 forward passes of ~0.3 GFLOP each",
                   .tolerance = "<= " + fmt(kGridSeconds) + " s",
                   .pass = grid_seconds <= kGridSeconds,
                   .limit = kGridSeconds});

  std::ostringstream summary;
  summary << "BN slices: filter-normalised " << fmt(bn.filtered_worst, 2) << " (tol " << fmt(kInvarianceTolerance)
          << "), raw " << fmt(bn.raw_least) << " (> " << fmt(kRawDifference) << "); second difference vs HVP "
          << fmt(curvature_error, 2) << ", curvature / lambda_max " << fmt(rayleigh / lambda_max, 2)
          << "; PCA SVD vs Gram " << fmt(pca_error, 2) << ", explained "
          << fmt(ratio_sum) << "; " << grid_points << "x" << grid_points << " grid " << fmt(grid_seconds, 3)
          << " s on " << thread_count << " (" << fmt(seconds_since(start), 3) << " s)";
  return results.finish(summary.str());
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = kName,
                          .description = "loss landscapes of an MLP trained on digits: filter-normalised 2-D slice, "
                                         "interpolation and the PCA plane of the trajectory, with BatchNorm scale "
                                         "invariance, curvature and PCA checks",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
