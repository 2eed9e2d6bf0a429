#pragma once
// What the parts of implicit_bias_demo share: full-batch gradient descent through nn, bias-free
// linear models and the least-squares loss, and the four parts themselves.

#include <cstdint>
#include <memory>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "theory/demos/demo_common.hpp"

namespace theta::demos::implicit_bias {

inline double norm2(const Tensor& t) { return frobenius(t); }

// Full-batch GD through nn: nn::Sgd with `options` on loss(); observe(k, loss) sees the model at
// w_k for k = 0..steps (before step k + 1 is taken).
template <class Loss, class Observe>
void gradient_descent(nn::Module& model, const nn::SgdOptions& options, std::int64_t steps, Loss&& loss,
                      Observe&& observe) {
  nn::Sgd sgd(model.named_parameters(), options);
  for (std::int64_t k = 0;; ++k) {
    const nn::Var value = loss();
    observe(k, value);
    if (k == steps) break;
    sgd.zero_grad();
    autograd::backward(value);
    sgd.step();
  }
}

// A bias-free nn::Linear(d -> outputs) starting at `w0` ([outputs, d]).
std::shared_ptr<nn::Linear> linear_model(const Tensor& w0, Rng& rng);

// L = 1/(2n) |model(x) - y|^2 summed over outputs: x:[n, d], y:[n, outputs].
nn::Var half_mse(nn::Module& model, const nn::Var& x, const nn::Var& y);

// The four parts (the demo's header comment lists them); each records its checks and CSV files.
void min_norm_part(const DemoArgs& args, Results& results, Rng& rng);       // least_squares_parts.cpp
void early_stopping_part(const DemoArgs& args, Results& results, Rng& rng); // least_squares_parts.cpp
void logistic_part(const DemoArgs& args, Results& results, Rng& rng);       // logistic_part.cpp
void diagonal_part(Results& results, Rng& rng);                             // diagonal_part.cpp

}  // namespace theta::demos::implicit_bias
