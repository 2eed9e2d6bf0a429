#include "nn/optim.hpp"

#include <cmath>
#include <numbers>
#include <optional>

namespace theta::nn {

namespace {

// Note [Loaded optimizer state]
// load_state() reads what may come from a damaged or foreign checkpoint, so it checks every value
// an optimizer could not have written before changing anything (load_checkpoint turns the error
// into a FormatError naming the file):
// - "step" and Adam's per-parameter "step.<name>" are int64 scalars, checked for dtype before
//   being read (converting a NaN double to int64 is undefined behaviour). "step" lies in
//   [0, kMaxSteps]: 2^53 is where counts stop being exact as the doubles Adam's bias correction
//   uses, and it keeps ++steps_ far from overflowing. A parameter with moments was updated at
//   least once and at most once per step, so "step.<name>" lies in [1, step].
// - "has_state" flags are 0 or 1, and none is set while "step" is 0 (buffers appear at a step).
// - Buffers have their parameter's shape and dtype; Adam's second moments are averages of squares,
//   so a negative or NaN element (which sqrt would turn into NaN updates) is refused.
constexpr std::int64_t kMaxSteps = std::int64_t{1} << 53;

// Looks up `key` in a state list; throws naming it when missing or of the wrong shape or dtype.
const Tensor& find_state(const std::vector<NamedTensor>& state, const std::string& key, const Shape& shape,
                         DType dtype) {
  for (const auto& [name, t] : state)
    if (name == key) {
      THETA_CHECK(t.shape() == shape, ShapeError, "load_state: '", key, "' has shape ",
                  shape_str(t.shape()), ", expected ", shape_str(shape));
      THETA_CHECK(t.dtype() == dtype, DTypeError, "load_state: '", key, "' has dtype ", dtype_name(t.dtype()),
                  ", expected ", dtype_name(dtype));
      return t;
    }
  THETA_THROW(std::invalid_argument, "load_state: missing optimizer state '", key, "'");
}

// The int64 scalar `key`, which must lie in [lo, hi].
std::int64_t find_count(const std::vector<NamedTensor>& state, const std::string& key, std::int64_t lo,
                        std::int64_t hi) {
  const auto value = find_state(state, key, {}, DType::i64).item<std::int64_t>();
  THETA_CHECK(value >= lo && value <= hi, FormatError, "load_state: '", key, "' is ", value, ", must be in [", lo,
              ", ", hi, "]");
  return value;
}

// A copy of the buffer `key` of parameter `param` (its shape and dtype).
Tensor find_buffer(const std::vector<NamedTensor>& state, const std::string& key, const Var& param) {
  return find_state(state, key, param.shape(), param.dtype()).clone();
}

Tensor step_tensor(std::int64_t steps) { return full({}, static_cast<double>(steps), DType::i64); }

bool contains(const std::vector<NamedTensor>& state, const std::string& key) {
  for (const auto& [name, t] : state)
    if (name == key) return true;
  return false;
}

// Note [Optimizer state presence]
// A parameter that never had a gradient has no buffers. state() therefore writes "has_state", an
// int64 [P] flag per parameter in optimizer order, and load_state() requires the buffers of every
// flagged parameter, so a checkpoint of a model with a frozen or unused parameter loads, while a
// checkpoint that lost a buffer is still rejected by name.
Tensor presence_tensor(const std::vector<bool>& present) {
  std::vector<std::int64_t> flags(present.begin(), present.end());
  return from_indices(flags);
}

// Which parameters have buffers: the "has_state" flags when the list has them, else (checkpoints
// written before the flags) `fallback` for every parameter. `step` is the loaded step count.
std::vector<bool> read_presence(const std::vector<NamedTensor>& state,
                                const std::vector<std::pair<std::string, Var>>& params, std::int64_t step,
                                bool fallback) {
  if (!contains(state, "has_state")) return std::vector<bool>(params.size(), fallback);
  const Tensor flags = find_state(state, "has_state", {static_cast<std::int64_t>(params.size())}, DType::i64)
                           .contiguous();
  const std::int64_t* f = flags.data<std::int64_t>();
  std::vector<bool> out;
  for (std::size_t i = 0; i < params.size(); ++i) {
    THETA_CHECK(f[i] == 0 || f[i] == 1, FormatError, "load_state: 'has_state' element ", i, " is ", f[i],
                ", must be 0 or 1");
    THETA_CHECK(f[i] == 0 || step > 0, FormatError, "load_state: 'has_state' flags parameter '",
                params[i].first, "', but 'step' is 0 (buffers appear at the first step)");
    out.push_back(f[i] == 1);
  }
  return out;
}
}  // namespace

Optimizer::Optimizer(std::vector<std::pair<std::string, Var>> named_params) : params_(std::move(named_params)) {
  for (const auto& [name, p] : params_)
    THETA_CHECK(p.is_leaf() && p.requires_grad(), std::invalid_argument, "optimizer: parameter '",
                name, "' must be a leaf that requires grad");
}

void Optimizer::zero_grad() const {
  for (const auto& [name, p] : params_) p.zero_grad();
}

void Optimizer::step() {
  // Check every gradient first, so a bad one leaves parameters, state and step count untouched.
  for (const auto& [name, p] : params_)
    THETA_CHECK(!p.grad().defined() || p.grad().shape() == p.shape(), ShapeError, "optimizer: gradient of '",
                name, "' has shape ", shape_str(p.grad().shape()), ", parameter ", shape_str(p.shape()));
  ++steps_;
  StepRecord record;
  if (observer_) {
    record.step = steps_;
    record.lr = lr_;
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i].second;
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (observer_) {
      record.params.push_back(i);
      record.params_before.push_back(p.value().clone());
      record.grads.push_back(g.contiguous().clone());
    }
    update(i, g);
    if (observer_) record.updates.push_back(theta::sub(p.value(), record.params_before.back()));
  }
  if (observer_) {
    for (const auto& b : momentum_buffers()) record.momentum.push_back(b.defined() ? b.clone() : Tensor());
    observer_(record);
  }
}

