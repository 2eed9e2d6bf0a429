#pragma once
// Shared by the translation units of the Python module: the Tensor <-> NumPy conversion (a
// pybind11 type caster, so every bound function takes and returns NumPy arrays), the GIL guard
// for long calls, and the per-area bind_* entry points module.cpp calls.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>

#include "tensor/tensor.hpp"

namespace theta::nn {
class Module;
}
namespace theta::autograd {
class Var;
}

namespace theta::python {

namespace py = pybind11;

/// The Python-visible tensor object, `theta.Tensor`: one handle on a theta Tensor. It exports the
/// buffer protocol, so np.asarray(t) is a view of the same memory that keeps the storage alive.
/// (A wrapper, not py::class_<Tensor> itself, so that plain Tensor arguments and results can
/// convert to and from NumPy arrays through the caster below.)
struct PyTensor {
  Tensor value;
};

/// The NumPy dtype of a theta dtype.
py::dtype numpy_dtype(DType dtype);

/// The theta dtype of a NumPy dtype; throws py::type_error naming `what` for any other dtype.
DType theta_dtype(const py::dtype& dtype, const char* what);

/// A dtype given as "float64", "f64", numpy.float64 or a numpy.dtype.
DType parse_dtype(const py::handle& spec);

/// A Tensor on the array's memory (Note [Arrays in]) or, when the array is not C-contiguous,
/// aligned and writeable, or `copy` is true, on a copy. Raises TypeError for an unsupported dtype.
Tensor tensor_from_array(const py::array& array, bool copy = false);

/// A NumPy array viewing `tensor` (its shape, strides and memory) whose base keeps it alive.
py::array array_from_tensor(const Tensor& tensor);

/// Converts a theta.Tensor, a NumPy array or anything np.asarray accepts without a cast
/// (nested lists of floats) to a Tensor; TypeError otherwise.
Tensor to_tensor(const py::handle& object, const char* what = "argument");

/// Guard for calls that run long: releases the GIL and lets the interrupt hook poll for Ctrl-C on
/// this thread (Note [Interrupt points] in tensor/interrupt.cpp). Use as
/// py::call_guard<ReleaseGil>() or as a scoped object after the arguments are converted. No
/// Python object may be touched while it is alive.
class ReleaseGil {
 public:
  ReleaseGil();
  ~ReleaseGil();
  ReleaseGil(const ReleaseGil&) = delete;
  ReleaseGil& operator=(const ReleaseGil&) = delete;

 private:
  bool was_polling_;
  py::gil_scoped_release release_;
};

/// Makes theta's long loops poll for Ctrl-C while a ReleaseGil is alive (called once, at import).
void install_interrupt_hook();

/// Runs fn() with the GIL released (see ReleaseGil) and returns its result.
template <class Fn> auto without_gil(Fn&& fn) -> decltype(fn()) {
  ReleaseGil guard;
  return fn();
}

/// The lock every bound call that uses `module` holds while it runs (Note [One call per module]
/// in module_bindings.cpp). Take it after the GIL is released.
std::unique_lock<std::mutex> lock_module(const nn::Module& module);
/// The same lock if it is free now (check owns_lock()); never waits, so it may be tried with the
/// GIL held, by calls too short to release it.
std::unique_lock<std::mutex> try_lock_module(const nn::Module& module);

// Per-area registration, one translation unit each.
void bind_errors(py::module_& m);
void bind_tensor(py::module_& m);
void bind_autograd(py::module_& m);
void bind_autograd_var(py::module_& m);         // theta.autograd.Var, grad, backward, modes
void bind_autograd_ops(py::module_& m);         // the differentiable ops as functions
void bind_autograd_transforms(py::module_& m);  // vjp, jvp, hvp, jacobian, hessian, ...

/// A Var from a theta.autograd.Var (shared), or a constant Var on an array, theta.Tensor or
/// number (Python numbers become float64); TypeError naming `what` otherwise.
autograd::Var to_var(const py::handle& object, const char* what = "argument");

/// The lock autograd calls that run without the GIL hold while they read or write graph state
/// (Note [Autograd without the GIL] in autograd_var.cpp). Take it after the GIL is released.
std::unique_lock<std::mutex> lock_graph();
void bind_module(py::module_& m);  // theta.nn.Module, called by bind_nn first
void bind_nn(py::module_& m);
void bind_nn_layers(py::module_& m);      // Linear, Sequential, ..., mlp, residual_mlp
void bind_nn_state(py::module_& m);       // Module.state_dict / load_state_dict, checkpoints, npz
void bind_nn_functional(py::module_& m);  // losses, activations, predict, evaluate, nn.init
void bind_nn_training(py::module_& m);    // optimisers, train_step, fit
void bind_nn_data(py::module_& m);        // load_digits, load_iris, splits, standardisation
void bind_theory(py::module_& m);

}  // namespace theta::python

namespace pybind11::detail {

/// theta::Tensor arguments accept theta.Tensor objects and NumPy arrays (zero-copy when possible);
/// theta::Tensor results become NumPy arrays viewing the result's memory.
template <> struct type_caster<theta::Tensor> {
 public:
  PYBIND11_TYPE_CASTER(theta::Tensor, const_name("numpy.ndarray"));

  bool load(handle source, bool convert);
  static handle cast(const theta::Tensor& tensor, return_value_policy policy, handle parent);
};

}  // namespace pybind11::detail
