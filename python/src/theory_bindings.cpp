// theta.theory: bindings (filled in area by area).

#include "bindings.hpp"

namespace theta::python {

void bind_theory(py::module_&) {}

}  // namespace theta::python
