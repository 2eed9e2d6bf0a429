// Representation similarity (Kornblith, Norouzi, Lee and Hinton 2019), measured on two MLPs
// 64-256x8-10 trained on the handwritten digits from different seeds (initialisation and batch
// order):
//  1. linear CKA's feature form equals its Gram (HSIC) form on every pair of hidden layers;
//  2. CKA is invariant to an orthogonal map with isotropic scaling, and not to a general invertible
//     map;
//  3. CKA finds corresponding layers more often than CCA does; the layers it confuses are ones the
//     net itself represents almost alike (from the third hidden layer on, these MLPs' layers form
//     a block, so Kornblith et al.'s near-perfect identification in CNNs is not reproduced here);
//  4. CKA is not 0 for unrelated features: independent Gaussian features of width p on n examples
//     score about p / (n + p), and each layer against the other net's layer with its rows
//     shuffled is reported as the baseline;
//  5. CCA is degenerate when the width reaches the number of examples: on 200 probe digits every
//     pair of 256-wide layers, matched or not, has mean canonical correlation 1.
// Note [Linear CKA] in theory/similarity.hpp has the formulas.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "nn/data.hpp"
#include "nn/eval.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "nn/train.hpp"
#include "tensor/ops.hpp"
#include "theory/demos/demo_common.hpp"
#include "theory/linalg.hpp"
#include "theory/similarity.hpp"

using namespace theta;
using theta::autograd::Var;
using theta::demos::fmt;

namespace {

constexpr std::int64_t kHidden = 8;
constexpr std::int64_t kWidth = 256;
constexpr std::int64_t kCcaProbes = 200;  // fewer than the width: the regime where CCA says 1

// A ReLU MLP 64-256x8-10 with He-normal weights and zero biases (the default uniform init shrinks
// a ReLU signal by 6x in variance per layer, which eight layers do not survive).
std::shared_ptr<nn::Sequential> make_net(Rng& rng) {
  std::vector<std::int64_t> widths{64};
  for (std::int64_t l = 0; l < kHidden; ++l) widths.push_back(kWidth);
  widths.push_back(10);
  auto net = nn::mlp(widths, rng);
  for (const auto& [name, p] : net->named_parameters()) {
    const bool weight = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    p.value().copy_(weight ? nn::init::he_normal(p.value().shape(), rng) : zeros(p.value().shape()));
  }
  return net;
}

struct TrainedNet {
  std::shared_ptr<nn::Sequential> net;
  double train_accuracy = 0.0, test_accuracy = 0.0;
};

TrainedNet train_net(std::uint64_t seed, const nn::Split& split, std::int64_t epochs) {
  Rng rng(seed);
  TrainedNet t{make_net(rng)};
  nn::Adam adam(t.net->named_parameters(), {.lr = 1e-3});
  const nn::DataLoader loader(split.train, {.batch_size = 64, .shuffle = true, .seed = seed + 1});
  nn::fit(*t.net, adam, loader, [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); },
          {.epochs = epochs, .quiet = true});
  t.train_accuracy = nn::accuracy(nn::predict(*t.net, split.train.x), split.train.y);
  t.test_accuracy = nn::accuracy(nn::predict(*t.net, split.test.x), split.test.y);
  return t;
}

// The activations after each hidden layer's ReLU on x: kHidden matrices [n, 256].
std::vector<Tensor> hidden_representations(nn::Sequential& net, const Tensor& x) {
  nn::EvalGuard eval(net);
  std::vector<Tensor> out;
  for (std::int64_t l = 1; l <= kHidden; ++l)
    out.push_back(net.forward_prefix(Var(x), static_cast<std::size_t>(2 * l)).value());
  return out;
}

std::vector<Tensor> first_rows(const std::vector<Tensor>& reps, std::int64_t rows) {
  std::vector<Tensor> out;
  for (const Tensor& r : reps) out.push_back(r.slice(0, 0, rows));
  return out;
}

