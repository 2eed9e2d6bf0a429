#pragma once
// Activations, losses and metrics as functions of Vars, composed from autograd primitives (so
// every one of them is differentiable to any order).

#include <string>

#include "autograd/ops.hpp"

namespace theta::nn {

using autograd::Var;

/// Activation functions selectable by name in Activation and MLP.
enum class ActivationKind { identity, relu, leaky_relu, tanh, sigmoid, softplus, gelu, erf };

/// "relu" -> ActivationKind::relu (throws std::invalid_argument listing the valid names).
ActivationKind activation_from_name(const std::string& name);
const char* activation_name(ActivationKind kind);

/// Applies `kind` elementwise (leaky_relu uses `negative_slope`).
Var activate(const Var& x, ActivationKind kind, double negative_slope = 0.01);

/// x for x > 0, slope * x otherwise.
Var leaky_relu(const Var& x, double negative_slope = 0.01);
/// log(1 + e^x), computed stably as max(x, 0) + log1p(e^-|x|).
Var softplus(const Var& x);
/// x * Phi(x) with the exact (erf) Gaussian CDF.
Var gelu(const Var& x);

enum class Reduction { mean, sum, none };

/// Squared error: pred and target of the same shape; mean is over all elements.
Var mse_loss(const Var& pred, const Var& target, Reduction reduction = Reduction::mean);
/// Softmax cross-entropy from logits [n, C] and int64 labels [n] in [0, C) (stable for any logit
/// size); a label outside [0, C) throws IndexError naming it.
Var cross_entropy(const Var& logits, const Tensor& labels, Reduction reduction = Reduction::mean);
/// Binary logistic loss from logits [n] and targets in {0, 1} [n] (stable).
Var binary_logistic_loss(const Var& logits, const Var& targets, Reduction reduction = Reduction::mean);
/// Fraction of rows whose argmax equals the label: logits [n, C], labels [n] int64 in [0, C).
double accuracy(const Tensor& logits, const Tensor& labels);
/// The same for a model's output as a Var (its value is used; nothing is recorded).
double accuracy(const Var& logits, const Tensor& labels);

}  // namespace theta::nn
