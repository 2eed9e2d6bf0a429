// The README's nn example, compiled and checked: it trains and its checkpoint loads back.
#include <catch2/catch.hpp>
#include <cstdio>

#include "nn/checkpoint.hpp"
#include "nn/data.hpp"
#include "nn/eval.hpp"
#include "nn/layers.hpp"
#include "nn/train.hpp"

using namespace theta;

TEST_CASE("README nn example trains an MLP on digits", "[nn][readme]") {
  nn::Dataset digits = nn::load_digits();
  nn::Split split = nn::train_test_split(digits, 0.2, /*seed=*/42);
  Rng rng(7);
  auto net = nn::mlp({64, 128, 10}, rng, {.activation = nn::ActivationKind::relu});
  nn::Sgd sgd(net->named_parameters(), {.lr = 0.01, .momentum = 0.9});
  nn::DataLoader loader(split.train, {.batch_size = 64, .seed = 3});
  const auto logs = nn::fit(
      *net, sgd, loader, [](const autograd::Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); },
      {.epochs = 30, .quiet = true});
  REQUIRE(logs.size() == 30);
  CHECK(logs.back().train_loss < logs.front().train_loss);
  // Unstandardised pixels (0..16) train smoothly at this step size; at 0.05 the loss jumps around.
  Tensor test_logits = nn::predict(*net, split.test.x);  // eval mode, no graph
  CHECK(nn::accuracy(test_logits, split.test.y) > 0.95);
  CHECK(net->training());
  const std::string path = "readme_example_model.npz";
  nn::save_checkpoint(path, *net, &sgd);
  Rng other(8);
  auto copy = nn::mlp({64, 128, 10}, other, {.activation = nn::ActivationKind::relu});
  nn::load_checkpoint(path, *copy);
  CHECK(to_vector(copy->parameters()[0].value()) == to_vector(net->parameters()[0].value()));
  std::remove(path.c_str());
}
