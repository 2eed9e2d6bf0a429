#pragma once
// fit(): the plain mini-batch training loop (zero_grad, forward, loss, backward, step) with
// per-epoch logs and progress on stderr.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn/data.hpp"
#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace theta::nn {

/// What one epoch of fit() did.
struct EpochLog {
  std::int64_t epoch = 0;   // epoch index (0-based, as DataLoader::epoch takes it)
  double train_loss = 0.0;  // mean of the batch losses weighted by batch size
  double seconds = 0.0;     // wall-clock time of the epoch
};

struct FitOptions {
  /// Total epoch count of the run: fit() runs epoch indices first_epoch .. epochs - 1.
  std::int64_t epochs = 1;
  /// Print nothing.
  bool quiet = false;
  /// Keep a progress line every log_every epochs (and after the last one).
  std::int64_t log_every = 1;
  /// Called after every epoch (for evaluation, checkpoints, learning-rate schedules).
  std::function<void(const EpochLog&)> on_epoch{};
  /// At a NaN or infinite batch loss: throw NonFiniteLossError before that batch's backward and
  /// step (true), or train on through it (false: the step is taken, and NaN/Inf reach the
  /// parameters unless the gradients happen to stay finite).
  bool stop_on_non_finite_loss = true;
};

/// Thrown by fit() at the first NaN or infinite batch loss (FitOptions::stop_on_non_finite_loss).
/// The model is as it was before that batch: parameters not stepped, buffers restored.
class NonFiniteLossError : public std::runtime_error {
 public:
  NonFiniteLossError(const std::string& message, std::int64_t epoch, std::int64_t batch, double loss)
      : std::runtime_error(message), epoch_(epoch), batch_(batch), loss_(loss) {}
  /// Epoch index (0-based, as DataLoader::epoch takes it).
  std::int64_t epoch() const { return epoch_; }
  /// Batch index within the epoch (0-based).
  std::int64_t batch() const { return batch_; }
  /// The loss value: NaN, +Inf or -Inf.
  double loss() const { return loss_; }

 private:
  std::int64_t epoch_, batch_;
  double loss_;
};

/// The loss of a batch from the model's output and the batch's targets; must have one element.
using LossFn = std::function<autograd::Var(const autograd::Var& logits, const Tensor& y)>;

/// Trains `model` (switched to training mode) for epoch indices first_epoch .. options.epochs-1;
/// each batch of loader.epoch(e) runs zero_grad, forward, loss, backward and optimizer.step().
/// Since epoch e's batches depend only on the loader's seed and e, fit(..., first_epoch = k) after
/// restoring a checkpoint written at the end of epoch k - 1 repeats an uninterrupted run exactly.
/// Progress goes to stderr: a live line rewritten in place when stderr is a terminal, plain
/// "epoch e/E  loss L  T s" lines (e counted from 1) every log_every epochs when it is not.
/// A non-finite batch loss stops training with NonFiniteLossError unless
/// options.stop_on_non_finite_loss is false (Note [Non-finite losses] in train.cpp).
/// Between batches and after epochs it calls check_interrupt() (Note [Interrupt points]), so an
/// embedding's Ctrl-C stops it with the model as the last completed step left it.
/// Returns one EpochLog per epoch run.
std::vector<EpochLog> fit(Module& model, Optimizer& optimizer, const DataLoader& loader, const LossFn& loss,
                          const FitOptions& options, std::int64_t first_epoch = 0);

}  // namespace theta::nn
