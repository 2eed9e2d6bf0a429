#pragma once
// The lazy-training scaling of Chizat, Oyallon and Bach (2019): a model recentred at its
// initialisation and multiplied by alpha, the knob that moves training between the rich regime
// (alpha ~ 1) and the kernel regime (alpha -> infinity).

#include <memory>
#include <string>

#include "nn/module.hpp"

namespace theta::theory {

using autograd::Var;

// Note [Lazy scaling]
// g_alpha(w, x) = alpha (f(w, x) - f(w0, x)), trained on the loss L(g) / alpha^2. For the squared
// loss 1/2 |g - y|^2 and a step eta, one gradient step changes the parameters by
// -(eta / alpha) J^T (g - y) and the outputs, to first order, by -eta J J^T (g - y): the same
// kernel dynamics for every alpha, reached with parameter moves of size O(1 / alpha). So as alpha
// grows the model stays in the region where it equals its linearisation, the gap between the two
// (second order in the moves, times alpha) shrinks like 1 / alpha, and the trained model's
// predictions approach kernel regression with the NTK of f at w0 (ntk_regression, discrete for
// plain gradient descent). Recentring makes g start at 0, so the random initial function does
// not blow up with alpha.

/// alpha (f(w, x) - f(w0, x)) for a model f (Note [Lazy scaling]). Its parameters are the model's,
/// named "model.<name>", and start at w0; f(w0, x) comes from a private copy of the model taken at
/// construction and never trained (evaluated without recording, in the model's train/eval mode,
/// its buffers left as they were).
class LazyScaled : public nn::Cloneable<LazyScaled> {
 public:
  /// Wraps `model` (trained through this module; not copied) with the given alpha > 0 (finite).
  LazyScaled(std::shared_ptr<nn::Module> model, double alpha);
  /// A copy has its own copy of f at w0: forward saves and restores that module's buffers, so two
  /// modules sharing it could not run on two threads (as loss_surface's workers do).
  LazyScaled(const LazyScaled& other);

  /// alpha (f(w, x) - f(w0, x)): x [batch, ...] -> the model's output shape.
  Var forward(const Var& x) override;
  std::string describe() const override;

  double alpha() const { return alpha_; }
  /// The wrapped model f (with the current parameters w).
  nn::Module& model() const { return child(0); }

 private:
  std::shared_ptr<nn::Module> initial_;  // f at w0, never trained
  double alpha_;
};

/// std::make_shared<LazyScaled>(model, alpha).
std::shared_ptr<LazyScaled> lazy_scaled(std::shared_ptr<nn::Module> model, double alpha);

}  // namespace theta::theory