Sgd::Sgd(std::vector<std::pair<std::string, Var>> named_params, SgdOptions options)
    : Optimizer(std::move(named_params)), options_(options), buffers_(params_.size()) {
  THETA_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0, std::invalid_argument,
              "Sgd: lr, momentum and weight_decay must be non-negative, got lr ", options.lr, ", momentum ",
              options.momentum, ", weight_decay ", options.weight_decay);
  THETA_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0), std::invalid_argument,
              "Sgd: nesterov needs momentum > 0 and dampening 0, got momentum ", options.momentum, ", dampening ",
              options.dampening);
  lr_ = options.lr;
}

void Sgd::update(std::size_t i, const Tensor& g) {
  Tensor p = params_[i].second.value();
  Tensor d = options_.weight_decay != 0 ? theta::add(g, p * options_.weight_decay) : g;
  if (options_.momentum != 0) {
    Tensor& b = buffers_[i];
    if (!b.defined()) b = d.contiguous().clone();
    else b = theta::add(b * options_.momentum, d * (1.0 - options_.dampening));
    d = options_.nesterov ? theta::add(d, b * options_.momentum) : b;
  }
  p.add_(d, -lr_);
}

std::vector<NamedTensor> Sgd::state() const {
  std::vector<NamedTensor> out{{"step", step_tensor(steps_)}};
  std::vector<bool> present(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    present[i] = buffers_[i].defined();
    if (present[i]) out.emplace_back("momentum." + params_[i].first, buffers_[i]);
  }
  out.emplace_back("has_state", presence_tensor(present));
  return out;
}

void Sgd::load_state(const std::vector<NamedTensor>& state) {
  const std::int64_t step = find_count(state, "step", 0, kMaxSteps);
  // Without flags: with momentum, every parameter has a buffer once a step was taken.
  const auto present = read_presence(state, params_, step, options_.momentum != 0 && step > 0);
  std::vector<Tensor> loaded(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string key = "momentum." + params_[i].first;
    if (present[i] || contains(state, key)) loaded[i] = find_buffer(state, key, params_[i].second);
  }
  steps_ = step;
  buffers_ = std::move(loaded);
}

Adam::Adam(std::vector<std::pair<std::string, Var>> named_params, AdamOptions options)
    : Optimizer(std::move(named_params)),
      options_(options),
      m_(params_.size()),
      v_(params_.size()),
      param_steps_(params_.size(), 0) {
  THETA_CHECK(options.lr >= 0 && options.eps >= 0 && options.weight_decay >= 0 && options.beta1 >= 0 &&
                  options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
              std::invalid_argument, "Adam: need lr >= 0, eps >= 0, weight_decay >= 0 and betas in [0, 1), got lr ",
              options.lr, ", eps ", options.eps, ", weight_decay ", options.weight_decay, ", betas (", options.beta1,
              ", ", options.beta2, ")");
  lr_ = options.lr;
}

