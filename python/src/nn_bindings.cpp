// theta.nn: bindings (filled in area by area).

#include "bindings.hpp"

namespace theta::python {

void bind_nn(py::module_& m) { bind_module(m); }

}  // namespace theta::python
