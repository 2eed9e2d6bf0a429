// cnn_digits: a small CNN on the 8x8 handwritten digits (the same fixed seeded 80/20 split as
// train_digits), trained with AdamW on the training images and their copies shifted by one pixel
// in each direction; checks the test accuracy against a target and writes the learning curve.

#include <cstdio>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "nn/optim.hpp"
#include "nn/train.hpp"
#include "theory/demos/demo_common.hpp"

using namespace theta;
using theta::autograd::Var;

namespace {

constexpr std::int64_t kEpochs = 20;
constexpr std::int64_t kBatch = 32;
constexpr double kTarget = 0.98;

// Unflatten -> [Conv2d 3x3 -> ReLU] x 2 -> AvgPool2d(2) -> Conv2d 3x3 -> ReLU -> Flatten -> Linear.
std::shared_ptr<nn::Sequential> digits_cnn(Rng& rng) {
  const nn::ConvOptions same{.padding = 1, .dtype = DType::f32};
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 8, 8}));
  net->add(std::make_shared<nn::Conv2d>(1, 16, 3, rng, same));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net->add(std::make_shared<nn::Conv2d>(16, 32, 3, rng, same));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net->add(std::make_shared<nn::AvgPool2d>(2));
  net->add(std::make_shared<nn::Conv2d>(32, 64, 3, rng, same));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(64 * 4 * 4, 10, rng, nn::LinearOptions{.dtype = DType::f32}));
  return net;
}

// Rows of 8x8 images x:[n, 64] shifted by (dy, dx) pixels, zeros moving in.
Tensor shifted(const Tensor& x, std::int64_t dy, std::int64_t dx) {
  const Tensor images = x.reshape({x.size(0), 8, 8});
  Tensor out = zeros(images.shape(), x.dtype());
  const auto window = [](const Tensor& t, std::int64_t axis, std::int64_t shift) {
    return shift >= 0 ? t.slice(axis, 0, 8 - shift) : t.slice(axis, -shift, 8);
  };
  const auto target = [](const Tensor& t, std::int64_t axis, std::int64_t shift) {
    return shift >= 0 ? t.slice(axis, shift, 8) : t.slice(axis, 0, 8 + shift);
  };
  target(target(out, 1, dy), 2, dx).copy_(window(window(images, 1, dy), 2, dx));
  return out.reshape({x.size(0), 64});
}

// The images and their four one-pixel shifts, with the labels repeated.
nn::Dataset with_shifts(const nn::Dataset& data) {
  std::vector<Tensor> xs{data.x}, ys{data.y};
  for (const auto& [dy, dx] : {std::pair{1, 0}, std::pair{-1, 0}, std::pair{0, 1}, std::pair{0, -1}}) {
    xs.push_back(shifted(data.x, dy, dx));
    ys.push_back(data.y);
  }
  return {concat(xs, 0), concat(ys, 0)};
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const nn::Dataset digits = nn::load_digits();
  const nn::Split split = nn::train_test_split(digits, 0.2, 42 + args.seed);
  // Pixel values 0..16 scaled to [0, 1]: the images keep their zero background.
  const nn::Dataset train = with_shifts({(split.train.x / 16.0).to(DType::f32), split.train.y});
  const Tensor test_x = (split.test.x / 16.0).to(DType::f32);

  Rng rng(11 + args.seed);
  auto net = digits_cnn(rng);
  nn::Adam adam(net->named_parameters(), {.lr = 2e-3, .weight_decay = 1e-4, .decoupled_weight_decay = true});
  const nn::DataLoader loader(train, {.batch_size = kBatch, .shuffle = true, .seed = 5 + args.seed});
  std::vector<double> epochs, losses, accuracies;
  auto test_accuracy = [&] {
    autograd::NoGradGuard no_grad;
    return nn::accuracy((*net)(Var(test_x)).value(), split.test.y);
  };
  auto loss = [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); };
  nn::fit(*net, adam, loader, loss,
          {.epochs = kEpochs,
           .log_every = 5,
           .on_epoch = [&](const nn::EpochLog& log) {
             epochs.push_back(static_cast<double>(log.epoch + 1));
             losses.push_back(log.train_loss);
             accuracies.push_back(test_accuracy());
           }});
  results.write_csv("learning_curve.csv", {"epoch", "train_loss", "test_accuracy"}, {epochs, losses, accuracies});
  const double accuracy = test_accuracy();
  std::printf("test_accuracy: %.4f\n", accuracy);
  results.check({.id = "accuracy",
                 .claim = "a CNN (3 convolutions, average pooling, linear readout) trained for " +
                          std::to_string(kEpochs) + " epochs reaches the target",
                 .measured = "test accuracy " + demos::fmt(accuracy, 4) + " on " +
                             std::to_string(split.test.x.size(0)) + " held-out digits",
                 .predicted = ">= " + demos::fmt(kTarget),
                 .tolerance = "none (a threshold)",
                 .pass = accuracy >= kTarget,
                 .limit = kTarget});
  return results.finish("test accuracy " + demos::fmt(accuracy, 4) + " after " + std::to_string(kEpochs) +
                        " epochs (target >= " + demos::fmt(kTarget) + ")");
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = "cnn_digits", .description = "a small CNN on the handwritten digits"}, demo_main);
}
