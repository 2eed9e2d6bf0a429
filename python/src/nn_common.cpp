// Option names, losses by name, paths and the optimiser handle shared by the theta.nn bindings.

#include <stdexcept>
#include <string>

#include "nn_common.hpp"

namespace theta::python {

// Note [Short calls keep the GIL]
// Releasing the GIL is free when no other Python thread wants it, but when one is busy, taking it
// back waits for that thread's switch interval (5 ms by default): a train_step of a few
// microseconds took 4 ms, measured, beside a thread running a Python loop. So calls whose work is
// a few microseconds (fewer than kKeepGilWork elements touched: a small model's training step,
// a loss on a small batch, reading an optimiser's learning rate) keep the GIL; a model's lock is
// then only tried (try_lock_module, which never waits), and a call that finds it taken releases
// the GIL and waits like any other (Note [One call per module]). Longer calls release the GIL, so
// other Python threads run meanwhile.

nn::Parameterization parse_parameterization(const std::string& name) {
  if (name == "standard") return nn::Parameterization::standard;
  if (name == "ntk") return nn::Parameterization::ntk;
  throw py::value_error("parameterization: expected \"standard\" or \"ntk\", got \"" + name + "\"");
}

nn::Reduction parse_reduction(const std::string& name) {
  if (name == "mean") return nn::Reduction::mean;
  if (name == "sum") return nn::Reduction::sum;
  if (name == "none") return nn::Reduction::none;
  throw py::value_error("reduction: expected \"mean\", \"sum\" or \"none\", got \"" + name + "\"");
}

nn::ActivationKind parse_activation(const std::string& name) {
  try {
    return nn::activation_from_name(name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string("activation: ") + e.what());
  }
}

LossKind parse_loss(const std::string& name, const char* op) {
  if (name == "mse") return LossKind::mse;
  if (name == "cross_entropy") return LossKind::cross_entropy;
  if (name == "binary_logistic") return LossKind::binary_logistic;
  throw py::value_error(std::string(op) + ": loss must be \"mse\", \"cross_entropy\" or \"binary_logistic\", got \"" +
                        name + "\"");
}

void check_targets(LossKind kind, const Tensor& y, const char* op) {
  if (kind == LossKind::cross_entropy && y.dtype() != DType::i64)
    throw py::type_error(std::string(op) + ": loss \"cross_entropy\" needs int64 class labels y, got " +
                         dtype_name(y.dtype()) + " (convert with y.astype(numpy.int64))");
  if (kind != LossKind::cross_entropy && !is_floating(y.dtype()))
    throw py::type_error(std::string(op) + ": this loss needs floating targets y, got " + dtype_name(y.dtype()) +
                         " (convert with y.astype(numpy.float64))");
}

autograd::Var compute_loss(LossKind kind, const autograd::Var& output, const Tensor& y) {
  switch (kind) {
    case LossKind::mse:
      return nn::mse_loss(output, autograd::Var(y));
    case LossKind::cross_entropy:
      return nn::cross_entropy(output, y);
    case LossKind::binary_logistic:
      return nn::binary_logistic_loss(output, autograd::Var(y));
  }
  throw InternalError("compute_loss: unknown loss");
}

std::string path_arg(const py::handle& path, const char* what) {
  try {
    return py::module_::import("os").attr("fspath")(path).cast<std::string>();
  } catch (const py::error_already_set&) {
    throw py::type_error(std::string(what) + ": expected a str or os.PathLike path, got " +
                         std::string(py::str(py::type::of(path))));
  }
}

void check_same_model(const BoundOptimizer& optimizer, const nn::Module& model, const char* op) {
  if (optimizer.model.get() != &model)
    throw py::value_error(std::string(op) + ": the optimizer was made for another model (" +
                          optimizer.model->describe() + "), not this one (" + model.describe() + ")");
}

}  // namespace theta::python
