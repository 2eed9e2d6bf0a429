#pragma once
// Shared by the theta.nn translation units: option names parsed from Python strings, the loss
// chosen by name, file paths, and the optimiser handle that remembers its model.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"

namespace theta::python {

using nn::NamedTensor;

/// "standard" or "ntk"; ValueError otherwise.
nn::Parameterization parse_parameterization(const std::string& name);
/// "mean", "sum" or "none"; ValueError otherwise.
nn::Reduction parse_reduction(const std::string& name);
/// An activation name ("relu", "tanh", ...); ValueError listing the valid names otherwise.
nn::ActivationKind parse_activation(const std::string& name);

/// Registers Conv2d, AvgPool2d, GlobalAvgPool2d, Unflatten, BatchNorm2d, residual_conv_block and cnn
/// (nn_conv.cpp).
void bind_nn_conv(py::module_& m);

/// The losses train_step, fit and evaluate take by name.
enum class LossKind { mse, cross_entropy, binary_logistic };
/// "mse", "cross_entropy" or "binary_logistic"; ValueError otherwise. `op` names the caller.
LossKind parse_loss(const std::string& name, const char* op);
/// Checks the targets' dtype for the loss (int64 labels for cross_entropy, floating otherwise);
/// TypeError naming `op` otherwise.
void check_targets(LossKind kind, const Tensor& y, const char* op);
/// The mean loss of `output` against `y`.
autograd::Var compute_loss(LossKind kind, const autograd::Var& output, const Tensor& y);

/// A str or os.PathLike as a file system path; TypeError naming `what` otherwise.
std::string path_arg(const py::handle& path, const char* what);

/// {name: array} as named tensors: values through numpy.asarray (torch tensors and anything with
/// __array__ work, zero-copy when possible), keys must be str; a dtype theta does not hold is a
/// TypeError naming `op` and the key.
std::vector<NamedTensor> named_tensors_from_dict(const py::dict& state, const char* op);
/// {name: array} of copies of `tensors`.
py::dict dict_of_copies(const std::vector<NamedTensor>& tensors);

/// Calls whose work (elements touched, roughly) is below this keep the GIL (Note [Short calls keep
/// the GIL] in nn_common.cpp).
constexpr std::int64_t kKeepGilWork = std::int64_t{1} << 16;

/// Runs fn() holding `model`'s lock. A short call (`short_call`) keeps the GIL and only tries the
/// lock, which never waits; a long one, or one that finds the lock taken, releases the GIL and
/// waits for the lock (Note [One call per module]).
template <class Fn>
auto with_module(const nn::Module& model, bool short_call, Fn&& fn) -> decltype(fn()) {
  if (short_call) {
    auto lock = try_lock_module(model);
    if (lock.owns_lock()) return fn();
  }
  ReleaseGil released;
  auto lock = lock_module(model);
  return fn();
}

/// Runs fn() without the GIL when `short_call` is false (a computation that uses no module).
template <class Fn>
auto maybe_without_gil(bool short_call, Fn&& fn) -> decltype(fn()) {
  if (short_call) return fn();
  ReleaseGil released;
  return fn();
}

/// A theta optimiser together with the model whose parameters it updates (so calls can take that
/// model's lock, Note [One call per module], and check that a model and an optimiser belong
/// together). The Python classes SGD, Adam and AdamW derive from it.
struct BoundOptimizer {
  std::shared_ptr<nn::Module> model{};
  std::unique_ptr<nn::Optimizer> impl{};
};

/// ValueError unless `optimizer` was made for `model`; `op` names the caller.
void check_same_model(const BoundOptimizer& optimizer, const nn::Module& model, const char* op);

}  // namespace theta::python
