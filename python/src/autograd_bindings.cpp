// theta.autograd: bindings (filled in area by area).

#include "bindings.hpp"

namespace theta::python {

void bind_autograd(py::module_&) {}

}  // namespace theta::python
