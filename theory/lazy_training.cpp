#include "theory/lazy_training.hpp"

#include <cmath>

#include "autograd/ops.hpp"
#include "theory/checks.hpp"

namespace theta::theory {

LazyScaled::LazyScaled(std::shared_ptr<nn::Module> model, double alpha) : alpha_(alpha) {
  THETA_CHECK(model != nullptr, std::invalid_argument, "LazyScaled: model is null");
  detail::require_finite(alpha, "LazyScaled", "alpha");
  THETA_CHECK(alpha > 0.0, std::invalid_argument, "LazyScaled: alpha must be > 0, got ", alpha);
  initial_ = model->clone();
  train(model->training());
  register_module("model", std::move(model));
}

LazyScaled::LazyScaled(const LazyScaled& other)
    : nn::Cloneable<LazyScaled>(other), initial_(other.initial_->clone()), alpha_(other.alpha_) {}

Var LazyScaled::forward(const Var& x) {
  nn::Module& f = model();
  if (initial_->training() != f.training()) initial_->train(f.training());
  Var start;
  {
    const nn::BufferSnapshot keep_buffers(*initial_);
    const autograd::NoGradGuard no_grad;
    start = (*initial_)(x);
  }
  return (f(x) - start) * alpha_;
}

std::string LazyScaled::describe() const {
  return "LazyScaled(alpha=" + std::to_string(alpha_) + ", " + model().describe() + ")";
}

std::shared_ptr<LazyScaled> lazy_scaled(std::shared_ptr<nn::Module> model, double alpha) {
  return std::make_shared<LazyScaled>(std::move(model), alpha);
}

}  // namespace theta::theory
