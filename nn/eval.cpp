#include "nn/eval.hpp"

namespace theta::nn {

EvalGuard::EvalGuard(Module& model) {
  for (const auto& [name, m] : model.named_modules()) modes_.emplace_back(m, m->training());
  model.eval();
}

// named_modules() lists a module before its descendants, and Module::train() sets a whole
// subtree: restoring in that order leaves every module with its own saved mode.
EvalGuard::~EvalGuard() {
  for (const auto& [module, training] : modes_) module->train(training);
}

Tensor predict(Module& model, const Tensor& x) {
  const EvalGuard eval(model);
  return model(Var(x)).value();
}

}  // namespace theta::nn