// How many rows i have their largest entry at column i.
std::int64_t diagonal_matches(const Tensor& m) {
  std::int64_t matches = 0;
  for (std::int64_t i = 0; i < m.size(0); ++i) matches += argmax(m.select(0, i), 0).item<std::int64_t>() == i;
  return matches;
}

Tensor random_orthogonal(std::int64_t p, Rng& rng) { return theory::svd(rng.normal({p, p})).u; }

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const nn::Dataset digits = nn::load_digits();
  const nn::Split raw = nn::train_test_split(digits, 0.2, 42 + args.seed);
  const nn::Standardizer standardizer = nn::Standardizer::fit(raw.train.x);
  const nn::Split split{{standardizer.apply(raw.train.x), raw.train.y}, {standardizer.apply(raw.test.x), raw.test.y}};
  const Tensor probes = standardizer.apply(digits.x);  // all 1797 digits
  const std::int64_t n = probes.size(0);
  const std::int64_t epochs = args.quick ? 6 : 12;

  demos::progress("training two MLPs 64-256x8-10 for " + std::to_string(epochs) + " epochs (seeds differ)");
  const TrainedNet a = train_net(1000 + 2 * args.seed, split, epochs);
  const TrainedNet b = train_net(2001 + 2 * args.seed, split, epochs);
  const std::vector<Tensor> reps_a = hidden_representations(*a.net, probes);
  const std::vector<Tensor> reps_b = hidden_representations(*b.net, probes);
  const double worst_accuracy = std::min(a.test_accuracy, b.test_accuracy);
  results.check({.id = "trained",
                 .claim = "both nets learned the digits (the representations compared are trained ones)",
                 .measured = "test accuracy " + fmt(a.test_accuracy, 4) + " and " + fmt(b.test_accuracy, 4),
                 .predicted = ">= 0.9",
                 .tolerance = "none (a threshold)",
                 .pass = worst_accuracy >= 0.9,
                 .limit = 0.9});

  // ---- 1. feature form = Gram form ----------------------------------------------------------
  demos::progress("CKA of every pair of hidden layers, feature and Gram forms (n = " + std::to_string(n) + ")");
  const Tensor cka = theory::linear_cka_matrix(reps_a, reps_b);
  const Tensor cka_within_a = theory::linear_cka_matrix(reps_a, reps_a);
  // The Gram form from the kernels x x^T [n, n], net B's one at a time (each is 26 MB at n = 1797).
  std::vector<Tensor> kernels_a;
  for (const Tensor& r : reps_a) kernels_a.push_back(matmul(r, r.t()));
  double form_gap = 0.0;
  for (std::int64_t j = 0; j < kHidden; ++j) {
    const Tensor kernel_b = matmul(reps_b[std::size_t(j)], reps_b[std::size_t(j)].t());
    for (std::int64_t i = 0; i < kHidden; ++i)
      form_gap = std::max(form_gap, std::abs(cka.at({i, j}) - theory::gram_cka(kernels_a[std::size_t(i)], kernel_b)));
  }
  results.check({.id = "gram_form",
                 .claim = "linear CKA's feature form |Y^T X|^2 / (|X^T X| |Y^T Y|) equals HSIC of the Gram matrices",
                 .measured = "max over 64 layer pairs |difference| = " + fmt(form_gap),
                 .predicted = "0",
                 .tolerance = "<= 1e-12",
                 .pass = form_gap <= 1e-12,
                 .limit = 1e-12});

  // ---- 2. invariances ----------------------------------------------------------------------
  Rng rng(77 + args.seed);
  const Tensor& middle = reps_a[kHidden / 2];
  const Tensor rotated = mul(matmul(middle, random_orthogonal(kWidth, rng)), scalar_tensor(2.5));
  const double rotation_gap = std::abs(theory::linear_cka(middle, rotated) - 1.0);
  results.check({.id = "orthogonal_invariance",
                 .claim = "CKA(X, s X Q) = 1 for an orthogonal Q and s = 2.5 (layer 5 of net A)",
                 .measured = "|CKA - 1| = " + fmt(rotation_gap),
                 .predicted = "0",
                 .tolerance = "<= 1e-12",
                 .pass = rotation_gap <= 1e-12,
                 .limit = 1e-12});
  const Tensor mixing = add(rng.normal({kWidth, kWidth}), mul(eye(kWidth), scalar_tensor(2.0)));
  const double mixed = theory::linear_cka(middle, matmul(middle, mixing));
  results.check({.id = "not_invertible_invariant",
                 .claim = "CKA(X, X A) < 1 for a random invertible A (CKA is not invariant to every linear map)",
                 .measured = "CKA = " + fmt(mixed, 4),
                 .predicted = "< 1",
                 .tolerance = "<= 1 - 1e-3",
                 .pass = mixed <= 1.0 - 1e-3,
                 .limit = 1.0 - 1e-3});

  // ---- 4. baselines ------------------------------------------------------------------------
  const double chance = static_cast<double>(kWidth) / static_cast<double>(n + kWidth);
  double gaussian_mean = 0.0;
  const int draws = args.quick ? 5 : 20;
  for (int d = 0; d < draws; ++d)
    gaussian_mean += theory::linear_cka(rng.normal({n, kWidth}), rng.normal({n, kWidth})) / draws;
  const double chance_error = std::abs(gaussian_mean / chance - 1.0);
  results.check({.id = "chance_level",
                 .claim = "independent Gaussian features of width 256 on 1797 examples score p / (n + p), not 0",
                 .measured = "mean CKA over " + std::to_string(draws) + " draws = " + fmt(gaussian_mean, 4),
                 .predicted = "p / (n + p) = " + fmt(chance, 4),
                 .tolerance = "within 2%",
                 .pass = chance_error <= 0.02,
                 .limit = 0.02});
  const Tensor order = rng.permutation(n);
  std::vector<double> layer_index, matched, shuffled;
  for (std::int64_t l = 0; l < kHidden; ++l) {
    layer_index.push_back(static_cast<double>(l + 1));
    matched.push_back(cka.at({l, l}));
    shuffled.push_back(theory::linear_cka(reps_a[std::size_t(l)], index_select(reps_b[std::size_t(l)], 0, order)));
  }
  const double worst_shuffled = *std::max_element(shuffled.begin(), shuffled.end());
  const double weakest_matched = *std::min_element(matched.begin(), matched.end());

  // ---- 5. CCA, degenerate on fewer examples than features ----------------------------------
  demos::progress("mean CCA of every pair of hidden layers on all digits and on " + std::to_string(kCcaProbes));
  const Tensor cca_all = theory::mean_cca_matrix(reps_a, reps_b);
  const std::vector<Tensor> few_a = first_rows(reps_a, kCcaProbes), few_b = first_rows(reps_b, kCcaProbes);
  const Tensor cca_few = theory::mean_cca_matrix(few_a, few_b);
  double degenerate_gap = std::abs(max(abs(sub(cca_few, scalar_tensor(1.0)))).item<double>());
  const Tensor few_order = rng.permutation(kCcaProbes);
  for (std::int64_t l = 0; l < kHidden; ++l)
    degenerate_gap = std::max(degenerate_gap, std::abs(theory::mean_cca(few_a[std::size_t(l)],
                                                                         index_select(few_b[std::size_t(l)], 0, few_order)) -
                                                       1.0));
  results.check({.id = "cca_degenerate",
                 .claim = "on 200 examples, mean CCA of any two 256-wide layers is 1, matched, mismatched or shuffled",
                 .measured = "max |mean CCA - 1| over 64 pairs and 8 shuffled pairs = " + fmt(degenerate_gap),
                 .predicted = "0 (both centred column spaces are the whole 199-dimensional centred space)",
                 .tolerance = "<= 1e-8",
                 .pass = degenerate_gap <= 1e-8,
                 .limit = 1e-8});
  const Tensor cka_few = theory::linear_cka_matrix(few_a, few_b);
  const std::int64_t cca_matches = diagonal_matches(cca_all), cka_few_matches = diagonal_matches(cka_few);

  // ---- 3. layer correspondence -------------------------------------------------------------
  // Kornblith et al. find the corresponding layer by largest CKA for nearly every layer of two
  // CNNs. In these MLPs the hidden layers from the second or third on form a block that each net
  // represents almost alike (CKA >= 0.85 among them inside one net; the within-net matrix is in
  // layer_pairs.csv), so which member of the block the other net's layer is closest to is decided
  // by differences of a few 0.01. What holds is weaker and is what is checked: CKA finds more
  // corresponding layers than CCA, and it confuses a layer only with one that its own net barely
  // distinguishes from it.
  const std::int64_t cka_matches = diagonal_matches(cka);
  results.check({.id = "correspondence",
                 .claim = "the most CKA-similar layer of net B is the corresponding one more often than by mean CCA",
                 .measured = "CKA " + std::to_string(cka_matches) + " of 8 layers, mean CCA " +
                             std::to_string(cca_matches) + " of 8",
                 .predicted = "CKA more (Kornblith et al.: CKA identifies correspondences, CCA does not)",
                 .tolerance = "CKA > CCA",
                 .pass = cka_matches > cca_matches});
  double weakest_confusion = 1.0;
  std::string confusions;
  for (std::int64_t i = 0; i < kHidden; ++i) {
    const std::int64_t j = argmax(cka.select(0, i), 0).item<std::int64_t>();
    if (j == i) continue;
    weakest_confusion = std::min(weakest_confusion, cka_within_a.at({i, j}));
    confusions += (confusions.empty() ? "" : ", ") + std::to_string(i + 1) + "->" + std::to_string(j + 1);
  }
  results.check({.id = "confusions_in_block",
                 .claim = "where CKA picks another layer j for layer i, net A itself represents i and j almost alike",
                 .measured = confusions.empty() ? "no confusions"
                                                : "confused " + confusions + "; min CKA_A(i, j) = " + fmt(weakest_confusion),
                 .predicted = "high within-net similarity (a block of near-identical layers)",
                 .tolerance = ">= 0.85",
                 .pass = weakest_confusion >= 0.85,
                 .limit = 0.85});

  std::vector<double> row, col, cka_values, within_values, cca_all_values, cca_few_values, cka_few_values;
  for (std::int64_t i = 0; i < kHidden; ++i)
    for (std::int64_t j = 0; j < kHidden; ++j) {
      row.push_back(static_cast<double>(i + 1));
      col.push_back(static_cast<double>(j + 1));
      cka_values.push_back(cka.at({i, j}));
      within_values.push_back(cka_within_a.at({i, j}));
      cca_all_values.push_back(cca_all.at({i, j}));
      cka_few_values.push_back(cka_few.at({i, j}));
      cca_few_values.push_back(cca_few.at({i, j}));
    }
  results.write_csv("layer_pairs.csv", {"layer_a", "layer_b", "cka", "cka_within_a", "mean_cca", "cka_200", "mean_cca_200"},
                    {row, col, cka_values, within_values, cca_all_values, cka_few_values, cca_few_values});
  results.write_csv("baselines.csv", {"layer", "cka_matched", "cka_rows_shuffled", "gaussian_chance"},
                    {layer_index, matched, shuffled, std::vector<double>(layer_index.size(), chance)});
  return results.finish("CKA picks the matching layer for " + std::to_string(cka_matches) + "/8 layers (mean CCA " +
                        std::to_string(cca_matches) + "/8; on 200 probes CKA " + std::to_string(cka_few_matches) +
                        "/8, CCA all 1); matched CKA >= " + fmt(weakest_matched) + ", rows-shuffled <= " +
                        fmt(worst_shuffled) + ", Gaussian chance " + fmt(chance));
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = "similarity_demo",
                          .description = "linear CKA and CCA between the layers of two MLPs trained on the digits",
                          .flags = demos::kFlagQuick},
                         demo_main);
}
