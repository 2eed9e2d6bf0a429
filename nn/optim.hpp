#pragma once
// Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW), so results can be
// cross-checked number for number. Each step can report what it did through an observer.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace theta::nn {

/// What one optimizer step did, for observers (the theory module tracks conserved quantities).
struct StepRecord {
  std::int64_t step = 0;                // 1 for the first step
  double lr = 0.0;                      // learning rate used
  // One entry per parameter that had a gradient (the others were skipped), in optimizer order:
  std::vector<std::size_t> params{};    // the parameter's index in the optimizer
  std::vector<Tensor> params_before{};  // its value before the step
  std::vector<Tensor> grads{};          // its loss gradient g (without weight decay)
  std::vector<Tensor> updates{};        // params_after - params_before
  // One entry per optimizer parameter (undefined where there is none):
  std::vector<Tensor> momentum{};       // SGD momentum buffers after the step (empty without momentum)
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<std::pair<std::string, Var>> named_params);
  virtual ~Optimizer() = default;

  /// Applies one update using each parameter's .grad (parameters without a gradient are skipped).
  void step();
  /// Drops every parameter's gradient.
  void zero_grad() const;

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  std::int64_t steps_taken() const { return steps_; }

  /// Called after every step with what it did (records cost a copy of parameters and grads).
  void set_observer(std::function<void(const StepRecord&)> observer) { observer_ = std::move(observer); }

  /// Named state tensors (momentum buffers, moments, step counts, and "has_state": which
  /// parameters have buffers) for checkpoints (Note [Optimizer state presence] in optim.cpp).
  virtual std::vector<NamedTensor> state() const = 0;
  /// Restores state() output; throws naming the tensor on a missing entry, a shape or dtype
  /// mismatch, or a count, flag or moment no optimizer could have written (Note [Loaded optimizer
  /// state] in optim.cpp), before changing anything.
  virtual void load_state(const std::vector<NamedTensor>& state) = 0;

  const std::vector<std::pair<std::string, Var>>& named_params() const { return params_; }

 protected:
  /// Updates parameter i in place from gradient g; returns nothing. steps_ is already incremented.
  virtual void update(std::size_t i, const Tensor& g) = 0;
  /// Momentum buffers to report in StepRecord (empty by default).
  virtual std::vector<Tensor> momentum_buffers() const { return {}; }

  std::vector<std::pair<std::string, Var>> params_;
  double lr_ = 0.0;
  std::int64_t steps_ = 0;

 private:
  std::function<void(const StepRecord&)> observer_;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

/// torch.optim.SGD: d = g + wd p; b = momentum b + (1 - dampening) d (b = d on the first step);
/// d = nesterov ? d + momentum b : b; p -= lr d.
class Sgd : public Optimizer {
 public:
  Sgd(std::vector<std::pair<std::string, Var>> named_params, SgdOptions options);
  std::vector<NamedTensor> state() const override;
  void load_state(const std::vector<NamedTensor>& state) override;
  const SgdOptions& options() const { return options_; }

 protected:
  void update(std::size_t i, const Tensor& g) override;
  std::vector<Tensor> momentum_buffers() const override { return buffers_; }

 private:
  SgdOptions options_;
  std::vector<Tensor> buffers_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  /// AdamW: decoupled weight decay p *= 1 - lr wd, instead of adding wd p to the gradient.
  bool decoupled_weight_decay = false;
};

/// torch.optim.Adam / AdamW.
class Adam : public Optimizer {
 public:
  Adam(std::vector<std::pair<std::string, Var>> named_params, AdamOptions options);
  std::vector<NamedTensor> state() const override;
  void load_state(const std::vector<NamedTensor>& state) override;

 protected:
  void update(std::size_t i, const Tensor& g) override;

 private:
  AdamOptions options_;
  std::vector<Tensor> m_, v_;
  std::vector<std::int64_t> param_steps_;  // updates applied to each parameter (bias correction)
};

/// AdamW is Adam with decoupled weight decay (PyTorch's default wd 0.01).
AdamOptions adamw_options(double lr = 1e-3, double weight_decay = 1e-2);

/// Learning rate as a function of the epoch (or step) index.
struct LrSchedule {
  enum class Kind { constant, step, cosine };
  Kind kind = Kind::constant;
  double base_lr = 0.01;
  std::int64_t step_size = 1;  // step: decay every step_size epochs
  double gamma = 0.1;          // step: factor
  std::int64_t t_max = 1;      // cosine: period
  double eta_min = 0.0;        // cosine: floor
  /// The learning rate at `epoch` (PyTorch's StepLR / CosineAnnealingLR closed forms).
  double at(std::int64_t epoch) const;
};

/// Scales all gradients so their global 2-norm is at most max_norm (torch's clip_grad_norm_);
/// returns the norm before clipping.
double clip_grad_norm(const std::vector<Var>& params, double max_norm);

}  // namespace theta::nn
