// The README's theory example, compiled and checked: the NTK against contraction, the top-3
// Hessian eigenvalues against the dense Hessian's.
#include <catch2/catch.hpp>

#include "autograd/transforms.hpp"
#include "nn/eval.hpp"
#include "nn/layers.hpp"
#include "nn/residual.hpp"
#include "nn/train.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"
#include "theory/symmetry.hpp"

TEST_CASE("README theory example: NTK and top Hessian eigenvalues of a residual MLP", "[theory][readme]") {
  theta::Rng rng(0);
  auto net = theta::nn::residual_mlp({.in_features = 4, .width = 16, .out_features = 3, .blocks = 2}, rng);
  const theta::Tensor x = rng.normal({20, 4}), labels = rng.integers({20}, 0, 3);
  const theta::Tensor ntk = theta::theory::empirical_ntk(*net, x, x);  // [20, 20, 3, 3]
  const auto loss = theta::theory::module_loss(net, x, labels, [](const theta::autograd::Var& logits,
                                                                  const theta::Tensor& y) {
    return theta::nn::cross_entropy(logits, y);
  });
  const auto hessian = theta::theory::hessian_operator(loss, theta::theory::parameter_values(*net));
  const theta::theory::EigenResult top = theta::theory::lanczos_top_k(hessian, 3);  // values, vectors, residuals

  using namespace theta;
  const Tensor reference = theory::empirical_ntk(*net, x, x, {.method = theory::NtkMethod::contraction});
  CHECK(ntk.shape() == Shape{20, 20, 3, 3});
  CHECK(max(abs(ntk - reference)).item() <= 1e-12 * max(abs(reference)).item());
  const Tensor dense = autograd::hessian(loss, theory::parameter_values(*net));
  const Tensor exact = theory::eigh(dense).values;  // ascending
  const std::int64_t p = exact.size(0);
  for (std::int64_t i = 0; i < 3; ++i) {
    CHECK(top.values.at({i}) == Approx(exact.at({p - 1 - i})).epsilon(1e-8));
    CHECK(top.residuals.at({i}) <= 1e-6 * std::abs(exact.at({p - 1})));
  }
}

TEST_CASE("README theory example: the NTK regression prediction of a one-output tanh MLP", "[theory][readme]") {
  using namespace theta;
  Rng rng(1);
  auto f = nn::mlp({2, 64, 1}, rng, {.activation = nn::ActivationKind::tanh});
  const Tensor x_train = rng.normal({10, 2}), y_train = rng.normal({10, 1}), x_test = rng.normal({3, 2});
  const Tensor k_train = theory::empirical_ntk_matrix(*f, x_train, x_train);  // [10, 10]
  const Tensor prediction = theory::ntk_regression({.k_test_train = theory::empirical_ntk_matrix(*f, x_test, x_train),
                                                    .k_train_train = k_train,
                                                    .y_train = y_train,
                                                    .f0_train = nn::predict(*f, x_train),
                                                    .f0_test = nn::predict(*f, x_test)});  // [3, 1]

  CHECK(prediction.shape() == Shape{3, 1});
  // At convergence the linearised model interpolates its training targets.
  const Tensor at_train = theory::ntk_regression(
      {.k_test_train = k_train, .k_train_train = k_train, .y_train = y_train, .f0_train = nn::predict(*f, x_train),
       .f0_test = nn::predict(*f, x_train)});
  CHECK(max(abs(at_train - y_train)).item() <= 1e-8);
  // And it is the kernel regression f0(x) + K(x, X) K(X, X)^{-1} (Y - f0(X)), by LAPACK's solve.
  const Tensor f0 = nn::predict(*f, x_train);
  const Tensor k_test = theory::empirical_ntk_matrix(*f, x_test, x_train);
  const Tensor expected = nn::predict(*f, x_test) + matmul(k_test, theory::solve(k_train, y_train - f0));
  CHECK(max(abs(prediction - expected)).item() <= 1e-8 * max(abs(expected)).item());
}

TEST_CASE("README theory example: symmetry tracker through SGD with momentum and weight decay",
          "[theory][readme]") {
  using namespace theta;
  Rng rng(2);
  auto net = nn::mlp({4, 32, 3}, rng, {.activation = nn::ActivationKind::relu});
  nn::Sgd sgd(net->named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3});
  theory::SymmetryTracker tracker;
  tracker.track_sequential(*net, /*softmax_output=*/true).attach(sgd);
  nn::DataLoader loader(nn::Dataset{rng.normal({64, 4}), rng.integers({64}, 0, 3)}, {.batch_size = 16, .seed = 1});
  nn::fit(*net, sgd, loader, [](const autograd::Var& z, const Tensor& y) { return nn::cross_entropy(z, y); },
          {.epochs = 5, .quiet = true});
  CHECK(tracker.size() == 2);        // rescale of the hidden layer, translation of the logits
  CHECK(tracker.steps() == 5 * 4);   // 64 samples in batches of 16, 5 epochs
  CHECK(tracker.max_exact_error() < 1e-12);
  CHECK(tracker.max_continuous_error() > tracker.max_exact_error());  // the flow is an O(lr) model
}
