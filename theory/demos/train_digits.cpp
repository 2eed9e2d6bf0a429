// train_digits: an MLP on the handwritten digits (fixed seeded 80/20 split), with a learning
// curve, a checkpoint after every epoch, and --resume that continues an interrupted run to the
// same final weights as an uninterrupted one. A run stopped by --stop-after checks nothing: it
// ends INCOMPLETE with exit status 4.

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "autograd/ops.hpp"
#include "nn/checkpoint.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/train.hpp"
#include "theory/demos/demo_common.hpp"

using namespace theta;
using theta::autograd::Var;

namespace {

constexpr std::int64_t kEpochs = 30;
constexpr std::int64_t kBatch = 64;
constexpr double kTarget = 0.95;
constexpr const char* kCurveFile = "learning_curve.csv";

struct Curve {
  std::vector<double> epoch, train_loss, test_accuracy;
};

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// Rows of a previous run's curve for epochs before `first_epoch` (resume keeps the history).
Curve read_curve(const std::string& path, std::int64_t first_epoch) {
  Curve c;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream row(line);
    double e = 0, l = 0, a = 0;
    char comma = 0;
    if (!(row >> e >> comma >> l >> comma >> a)) continue;
    if (e > static_cast<double>(first_epoch)) continue;
    c.epoch.push_back(e), c.train_loss.push_back(l), c.test_accuracy.push_back(a);
  }
  return c;
}

int demo_main(const demos::DemoArgs& args, demos::Results& results) {
  const nn::Dataset digits = nn::load_digits();
  const nn::Split split = nn::train_test_split(digits, 0.2, 42 + args.seed);
  const nn::Standardizer standardizer = nn::Standardizer::fit(split.train.x);
  const nn::Dataset train{standardizer.apply(split.train.x), split.train.y};
  const Tensor test_x = standardizer.apply(split.test.x);

  Rng rng(7 + args.seed);
  auto net = nn::mlp({64, 128, 10}, rng, {.activation = nn::ActivationKind::relu});
  nn::Sgd sgd(net->named_parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  const nn::DataLoader loader(train, {.batch_size = kBatch, .shuffle = true, .seed = 3 + args.seed});
  const std::string checkpoint = args.out + "/checkpoint.npz";
  const std::string curve_path = args.out + "/" + kCurveFile;

  std::int64_t first_epoch = 0;
  Curve curve;
  if (args.resume) {
    if (!file_exists(checkpoint)) throw demos::UsageError("--resume: no checkpoint at " + checkpoint);
    nn::load_checkpoint(checkpoint, *net, &sgd);
    // Checkpoints are written at the end of an epoch of this run's loader.
    const std::int64_t steps = sgd.steps_taken(), per_epoch = loader.batches_per_epoch();
    THETA_CHECK(steps % per_epoch == 0 && steps / per_epoch <= kEpochs, FormatError, "load_checkpoint: ",
                checkpoint, ": optimizer step ", steps, " is not the end of one of ", kEpochs, " epochs of ",
                per_epoch, " batches (a checkpoint of another run?)");
    first_epoch = steps / per_epoch;
    curve = read_curve(curve_path, first_epoch);
    demos::progress("resuming after epoch " + std::to_string(first_epoch));
  }
  const std::int64_t last_epoch =
      args.stop_after >= 0 ? std::min<std::int64_t>(kEpochs, first_epoch + args.stop_after) : kEpochs;

  auto test_accuracy = [&] {
    autograd::NoGradGuard no_grad;
    net->eval();
    const double acc = nn::accuracy(net->forward(Var(test_x)).value(), split.test.y);
    net->train();
    return acc;
  };
  auto loss = [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); };
  nn::fit(*net, sgd, loader, loss,
          {.epochs = last_epoch,
           .log_every = 5,
           .on_epoch =
               [&](const nn::EpochLog& log) {
                 curve.epoch.push_back(static_cast<double>(log.epoch + 1));
                 curve.train_loss.push_back(log.train_loss);
                 curve.test_accuracy.push_back(test_accuracy());
                 nn::save_checkpoint(checkpoint, *net, &sgd);
               }},
          first_epoch);

  results.write_csv(kCurveFile, {"epoch", "train_loss", "test_accuracy"},
                    {curve.epoch, curve.train_loss, curve.test_accuracy});
  const double accuracy = test_accuracy();
  std::printf("test_accuracy: %.4f\n", accuracy);
  const std::string epochs = "after " + std::to_string(last_epoch) + "/" + std::to_string(kEpochs) + " epochs";
  if (last_epoch < kEpochs)
    return results.finish_incomplete(epochs + ", test accuracy " + demos::fmt(accuracy, 4) +
                                     ": stopped early, nothing checked; continue with --resume");
  results.check({.id = "accuracy",
                 .claim = "an MLP 64-128-10 trained for " + std::to_string(kEpochs) + " epochs reaches the target",
                 .measured = "test accuracy " + demos::fmt(accuracy, 4),
                 .predicted = ">= " + demos::fmt(kTarget),
                 .tolerance = "none (a threshold)",
                 .pass = accuracy >= kTarget,
                 .limit = kTarget});
  return results.finish(epochs + ", test accuracy " + demos::fmt(accuracy, 4) + " (target >= " +
                        demos::fmt(kTarget) + ")");
}

}  // namespace

int main(int argc, char** argv) {
  return demos::run_demo(argc, argv,
                         {.name = "train_digits",
                          .description = "an MLP on the handwritten digits, checkpointed after every epoch",
                          .flags = demos::kFlagResume | demos::kFlagStopAfter},
                         demo_main);
}
