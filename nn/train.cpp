#include "nn/train.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "autograd/engine.hpp"
#include "tensor/interrupt.hpp"

namespace theta::nn {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Note [Progress output]
// On a terminal, one line is rewritten in place with '\r' (padded with spaces to cover a longer
// previous text) at most ten times a second, and kept with a newline every log_every epochs. When
// stderr is a file or a pipe (batch jobs, CI logs), only the kept lines are written, each a plain
// line without carriage returns, so the log stays readable. An exception ends a live line first.
class Progress {
 public:
  Progress(bool quiet, std::int64_t epochs, std::int64_t log_every)
      : enabled_(!quiet), live_(enabled_ && ::isatty(2) == 1), epochs_(epochs), log_every_(log_every) {}
  ~Progress() {
    if (open_) write("\n");
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void batch(std::int64_t epoch, std::int64_t done, std::int64_t total, double mean_loss) {
    if (!live_ || (done < total && seconds_since(last_) < 0.1)) return;
    char text[160];
    std::snprintf(text, sizeof(text), "epoch %lld/%lld  batch %lld/%lld  loss %.6g",
                  static_cast<long long>(epoch + 1), static_cast<long long>(epochs_),
                  static_cast<long long>(done), static_cast<long long>(total), mean_loss);
    rewrite(text);
  }

  void epoch_end(const EpochLog& log) {
    if (!enabled_) return;
    char text[160];
    std::snprintf(text, sizeof(text), "epoch %lld/%lld  loss %.6g  %.2fs", static_cast<long long>(log.epoch + 1),
                  static_cast<long long>(epochs_), log.train_loss, log.seconds);
    const bool keep = (log.epoch + 1) % log_every_ == 0 || log.epoch + 1 == epochs_;
    if (live_) {
      rewrite(text);
      if (keep) {
        write("\n");
        open_ = false;
        width_ = 0;
      }
    } else if (keep) {
      write(std::string(text) + "\n");
    }
  }

 private:
  void rewrite(const std::string& text) {
    std::string line = "\r" + text;
    if (text.size() < width_) line.append(width_ - text.size(), ' ');
    width_ = text.size();
    write(line);
    open_ = true;
    last_ = Clock::now();
  }

  static void write(const std::string& s) {
    std::fputs(s.c_str(), stderr);
    std::fflush(stderr);
  }

  bool enabled_, live_;
  std::int64_t epochs_, log_every_;
  bool open_ = false;
  std::size_t width_ = 0;
  Clock::time_point last_{};
};

// Note [Non-finite losses]
// Without anomaly mode nothing else notices a NaN or Inf: it flows through backward into the
// gradients, the optimizer writes it into every parameter it touches, and later losses, logs and
// checkpoints are all NaN. fit() therefore reads each batch loss before backward and the step; a
// non-finite one throws NonFiniteLossError naming the epoch and batch. The forward pass may
// already have updated buffers (BatchNorm's running statistics), so they are copied before each
// forward and restored: the model is left exactly as the previous batches made it, ready to be
// saved or trained on with other settings. The copies cost one pass over the buffers per batch
// (small next to a forward pass). With FitOptions::stop_on_non_finite_loss = false fit() trains
// on instead, and takes no copies.
[[noreturn]] void throw_non_finite(std::int64_t epoch, std::int64_t batch, std::int64_t batches, double loss) {
  std::ostringstream message;
  message << "fit: non-finite loss " << loss << " at epoch " << epoch << ", batch " << batch << " of " << batches
          << " (counted from 0): stopped before its backward and optimizer step, so the model is as the previous "
             "batches left it";
  throw NonFiniteLossError(message.str(), epoch, batch, loss);
}

}  // namespace

std::vector<EpochLog> fit(Module& model, Optimizer& optimizer, const DataLoader& loader, const LossFn& loss,
                          const FitOptions& options, std::int64_t first_epoch) {
  THETA_CHECK(options.epochs >= 0 && first_epoch >= 0 && first_epoch <= options.epochs, std::invalid_argument,
              "fit: need 0 <= first_epoch <= epochs, got first_epoch ", first_epoch, ", epochs ", options.epochs);
  THETA_CHECK(options.log_every >= 1, std::invalid_argument, "fit: log_every must be >= 1, got ",
              options.log_every);
  THETA_CHECK(static_cast<bool>(loss), std::invalid_argument, "fit: no loss function given");
  model.train();
  Progress progress(options.quiet, options.epochs, options.log_every);
  std::vector<EpochLog> logs;
  for (std::int64_t epoch = first_epoch; epoch < options.epochs; ++epoch) {
    const Clock::time_point start = Clock::now();
    const auto batches = loader.epoch(epoch);
    double weighted_loss = 0.0;
    std::int64_t samples = 0, done = 0;
    for (const auto& [x, y] : batches) {
      check_interrupt();  // between batches: the model is as the previous step left it
      // The model's parameters that the optimizer does not train must not accumulate either.
      optimizer.zero_grad();
      model.zero_grad();
      std::optional<BufferSnapshot> buffers;  // restores the buffers if this batch throws
      if (options.stop_on_non_finite_loss) buffers.emplace(model);
      const Var value = loss(model(Var(x)), y);
      THETA_CHECK(value.defined() && value.numel() == 1, ShapeError, "fit: the loss must have one element, got ",
                  value.defined() ? shape_str(value.shape()) : std::string("an undefined Var"));
      const double batch_loss = value.item();
      if (!std::isfinite(batch_loss) && buffers)
        throw_non_finite(epoch, done, static_cast<std::int64_t>(batches.size()), batch_loss);
      if (buffers) buffers->discard();
      autograd::backward(value);
      optimizer.step();
      const std::int64_t n = x.size(0);
      weighted_loss += batch_loss * static_cast<double>(n);
      samples += n;
      progress.batch(epoch, ++done, static_cast<std::int64_t>(batches.size()),
                     weighted_loss / static_cast<double>(samples));
    }
    EpochLog log{epoch, samples > 0 ? weighted_loss / static_cast<double>(samples) : std::numeric_limits<double>::quiet_NaN(), seconds_since(start)};
    logs.push_back(log);
    progress.epoch_end(log);
    if (options.on_epoch) options.on_epoch(log);
    check_interrupt();
  }
  return logs;
}

}  // namespace theta::nn
