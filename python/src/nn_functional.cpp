// theta.nn functional forms (losses, activations, accuracy) on arrays or Vars, predict and
// evaluate on a model, and the theta.nn.init schemes.

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/var.hpp"
#include "nn/eval.hpp"
#include "nn/init.hpp"
#include "nn_common.hpp"

namespace theta::python {

namespace {

using autograd::Var;

// Note [Arrays or Vars]
// Each functional form has two overloads. On theta.autograd.Var arguments it returns a Var (part
// of the graph, differentiable to any order); on arrays it computes without recording and returns
// an array, or a float for a mean or sum. The Var overload is registered first: an array never
// converts to a Var, so arrays fall through to the second.

py::object reduced(const Tensor& value, nn::Reduction reduction) {
  if (reduction == nn::Reduction::none) return array_from_tensor(value);
  return py::float_(value.item<double>());
}

// fn()'s value, computed without recording; with the GIL released unless the input is small
// (`elements` below kKeepGilWork, Note [Short calls keep the GIL]).
template <class Fn>
Tensor no_grad_value(std::int64_t elements, Fn&& fn) {
  return maybe_without_gil(elements < kKeepGilWork, [&] {
    autograd::NoGradGuard no_grad;
    return fn().value();
  });
}

// Whether running `model` on x is short enough to keep the GIL: parameters times batch rows.
bool short_forward(const nn::Module& model, const Tensor& x) {
  return model.parameter_count() * (x.dim() > 0 ? x.size(0) : 1) < kKeepGilWork;
}

void bind_losses(py::module_& m) {
  m.def(
      "mse_loss",
      [](const Var& pred, const Var& target, const std::string& reduction) {
        return nn::mse_loss(pred, target, parse_reduction(reduction));
      },
      py::arg("pred"), py::arg("target"), py::arg("reduction") = "mean");
  m.def(
      "mse_loss",
      [](const Tensor& pred, const Tensor& target, const std::string& reduction) {
        const auto r = parse_reduction(reduction);
        return reduced(no_grad_value(pred.numel(), [&] { return nn::mse_loss(Var(pred), Var(target), r); }), r);
      },
      py::arg("pred"), py::arg("target"), py::arg("reduction") = "mean",
      "Squared error of pred against target (same shape); \"mean\" over all elements, \"sum\" or \"none\".");
  m.def(
      "cross_entropy",
      [](const Var& logits, const Tensor& labels, const std::string& reduction) {
        return nn::cross_entropy(logits, labels, parse_reduction(reduction));
      },
      py::arg("logits"), py::arg("labels"), py::arg("reduction") = "mean");
  m.def(
      "cross_entropy",
      [](const Tensor& logits, const Tensor& labels, const std::string& reduction) {
        const auto r = parse_reduction(reduction);
        return reduced(no_grad_value(logits.numel(), [&] { return nn::cross_entropy(Var(logits), labels, r); }), r);
      },
      py::arg("logits"), py::arg("labels"), py::arg("reduction") = "mean",
      "Softmax cross-entropy of logits [n, C] against int64 labels [n] in [0, C) (IndexError outside).");
  m.def(
      "binary_logistic_loss",
      [](const Var& logits, const Var& targets, const std::string& reduction) {
        return nn::binary_logistic_loss(logits, targets, parse_reduction(reduction));
      },
      py::arg("logits"), py::arg("targets"), py::arg("reduction") = "mean");
  m.def(
      "binary_logistic_loss",
      [](const Tensor& logits, const Tensor& targets, const std::string& reduction) {
        const auto r = parse_reduction(reduction);
        return reduced(
            no_grad_value(logits.numel(), [&] { return nn::binary_logistic_loss(Var(logits), Var(targets), r); }), r);
      },
      py::arg("logits"), py::arg("targets"), py::arg("reduction") = "mean",
      "Binary logistic loss of logits [n] against targets in {0, 1} [n] (stable for any logit).");
  m.def(
      "accuracy", [](const Var& logits, const Tensor& labels) { return nn::accuracy(logits, labels); },
      py::arg("logits"), py::arg("labels"));
  m.def(
      "accuracy",
      [](const Tensor& logits, const Tensor& labels) {
        return maybe_without_gil(logits.numel() < kKeepGilWork, [&] { return nn::accuracy(logits, labels); });
      },
      py::arg("logits"), py::arg("labels"), "Fraction of rows of logits [n, C] whose argmax is the int64 label [n].");
}

void bind_activations(py::module_& m) {
  m.def(
      "activate",
      [](const Var& x, const std::string& name, double negative_slope) {
        return nn::activate(x, parse_activation(name), negative_slope);
      },
      py::arg("x"), py::arg("name"), py::arg("negative_slope") = 0.01);
  m.def(
      "activate",
      [](const Tensor& x, const std::string& name, double negative_slope) {
        const auto kind = parse_activation(name);
        return no_grad_value(x.numel(), [&] { return nn::activate(Var(x), kind, negative_slope); });
      },
      py::arg("x"), py::arg("name"), py::arg("negative_slope") = 0.01,
      "The activation `name` (as Activation takes it) elementwise.");
  m.def(
      "leaky_relu", [](const Var& x, double slope) { return nn::leaky_relu(x, slope); }, py::arg("x"),
      py::arg("negative_slope") = 0.01);
  m.def(
      "leaky_relu",
      [](const Tensor& x, double slope) {
        return no_grad_value(x.numel(), [&] { return nn::leaky_relu(Var(x), slope); });
      },
      py::arg("x"), py::arg("negative_slope") = 0.01, "x for x > 0, negative_slope * x otherwise.");
  m.def(
      "softplus", [](const Var& x) { return nn::softplus(x); }, py::arg("x"));
  m.def(
      "softplus", [](const Tensor& x) { return no_grad_value(x.numel(), [&] { return nn::softplus(Var(x)); }); },
      py::arg("x"), "log(1 + e^x), computed stably.");
  m.def(
      "gelu", [](const Var& x) { return nn::gelu(x); }, py::arg("x"));
  m.def(
      "gelu", [](const Tensor& x) { return no_grad_value(x.numel(), [&] { return nn::gelu(Var(x)); }); }, py::arg("x"),
      "x Phi(x) with the exact (erf) Gaussian CDF.");
}

void bind_evaluation(py::module_& m) {
  m.def(
      "predict",
      [](nn::Module& model, const Tensor& x) {
        return with_module(model, short_forward(model, x), [&] { return nn::predict(model, x); });
      },
      py::arg("model"), py::arg("x"),
      "The model's output on x in evaluation mode (BatchNorm uses its running statistics and writes no "
      "buffer), without recording a graph; the model's train/eval modes are as before on return.");
  m.def(
      "evaluate",
      [](nn::Module& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        const LossKind kind = parse_loss(loss, "evaluate");
        check_targets(kind, y, "evaluate");
        double value = 0.0, accuracy = 0.0;
        with_module(model, short_forward(model, x), [&] {
          const Tensor out = nn::predict(model, x);
          autograd::NoGradGuard no_grad;
          value = compute_loss(kind, Var(out), y).item();
          if (kind == LossKind::cross_entropy) accuracy = nn::accuracy(out, y);
        });
        py::dict result;
        result["loss"] = value;
        if (kind == LossKind::cross_entropy) result["accuracy"] = accuracy;
        return result;
      },
      py::arg("model"), py::arg("x"), py::arg("y"), py::arg("loss") = "cross_entropy",
      "The mean loss of predict(model, x) against y, and for \"cross_entropy\" the accuracy: "
      "{\"loss\": L, \"accuracy\": A}.");
}

void bind_init(py::module_& nn_module) {
  auto m = nn_module.def_submodule("init", "Weight initialisation schemes: arrays drawn from Rng(seed).");
  using RandomInit = Tensor (*)(const Shape&, Rng&, DType);
  const auto random = [&m](const char* name, RandomInit fn, const char* doc) {
    m.def(
        name,
        [fn](const std::vector<std::int64_t>& shape, std::uint64_t seed, const py::handle& dtype) {
          const DType d = parse_dtype(dtype);
          Rng rng(seed);
          return fn(Shape(shape), rng, d);
        },
        py::arg("shape"), py::arg("seed") = 0, py::arg("dtype") = "float64", doc);
  };
  random("lecun_normal", &nn::init::lecun_normal, "N(0, 1/fan_in).");
  random("lecun_uniform", &nn::init::lecun_uniform, "U(-sqrt(3/fan_in), sqrt(3/fan_in)).");
  random("he_normal", &nn::init::he_normal, "N(0, 2/fan_in) (Kaiming, for ReLU).");
  random("he_uniform", &nn::init::he_uniform, "U(-sqrt(6/fan_in), sqrt(6/fan_in)).");
  random("xavier_normal", &nn::init::xavier_normal, "N(0, 2/(fan_in + fan_out)) (Glorot).");
  random("xavier_uniform", &nn::init::xavier_uniform, "U(-sqrt(6/(fan_in + fan_out)), sqrt(6/(fan_in + fan_out))).");
  m.def(
      "orthogonal",
      [](const std::vector<std::int64_t>& shape, std::uint64_t seed, double gain, const py::handle& dtype) {
        const DType d = parse_dtype(dtype);
        Rng rng(seed);
        return nn::init::orthogonal(Shape(shape), rng, gain, d);
      },
      py::arg("shape"), py::arg("seed") = 0, py::arg("gain") = 1.0, py::arg("dtype") = "float64",
      "A (semi-)orthogonal [rows, cols] matrix times gain.");
  m.def(
      "zeros",
      [](const std::vector<std::int64_t>& shape, const py::handle& dtype) {
        return nn::init::zeros_init(Shape(shape), parse_dtype(dtype));
      },
      py::arg("shape"), py::arg("dtype") = "float64", "All zeros.");
  m.def(
      "constant",
      [](const std::vector<std::int64_t>& shape, double value, const py::handle& dtype) {
        return nn::init::constant(Shape(shape), value, parse_dtype(dtype));
      },
      py::arg("shape"), py::arg("value"), py::arg("dtype") = "float64", "All `value`.");
  m.def(
      "fans", [](const std::vector<std::int64_t>& shape) { return nn::init::fans(Shape(shape)); }, py::arg("shape"),
      "(fan_in, fan_out) of a weight shape [out, in, ...].");
}

}  // namespace

void bind_nn_functional(py::module_& m) {
  bind_losses(m);
  bind_activations(m);
  bind_evaluation(m);
  bind_init(m);
}

}  // namespace theta::python
