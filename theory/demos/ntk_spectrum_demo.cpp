// ntk_spectrum_demo: the top of the empirical NTK's spectrum on 50,000 points, where the kernel
// itself (20 GB) is never formed: Lanczos on the NTK operator (K v = J (J^T v), Note [NTK
// operator]). Checked against the formed kernel's eigh on a 2000-point subset, against rows of the
// kernel at full size, against the exact trace (Hutchinson), and against theory: on the sphere the
// kernel's eigenvalues / n approach the Mercer eigenvalues of the infinite-width NTK, degree k of
// the spherical harmonics N(d, k) times (Note [Zonal kernels on the sphere]).

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_operator.hpp"
#include "theory/sphere_spectrum.hpp"

using namespace theta;
using theta::demos::fmt;

namespace {

// One hidden layer: its NTK is an average of width i.i.d. terms whose mean is the analytic kernel,
// so one initialisation is within O(width^-1/2) of it (deeper nets fluctuate more, Hanin & Nica
// 2019). Chunks of 512 samples keep a chunk's [512, 512] activations in cache.
// d = 19 puts the top 20 eigenvalues exactly on degrees 0 and 1 (1 + d harmonics), well apart from
// the 209 of degree 2: Lanczos converges on the top 20 without having to split a cluster.
constexpr std::int64_t kDim = 19, kWidth = 512, kLinearLayers = 2, kTop = 20, kSubset = 2000;
constexpr std::int64_t kChunk = 512;
constexpr double kSigmaW = 1.4142135623730951, kSigmaB = 0.5;

// n points uniform on the sphere |x|^2 = d (the analytic kernel depends on angles only there).
Tensor sphere_points(std::int64_t n, std::uint64_t seed) {
  Rng rng(seed);
  const Tensor x = rng.normal({n, kDim});
  return x / norm(x, 2.0, {1}, true) * std::sqrt(static_cast<double>(kDim));
}

// The operator with a progress line every `every` products (Lanczos runs tens of them).
theory::LinearOperator with_progress(theory::LinearOperator op, const std::string& what, int every) {
  auto count = std::make_shared<int>(0);
  const auto inner = op.apply;
  op.apply = [inner, count, what, every](const Tensor& v) {
    if (++*count % every == 0) demos::progress(what + ": " + std::to_string(*count) + " products K v");
    return inner(v);
  };
  return op;
}

// The predicted top eigenvalues of K / n: mu_k repeated N(d, k) times, largest first; `degree`
// gets the harmonic degree of each.
std::vector<double> predicted_top(const theory::SphereSpectrum& s, std::int64_t count, std::vector<std::int64_t>& degree) {
  std::vector<std::pair<double, std::int64_t>> levels;
  for (std::size_t k = 0; k < s.eigenvalues.size(); ++k)
    for (std::int64_t r = 0; r < s.multiplicities[k]; ++r) levels.emplace_back(s.eigenvalues[k], static_cast<std::int64_t>(k));
  std::stable_sort(levels.begin(), levels.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<double> out;
  degree.clear();
  for (std::int64_t i = 0; i < count && i < static_cast<std::int64_t>(levels.size()); ++i) {
    out.push_back(levels[static_cast<std::size_t>(i)].first);
    degree.push_back(levels[static_cast<std::size_t>(i)].second);
  }
  return out;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const std::int64_t n = args.quick ? 10000 : 50000;
  const Tensor x = sphere_points(n, args.seed + 1);
  Rng rng(args.seed + 2);
  auto net = nn::mlp({kDim, kWidth, 1}, rng,
                     {.activation = nn::ActivationKind::relu,
                      .parameterization = nn::Parameterization::ntk,
                      .sigma_w = kSigmaW,
                      .sigma_b = kSigmaB});

  // ---- 1. Lanczos on the operator against the formed kernel, on a subset ----------------------
  const Tensor x_small = x.slice(0, 0, kSubset);
  demos::progress("subset of " + std::to_string(kSubset) + " points: formed kernel and its eigh");
  const Tensor k_small = theory::empirical_ntk_matrix(*net, x_small, x_small);
  std::vector<double> all_small = to_vector(theory::eigh(k_small).values);
  std::reverse(all_small.begin(), all_small.end());
  const theory::EigenResult small =
      theory::lanczos_top_k(theory::ntk_operator(net, x_small, {.chunk = kChunk}), kTop, {.iterations = 80});
  double subset_error = 0.0;
  const std::vector<double> small_values = to_vector(small.values);
  for (std::int64_t i = 0; i < kTop; ++i)
    subset_error = std::max(subset_error, std::abs(small_values[static_cast<std::size_t>(i)] -
                                                   all_small[static_cast<std::size_t>(i)]) /
                                              all_small[static_cast<std::size_t>(i)]);
  results.check({.id = "lanczos_vs_eigh",
                 .claim = "on " + std::to_string(kSubset) + " points, Lanczos on K v finds the formed kernel's top " +
                          std::to_string(kTop) + " eigenvalues",
                 .measured = "max relative difference " + fmt(subset_error, 2),
                 .predicted = "0",
                 .tolerance = "<= 1e-9",
                 .pass = subset_error <= 1e-9,
                 .limit = 1e-9});

  // ---- 2. the operator at full size against rows of the kernel --------------------------------
  const theory::LinearOperator op = theory::ntk_operator(net, x, {.chunk = kChunk});
  const Tensor v = Rng(args.seed + 3).normal({n});
  demos::progress(std::to_string(n) + " points: one product K v against four rows of the kernel");
  const Tensor kv = op.apply(v);
  const std::vector<std::int64_t> rows = {0, n / 3, n / 2, n - 1};
  // The rows by the structured kernel, a block of columns at a time (memory stays at one block).
  const Tensor x_rows = index_select(x, 0, from_indices(rows));
  Tensor rows_times_v = zeros({static_cast<std::int64_t>(rows.size()), 1});
  for (std::int64_t b = 0; b < n; b += 4096) {
    const std::int64_t e = std::min(n, b + 4096);
    rows_times_v = rows_times_v + matmul(theory::empirical_ntk_matrix(*net, x_rows, x.slice(0, b, e)),
                                         v.slice(0, b, e).reshape({e - b, 1}));
  }
  const std::vector<double> want = to_vector(rows_times_v);
  const std::vector<double> got = to_vector(kv);
  double row_error = 0.0, row_scale = 0.0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    row_error = std::max(row_error, std::abs(got[static_cast<std::size_t>(rows[r])] - want[r]));
    row_scale = std::max(row_scale, std::abs(want[r]));
  }
  row_error /= row_scale;
  results.check({.id = "operator_rows",
                 .claim = "at n = " + std::to_string(n) + ", (K v)_i equals the kernel's row i times v",
                 .measured = "max relative difference " + fmt(row_error, 2) + " over 4 rows",
                 .predicted = "0",
                 .tolerance = "<= 1e-10",
                 .pass = row_error <= 1e-10,
                 .limit = 1e-10});

  // ---- 3. the top of the spectrum at full size -------------------------------------------------
  demos::progress(std::to_string(n) + " points: Lanczos, 60 steps and " + std::to_string(kTop) + " residual checks");
  const theory::EigenResult top =
      theory::lanczos_top_k(with_progress(op, "Lanczos", 10), kTop, {.iterations = 60, .seed = args.seed});
  const std::vector<double> values = to_vector(top.values), residuals = to_vector(top.residuals);
  const double worst_residual = *std::max_element(residuals.begin(), residuals.end()) / values[0];
  results.check({.id = "residuals",
                 .claim = "the top " + std::to_string(kTop) + " Ritz pairs at n = " + std::to_string(n) +
                          " are eigenpairs",
                 .measured = "max |K x - lambda x| / lambda_1 = " + fmt(worst_residual, 2),
                 .predicted = "0",
                 .tolerance = "<= 1e-8",
                 .pass = worst_residual <= 1e-8,
                 .limit = 1e-8});

  // ---- 4. Hutchinson's trace against the exact one ---------------------------------------------
  // The top eigenvalue holds most of the trace, and Hutchinson's variance (2 sum_{i != j} K_ij^2)
  // with it: the plain estimate is loose. Deflated, tr K = sum of the top Ritz values +
  // tr(P K P) with P = I - Q Q^T projecting the Ritz vectors Q out, and only the small remainder
  // is estimated.
  demos::progress(std::to_string(n) + " points: Hutchinson's trace, 8 probes plain and 8 deflated");
  double trace = 0.0;  // the kernel's diagonal, a block of points at a time
  for (std::int64_t b = 0; b < n; b += 4096)
    trace += sum(theory::empirical_ntk_diagonal(*net, x.slice(0, b, std::min(n, b + 4096)))).item<double>();
  const theory::TraceEstimate plain = theory::hutchinson_trace(op, 8, args.seed + 4);
  const Tensor q = top.vectors;  // [n, kTop], orthonormal columns
  const auto project = [q](const Tensor& w) { return w - matmul(q, matmul(q.t(), w.reshape({-1, 1}))).reshape({-1}); };
  const theory::LinearOperator deflated{op.size, [&op, project](const Tensor& w) { return project(op.apply(project(w))); }};
  const theory::TraceEstimate rest = theory::hutchinson_trace(deflated, 8, args.seed + 5);
  const double top_sum = std::accumulate(values.begin(), values.end(), 0.0);
  const double estimate = top_sum + rest.mean;
  const double z_plain = std::abs(plain.mean - trace) / plain.std_error;
  const double z = std::abs(estimate - trace) / rest.std_error;
  results.check({.id = "trace",
                 .claim = "Hutchinson's trace of K v (deflated by the top Ritz pairs) matches the exact trace",
                 .measured = "deflated " + fmt(estimate, 5) + " +- " + fmt(rest.std_error, 2) + " (" + fmt(z, 2) +
                             " standard errors); plain " + fmt(plain.mean, 5) + " +- " + fmt(plain.std_error, 2) +
                             " (" + fmt(z_plain, 2) + "); exact " + fmt(trace, 5),
                 .predicted = "the exact trace (sum of the kernel's diagonal)",
                 .tolerance = "deflated within 4 standard errors, its error bar <= 2% of the trace (plain: reported)",
                 .pass = z <= 4.0 && rest.std_error <= 0.02 * trace});

  // ---- 5. theory: the Mercer eigenvalues of the infinite-width NTK on the sphere ---------------
  const theory::SphereSpectrum mercer =
      theory::analytic_ntk_sphere_spectrum(kDim, 3, kLinearLayers, nn::ActivationKind::relu, kSigmaW, kSigmaB);
  std::vector<std::int64_t> degree;
  const std::vector<double> predicted = predicted_top(mercer, kTop, degree);
  // Blocks of equal predicted degree that lie whole inside the top kTop: their mean eigenvalue / n
  // against mu_k; then the step after the last whole block, on the subset's exact spectrum (the
  // eigenvalue after the top kTop is not one Lanczos was asked to converge).
  std::ostringstream blocks;
  bool blocks_ok = true;
  std::int64_t block_end = 0;
  for (std::int64_t begin = 0; begin < kTop;) {
    std::int64_t end = begin;
    while (end < kTop && degree[static_cast<std::size_t>(end)] == degree[static_cast<std::size_t>(begin)]) ++end;
    const std::int64_t k = degree[static_cast<std::size_t>(begin)];
    if (end - begin < mercer.multiplicities[static_cast<std::size_t>(k)]) break;  // cut by the top kTop
    double mean = 0.0;
    for (std::int64_t i = begin; i < end; ++i) mean += values[static_cast<std::size_t>(i)] / static_cast<double>(n);
    mean /= static_cast<double>(end - begin);
    const double mu = mercer.eigenvalues[static_cast<std::size_t>(k)];
    const double rel = std::abs(mean - mu) / mu;
    blocks_ok = blocks_ok && rel <= 0.15;
    blocks << " degree " << k << " (" << end - begin << " eigenvalues): mean " << fmt(mean, 4) << " vs mu " << fmt(mu, 4)
           << ";";
    block_end = end;
    begin = end;
  }
  results.check({.id = "mercer_levels",
                 .claim = "eigenvalues / n of each whole harmonic degree in the top " + std::to_string(kTop) +
                          " average to the infinite-width Mercer eigenvalue",
                 .measured = blocks.str(),
                 .predicted = "mu_k of the analytic NTK (Funk-Hecke)",
                 .tolerance = "within 15% (one init at width 512: the kernel fluctuates by O(width^-1/2))",
                 .pass = blocks_ok && block_end > 1});
  const auto at = [&all_small](std::int64_t i) { return all_small[static_cast<std::size_t>(i)]; };
  const double gap = at(block_end - 1) / at(block_end);
  double inside = 1.0;
  for (std::int64_t i = 1; i + 1 < block_end; ++i) inside = std::max(inside, at(i) / at(i + 1));
  results.check({.id = "degree_gap",
                 .claim = "on the " + std::to_string(kSubset) + "-point subset (eigh) the spectrum steps down after the first " +
                          std::to_string(block_end) + " eigenvalues (degrees 0 and 1: 1 + d)",
                 .measured = "lambda_" + std::to_string(block_end) + " / lambda_" + std::to_string(block_end + 1) +
                             " = " + fmt(gap) + "; largest ratio inside the degree-1 block " + fmt(inside),
                 .predicted = "mu_1 / mu_2 = " + fmt(mercer.eigenvalues[1] / mercer.eigenvalues[2]),
                 .tolerance = ">= 1.5 and above every ratio inside the block",
                 .pass = gap >= 1.5 && gap > inside});

  // ---- files --------------------------------------------------------------------------------
  std::vector<double> index_small, subset_over_n;
  for (std::size_t i = 0; i < all_small.size(); ++i) {
    index_small.push_back(static_cast<double>(i + 1));
    subset_over_n.push_back(all_small[i] / static_cast<double>(kSubset));
  }
  results.write_csv("subset_spectrum.csv", {"index", "eigenvalue_over_n"}, {index_small, subset_over_n});
  std::vector<double> index_top, top_over_n, relative_residual, degrees;
  for (std::int64_t i = 0; i < kTop; ++i) {
    index_top.push_back(static_cast<double>(i + 1));
    top_over_n.push_back(values[static_cast<std::size_t>(i)] / static_cast<double>(n));
    relative_residual.push_back(residuals[static_cast<std::size_t>(i)] / values[0]);
    degrees.push_back(static_cast<double>(degree[static_cast<std::size_t>(i)]));
  }
  results.write_csv("top_eigenvalues.csv", {"index", "eigenvalue_over_n", "predicted_mu", "degree", "relative_residual"},
                    {index_top, top_over_n, predicted, degrees, relative_residual});
  std::vector<double> k_axis, mu, multiplicity;
  for (std::size_t k = 0; k < mercer.eigenvalues.size(); ++k) {
    k_axis.push_back(static_cast<double>(k));
    mu.push_back(mercer.eigenvalues[k]);
    multiplicity.push_back(static_cast<double>(mercer.multiplicities[k]));
  }
  results.write_csv("mercer.csv", {"degree", "mu", "multiplicity"}, {k_axis, mu, multiplicity});

  std::ostringstream summary;
  summary << "n = " << n << ": lambda_1 / n = " << fmt(values[0] / static_cast<double>(n), 4) << " (mu_0 "
          << fmt(mercer.eigenvalues[0], 4) << "), step after " << block_end << " eigenvalues x" << fmt(gap)
          << ", Lanczos vs eigh " << fmt(subset_error, 2) << ", residuals " << fmt(worst_residual, 2);
  return results.finish(summary.str());
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = "ntk_spectrum_demo",
                          .description = "top NTK eigenvalues on 50,000 points by Lanczos on K v, against eigh, "
                                         "the exact trace and the sphere's Mercer eigenvalues",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