AdamOptions adamw_options(double lr, double weight_decay) {
  return AdamOptions{.lr = lr, .weight_decay = weight_decay, .decoupled_weight_decay = true};
}

void Adam::update(std::size_t i, const Tensor& g_in) {
  Tensor p = params_[i].second.value();
  Tensor g = g_in;
  if (options_.weight_decay != 0) {
    if (options_.decoupled_weight_decay) p.copy_(p * (1.0 - lr_ * options_.weight_decay));
    else g = theta::add(g, p * options_.weight_decay);
  }
  if (!m_[i].defined()) {
    m_[i] = zeros(p.shape(), p.dtype());
    v_[i] = zeros(p.shape(), p.dtype());
  }
  m_[i] = theta::add(m_[i] * options_.beta1, g * (1.0 - options_.beta1));
  v_[i] = theta::add(v_[i] * options_.beta2, theta::square(g) * (1.0 - options_.beta2));
  // Bias correction counts this parameter's own updates (as torch does): a parameter whose first
  // gradient arrives late starts from t = 1.
  const double t = static_cast<double>(++param_steps_[i]);
  const double bias1 = 1.0 - std::pow(options_.beta1, t);
  const double bias2 = 1.0 - std::pow(options_.beta2, t);
  const Tensor denom = theta::sqrt(v_[i]) / std::sqrt(bias2) + options_.eps;
  p.add_(theta::div(m_[i], denom), -lr_ / bias1);
}

std::vector<NamedTensor> Adam::state() const {
  std::vector<NamedTensor> out{{"step", step_tensor(steps_)}};
  std::vector<bool> present(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    present[i] = m_[i].defined();
    if (!present[i]) continue;
    out.emplace_back("exp_avg." + params_[i].first, m_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, v_[i]);
    out.emplace_back("step." + params_[i].first, step_tensor(param_steps_[i]));
  }
  out.emplace_back("has_state", presence_tensor(present));
  return out;
}

void Adam::load_state(const std::vector<NamedTensor>& state) {
  const std::int64_t step = find_count(state, "step", 0, kMaxSteps);
  // Without flags: every parameter has moments once a step was taken.
  const auto present = read_presence(state, params_, step, step > 0);
  std::vector<Tensor> m(params_.size()), v(params_.size());
  std::vector<std::int64_t> steps(params_.size(), 0);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!present[i]) continue;
    const auto& [name, param] = params_[i];
    m[i] = find_buffer(state, "exp_avg." + name, param);
    v[i] = find_buffer(state, "exp_avg_sq." + name, param);
    for (const double x : to_vector(v[i]))
      THETA_CHECK(x >= 0, FormatError, "load_state: 'exp_avg_sq.", name, "' has a negative or NaN element (", x,
                  "): second moments are averages of squares");
    // Without a per-parameter count, every parameter took every step.
    steps[i] = contains(state, "step." + name) ? find_count(state, "step." + name, 1, step) : step;
  }
  steps_ = step;
  m_ = std::move(m);
  v_ = std::move(v);
  param_steps_ = std::move(steps);
}

double LrSchedule::at(std::int64_t epoch) const {
  switch (kind) {
    case Kind::constant: return base_lr;
    case Kind::step: return base_lr * std::pow(gamma, static_cast<double>(epoch / std::max<std::int64_t>(step_size, 1)));
    case Kind::cosine:
      return eta_min + (base_lr - eta_min) *
                           (1.0 + std::cos(std::numbers::pi * static_cast<double>(epoch) /
                                           static_cast<double>(std::max<std::int64_t>(t_max, 1)))) / 2.0;
  }
  return base_lr;
}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  // A negative bound would multiply the gradients by a negative factor: ascent instead of descent.
  THETA_CHECK(max_norm >= 0, std::invalid_argument, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  double total_sq = 0.0;
  for (const auto& p : params)
    if (p.grad().defined()) total_sq += theta::sum(theta::square(p.grad().to(DType::f64))).item();
  const double total = std::sqrt(total_sq);
  const double scale = max_norm / (total + 1e-6);
  if (scale < 1.0)
    for (const auto& p : params)
      if (p.grad().defined()) p.set_grad(p.grad() * scale);
  return total;
}

}  // namespace theta::nn
