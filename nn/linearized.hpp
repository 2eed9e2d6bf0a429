#pragma once
// The linearisation of a model in its parameters, as a Module that trains like any other.

#include <memory>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace theta::nn {

// Note [Linearised model]
// f_lin(w, x) = f(w0, x) + J(w0, x) (w - w0), the first-order Taylor expansion of a model f in
// its parameters around w0. Its parameters w start at w0; its forward is one forward-mode pass of
// f at w0 with tangent w - w0 (a JVP, about the cost of two forwards), whose tangent rules are
// recorded, so backpropagation reaches w (reverse over forward): optimisers, losses and theory
// tools see an ordinary module. Its Jacobian in w is J(w0) wherever w is, so its empirical NTK
// is the model's NTK at w0, and gradient descent on a squared loss follows the kernel dynamics
// exactly: the lazy-training limit (Chizat, Oyallon & Bach 2019), computed rather than assumed.
// Inside an open forward-mode level (a forward-over-reverse HVP of its loss) the JVP is taken by
// two reverse passes instead, so its tangent rules can carry the outer level's tangents.

/// f_lin(w, x) = f(w0, x) + J(w0, x)(w - w0) (Note [Linearised model]). Made by linearize().
class Linearized : public Cloneable<Linearized> {
 public:
  /// Expands `model` around its current parameters; keeps a private deep copy of it.
  explicit Linearized(const Module& model);
  /// A copy has its own copy of the model at w0: forward saves and restores that module's
  /// buffers, so two modules sharing it could not run on two threads.
  Linearized(const Linearized& other);

  /// f(w0, x) + J(w0, x)(w - w0): x [batch, ...] -> the model's output shape.
  Var forward(const Var& x) override;
  std::string describe() const override;

  /// The expansion point w0, one tensor per parameter (the model's named_parameters() order).
  const std::vector<Tensor>& origin() const { return origin_; }

 private:
  std::shared_ptr<Module> base_;  // the model at w0, never trained
  std::vector<Tensor> origin_;
};

/// The linearisation of `model` around its current parameters: a new module whose parameters
/// (the model's names and shapes, starting at the model's values) are trained instead; `model`
/// itself is not touched. The expansion keeps the model's mode (train or eval) at each call.
std::shared_ptr<Linearized> linearize(const Module& model);

}  // namespace theta::nn
