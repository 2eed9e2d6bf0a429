// The extension module theta._theta; python/theta/__init__.py re-exports it with Python sugar.

#include "bindings.hpp"
#include "tensor/blas_runtime.hpp"

PYBIND11_MODULE(_theta, m) {
  namespace tp = theta::python;
  m.doc() = "theta: float64 tensors, autodiff and deep-learning theory tools (C++ core)";
  // NumPy's C API is needed by every conversion; importing it here gives a clear error early.
  pybind11::module_::import("numpy");
  tp::install_interrupt_hook();
  theta::warn_if_blas_fallback();
  tp::bind_errors(m);
  tp::bind_tensor(m);
  auto autograd = m.def_submodule("autograd", "Vars, reverse-mode autodiff and function transforms");
  tp::bind_autograd(autograd);
  auto nn = m.def_submodule("nn", "Modules, losses, optimisers, data and training");
  tp::bind_nn(nn);
  auto theory = m.def_submodule(
      "theory", "NTK, Hessian spectra, symmetries, deep linear dynamics, implicit bias, similarity, loss landscapes");
  tp::bind_theory(theory);
}
