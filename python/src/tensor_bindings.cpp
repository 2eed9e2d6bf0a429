// theta.Tensor (buffer protocol) and the runtime functions of the tensor layer.

#include <sstream>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "tensor/blas_runtime.hpp"
#include "tensor/parallel.hpp"
#include "tensor/storage.hpp"

namespace theta::python {

namespace {

py::tuple dims_tuple(const Dims& dims) {
  py::tuple out(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) out[i] = dims[i];
  return out;
}

py::buffer_info tensor_buffer(const PyTensor& self) {
  const Tensor& t = self.value;
  const auto itemsize = static_cast<py::ssize_t>(dtype_size(t.dtype()));
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  for (auto s : t.strides()) strides.push_back(static_cast<py::ssize_t>(s) * itemsize);
  std::string format = t.dtype() == DType::f64   ? py::format_descriptor<double>::format()
                       : t.dtype() == DType::f32 ? py::format_descriptor<float>::format()
                                                 : py::format_descriptor<std::int64_t>::format();
  return py::buffer_info(t.raw_data(), itemsize, format, t.dim(), std::move(shape), std::move(strides));
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<PyTensor>(m, "Tensor", py::buffer_protocol(), R"doc(
A theta tensor: float64, float32 or int64 elements with a shape and strides.

np.asarray(t) (or t.numpy()) is a view of the same memory that keeps it alive. Tensor(a) of a
C-contiguous, aligned, writeable NumPy array shares the array's memory; any other array is copied.
Functions of this module return NumPy arrays whose .base is a Tensor, so results are never copied.
)doc")
      .def(py::init([](const py::handle& data, bool copy) {
             if (py::isinstance<py::array>(data)) {
               return PyTensor{tensor_from_array(py::reinterpret_borrow<py::array>(data), copy)};
             }
             return PyTensor{to_tensor(data, "Tensor")};
           }),
           py::arg("data"), py::arg("copy") = false,
           "Wraps a NumPy array (zero-copy when C-contiguous, aligned and writeable, unless copy=True) or "
           "converts a theta.Tensor, a nested list or a number.")
      .def_buffer(&tensor_buffer)
      .def_property_readonly("shape", [](const PyTensor& t) { return dims_tuple(t.value.shape()); })
      .def_property_readonly("strides", [](const PyTensor& t) { return dims_tuple(t.value.strides()); },
                             "Strides in elements (NumPy's are in bytes).")
      .def_property_readonly("dtype", [](const PyTensor& t) { return numpy_dtype(t.value.dtype()); })
      .def_property_readonly("ndim", [](const PyTensor& t) { return t.value.dim(); })
      .def_property_readonly("size", [](const PyTensor& t) { return t.value.numel(); })
      .def("is_contiguous", [](const PyTensor& t) { return t.value.is_contiguous(); })
      .def("numpy", [](const PyTensor& t) { return array_from_tensor(t.value); },
           "A NumPy view of this tensor's memory (no copy).")
      .def("__len__",
           [](const PyTensor& t) {
             if (t.value.dim() == 0) throw py::type_error("len() of a 0-d theta.Tensor");
             return t.value.size(0);
           })
      .def("__repr__", [](const PyTensor& t) {
        std::ostringstream out;
        out << t.value;
        return out.str();
      });

  m.def("runtime_summary", &runtime_summary, "OpenBLAS core and threads and the SIMD kernels theta runs.");
  m.def("blas_core", &blas_core_name, "The kernel set OpenBLAS chose (\"Haswell\", \"SkylakeX\", ...).");
  m.def("set_num_threads", &set_num_threads, py::arg("threads"),
        "Threads for theta's parallel kernels and OpenBLAS (default: the CPUs this process may use).");
  m.def("get_num_threads", &get_num_threads);
  m.def("shares_memory", [](const py::handle& a, const py::handle& b) {
    const Tensor ta = to_tensor(a, "shares_memory"), tb = to_tensor(b, "shares_memory");
    const auto* a0 = static_cast<const char*>(ta.storage()->data());
    const auto* b0 = static_cast<const char*>(tb.storage()->data());
    return a0 < b0 + tb.storage()->bytes() && b0 < a0 + ta.storage()->bytes();
  }, py::arg("a"), py::arg("b"),
  "True when the memory of two theta tensors (or of arrays passed in without a copy) overlaps.");
}

}  // namespace theta::python
