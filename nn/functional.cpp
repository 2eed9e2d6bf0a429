#include "nn/functional.hpp"

#include <cmath>
#include <numbers>

namespace theta::nn {

namespace {
Var reduce(const Var& per_element, Reduction reduction) {
  switch (reduction) {
    case Reduction::mean: return autograd::mean(per_element);
    case Reduction::sum: return autograd::sum(per_element);
    case Reduction::none: return per_element;
  }
  return per_element;
}

struct NamedKind {
  const char* name;
  ActivationKind kind;
};
constexpr NamedKind kActivations[] = {
    {"identity", ActivationKind::identity}, {"relu", ActivationKind::relu},
    {"leaky_relu", ActivationKind::leaky_relu}, {"tanh", ActivationKind::tanh},
    {"sigmoid", ActivationKind::sigmoid}, {"softplus", ActivationKind::softplus},
    {"gelu", ActivationKind::gelu}, {"erf", ActivationKind::erf}};

// Note [Labels are class indices]
// A label picks a class out of [0, C). The gather that cross_entropy uses to pick the labelled
// log-probability counts negative indices from the end (NumPy style), so label -1 would silently
// train class C - 1, and accuracy's comparison with the argmax would silently count it as a miss.
// Every op that takes labels therefore checks them first, by value, as PyTorch does.
void check_labels(const char* op, const Tensor& labels, std::int64_t classes) {
  const Tensor l = labels.contiguous();
  const std::int64_t* p = l.data<std::int64_t>();
  for (std::int64_t i = 0; i < l.numel(); ++i)
    THETA_CHECK(p[i] >= 0 && p[i] < classes, IndexError, op, ": label ", p[i], " (row ", i,
                ") is out of range for ", classes, " classes: labels must be in [0, ", classes, ")");
}

// A loss's two operands must share a floating dtype; otherwise the subtraction or product inside
// would report itself ("sub: dtype mismatch") instead of the loss.
void check_same_dtype(const char* op, const char* a_name, const Var& a, const char* b_name, const Var& b) {
  THETA_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()), DTypeError, op, ": ", a_name, " is ",
              dtype_name(a.dtype()), " and ", b_name, " ", dtype_name(b.dtype()),
              "; both must have the same floating dtype (convert one with .to())");
}
}  // namespace

ActivationKind activation_from_name(const std::string& name) {
  for (const auto& a : kActivations)
    if (name == a.name) return a.kind;
  THETA_THROW(std::invalid_argument, "unknown activation '", name,
              "' (valid: identity, relu, leaky_relu, tanh, sigmoid, softplus, gelu, erf)");
}

const char* activation_name(ActivationKind kind) {
  for (const auto& a : kActivations)
    if (kind == a.kind) return a.name;
  return "unknown";
}

Var activate(const Var& x, ActivationKind kind, double negative_slope) {
  switch (kind) {
    case ActivationKind::identity: return x;
    case ActivationKind::relu: return autograd::relu(x);
    case ActivationKind::leaky_relu: return leaky_relu(x, negative_slope);
    case ActivationKind::tanh: return autograd::tanh(x);
    case ActivationKind::sigmoid: return autograd::sigmoid(x);
    case ActivationKind::softplus: return softplus(x);
    case ActivationKind::gelu: return gelu(x);
    case ActivationKind::erf: return autograd::erf(x);
  }
  return x;
}

Var leaky_relu(const Var& x, double negative_slope) {
  const Tensor positive = theta::gt(x.value(), zeros({}, x.dtype()));
  return autograd::where(positive, x, x * negative_slope);
}

Var softplus(const Var& x) {
  // -|x| as a where, so that x = 0 takes the x <= 0 branch's slope: with |x|'(0) = relu'(0) = 0
  // the gradient there would be 0 instead of sigmoid(0) = 1/2 (and the second derivative 0).
  const Tensor positive = theta::gt(x.value(), zeros({}, x.dtype()));
  return autograd::relu(x) + autograd::log1p(autograd::exp(autograd::where(positive, -x, x)));
}

Var gelu(const Var& x) {
  return x * (autograd::erf(x * (1.0 / std::numbers::sqrt2)) + 1.0) * 0.5;
}

Var mse_loss(const Var& pred, const Var& target, Reduction reduction) {
  THETA_CHECK(pred.shape() == target.shape(), ShapeError, "mse_loss: prediction ",
              shape_str(pred.shape()), " and target ", shape_str(target.shape()), " differ");
  check_same_dtype("mse_loss", "prediction", pred, "target", target);
  return reduce(autograd::square(pred - target), reduction);
}

Var cross_entropy(const Var& logits, const Tensor& labels, Reduction reduction) {
  THETA_CHECK(logits.dim() == 2, ShapeError, "cross_entropy: logits must be [n, C], got ", shape_str(logits.shape()));
  THETA_CHECK(labels.dtype() == DType::i64, DTypeError, "cross_entropy: labels must be int64, got ",
              dtype_name(labels.dtype()));
  THETA_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError, "cross_entropy: labels ",
              shape_str(labels.shape()), " do not match logits ", shape_str(logits.shape()));
  check_labels("cross_entropy", labels, logits.size(1));
  const Var logp = autograd::log_softmax(logits, 1);
  const Var picked = autograd::gather(logp, 1, labels.reshape_copy({-1, 1}));
  return reduce(-autograd::reshape(picked, {labels.size(0)}), reduction);
}

Var binary_logistic_loss(const Var& logits, const Var& targets, Reduction reduction) {
  THETA_CHECK(logits.shape() == targets.shape(), ShapeError, "binary_logistic_loss: logits ",
              shape_str(logits.shape()), " and targets ", shape_str(targets.shape()), " differ");
  check_same_dtype("binary_logistic_loss", "logits", logits, "targets", targets);
  return reduce(softplus(logits) - logits * targets, reduction);
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  THETA_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError,
              "accuracy: logits ", shape_str(logits.shape()), " and labels ", shape_str(labels.shape()),
              " do not match");
  THETA_CHECK(labels.dtype() == DType::i64, DTypeError, "accuracy: labels must be int64, got ",
              dtype_name(labels.dtype()));
  check_labels("accuracy", labels, logits.size(1));
  if (labels.size(0) == 0) return 0.0;
  const Tensor hits = theta::eq(theta::argmax(logits, 1), labels);
  return static_cast<double>(theta::sum(hits).item<std::int64_t>()) / static_cast<double>(labels.size(0));
}

double accuracy(const Var& logits, const Tensor& labels) { return accuracy(logits.value(), labels); }

}  // namespace theta::nn
