// theta.autograd: Var and the engine (autograd_var.cpp), the ops (autograd_ops.cpp) and the
// function transforms (autograd_transforms.cpp).

#include "bindings.hpp"

namespace theta::python {

void bind_autograd(py::module_& m) {
  bind_autograd_var(m);
  bind_autograd_ops(m);
  bind_autograd_transforms(m);
}

}  // namespace theta::python
