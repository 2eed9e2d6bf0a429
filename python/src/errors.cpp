// theta's exceptions as Python's: the message is kept, the class follows what went wrong.

#include <exception>

#include "autograd/var.hpp"
#include "bindings.hpp"
#include "tensor/error.hpp"

namespace theta::python {

// ShapeError, FormatError and the other std::invalid_argument errors are ValueError (pybind11's
// own mapping); a wrong dtype is a TypeError, a bad index an IndexError, a failed file operation an
// OSError; everything else, InternalError and AnomalyError included, is a RuntimeError.
void bind_errors(py::module_&) {
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const DTypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const InternalError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace theta::python
