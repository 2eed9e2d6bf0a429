#pragma once
// Evaluating a model: EvalGuard (evaluation mode and no graph recording for a scope, the previous
// modes restored on exit) and predict() (one call: the model's output on a batch as a Tensor).
//
//   Tensor logits = nn::predict(*net, test.x);      // eval mode, no graph, modes restored
//   double acc = nn::accuracy(logits, test.y);
//
//   {
//     nn::EvalGuard eval(*net);                     // like PyTorch's model.eval() + torch.no_grad()
//     Var out = (*net)(x);                          // ... any number of calls; out records no graph
//   }                                               // net's train/eval modes and grad mode restored

#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace theta::nn {

/// In its scope: `model` and every module in it in evaluation mode (Module::eval(): BatchNorm
/// uses its running statistics and writes no buffer) and autograd recording off
/// (autograd::NoGradGuard). On exit, each module gets back its own previous train/eval mode (a
/// model whose parts were in different modes gets exactly those back) and grad mode its previous
/// value, also when the scope is left by an exception.
class EvalGuard {
 public:
  explicit EvalGuard(Module& model);
  ~EvalGuard();
  EvalGuard(const EvalGuard&) = delete;
  EvalGuard& operator=(const EvalGuard&) = delete;

 private:
  std::vector<std::pair<Module*, bool>> modes_;  // every module with its training() on entry
  autograd::NoGradGuard no_grad_;
};

/// The model's output on x in evaluation mode without recording a graph (under an EvalGuard):
/// x:[n, ...] -> model(x) as a Tensor, e.g. logits [n, C]. The model's modes are as before on
/// return.
Tensor predict(Module& model, const Tensor& x);

}  // namespace theta::nn
