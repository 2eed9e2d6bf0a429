// Tensor <-> NumPy: the theta.Tensor class, the type caster, dtype names.

#include <Python.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "bindings.hpp"
#include "tensor/error.hpp"
#include "tensor/interrupt.hpp"

namespace theta::python {

// Note [Arrays in]
// A NumPy array that is C-contiguous, aligned for its element type and writeable becomes a Tensor
// on the array's own memory: the Storage wraps the buffer and holds a reference to the array,
// dropped (with the GIL taken, from whichever thread destroys the last Tensor) when theta is done
// with it. Writes through either side are seen by the other. Any other array (a strided slice,
// Fortran order, a read-only view) is copied into fresh theta memory, since theta's kernels and
// in-place ops assume storage they may write. The dtype is never converted: float64, float32 and
// int64 map to theta's three dtypes and anything else raises TypeError, because a silent cast
// would also silently drop the zero-copy link.
//
// Note [Arrays out]
// A Tensor result becomes an ndarray over the same memory, shape and strides (elements to bytes),
// whose base is a theta.Tensor object owning the Tensor; NumPy keeps the base alive as long as any
// view of it lives, so no copy is made and no memory outlives its owner.

py::dtype numpy_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return py::dtype::of<float>();
    case DType::f64: return py::dtype::of<double>();
    case DType::i64: return py::dtype::of<std::int64_t>();
  }
  throw InternalError("numpy_dtype: unknown dtype");
}

DType theta_dtype(const py::dtype& dtype, const char* what) {
  if (dtype.equal(py::dtype::of<double>())) return DType::f64;
  if (dtype.equal(py::dtype::of<float>())) return DType::f32;
  if (dtype.equal(py::dtype::of<std::int64_t>())) return DType::i64;
  throw py::type_error(std::string(what) + ": theta holds float64, float32 or int64 arrays, got " +
                       std::string(py::str(py::handle(dtype))) +
                       " (theta never casts silently: convert with a.astype(numpy.float64) first)");
}

DType parse_dtype(const py::handle& spec) {
  if (py::isinstance<py::str>(spec)) {
    const auto name = spec.cast<std::string>();
    if (name == "float64" || name == "f64" || name == "double") return DType::f64;
    if (name == "float32" || name == "f32" || name == "float") return DType::f32;
    if (name == "int64" || name == "i64") return DType::i64;
    throw py::type_error("dtype: expected \"float64\", \"float32\" or \"int64\", got \"" + name + "\"");
  }
  return theta_dtype(py::dtype::from_args(py::reinterpret_borrow<py::object>(spec)), "dtype");
}

namespace {

// Releases the reference an external Storage holds on its NumPy array.
void release_array(PyObject* array) {
  // At interpreter exit the array is gone with everything else; taking the GIL then would hang.
  if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
  py::gil_scoped_acquire gil;
  Py_DECREF(array);
}

}  // namespace

Tensor tensor_from_array(const py::array& array, bool copy) {
  const DType dtype = theta_dtype(array.dtype(), "array");
  const int flags = py::detail::array_proxy(array.ptr())->flags;
  const bool in_place = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) &&
                        (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) &&
                        (flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_);
  Shape shape(array.shape(), array.shape() + array.ndim());
  if (in_place && !copy) {
    PyObject* owner = array.ptr();
    Py_INCREF(owner);
    auto storage = std::make_shared<Storage>(const_cast<void*>(array.data()), static_cast<std::size_t>(array.nbytes()),
                                             [owner] { release_array(owner); });
    return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
  }
  Tensor out = Tensor::empty(shape, dtype);
  if (out.numel() > 0) {
    // A C-ordered ndarray on out's memory (base: a capsule that does nothing; out outlives it
    // here), then NumPy's own strided copy.
    py::capsule no_owner(out.raw_data(), [](void*) {});
    py::array target(array.dtype(), array.request().shape, py::detail::c_strides(array.request().shape, array.itemsize()),
                     out.raw_data(), no_owner);
    auto& api = py::detail::npy_api::get();
    if (api.PyArray_CopyInto_(target.ptr(), array.ptr()) != 0) throw py::error_already_set();
  }
  return out;
}

py::array array_from_tensor(const Tensor& tensor) {
  if (!tensor.defined()) throw py::value_error("array_from_tensor: undefined tensor");
  const auto itemsize = static_cast<py::ssize_t>(dtype_size(tensor.dtype()));
  std::vector<py::ssize_t> shape(tensor.shape().begin(), tensor.shape().end());
  std::vector<py::ssize_t> strides;
  strides.reserve(shape.size());
  for (auto s : tensor.strides()) strides.push_back(static_cast<py::ssize_t>(s) * itemsize);
  py::object owner = py::cast(PyTensor{tensor});
  return py::array(numpy_dtype(tensor.dtype()), std::move(shape), std::move(strides), tensor.raw_data(), owner);
}

Tensor to_tensor(const py::handle& object, const char* what) {
  if (py::isinstance<PyTensor>(object)) return object.cast<const PyTensor&>().value;
  if (py::isinstance<py::array>(object)) return tensor_from_array(py::reinterpret_borrow<py::array>(object));
  if (py::isinstance<py::float_>(object) || py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object) ||
      py::isinstance<py::int_>(object)) {
    py::array array = py::module_::import("numpy").attr("asarray")(object);
    return tensor_from_array(array, /*copy=*/true);
  }
  throw py::type_error(std::string(what) + ": expected a numpy.ndarray or theta.Tensor, got " +
                       std::string(py::str(py::type::of(object))));
}

namespace {
thread_local bool polling_interrupts = false;

thread_local std::chrono::steady_clock::time_point last_poll{};

// The interrupt hook (Note [Interrupt points]): only a thread inside ReleaseGil polls, and at most
// every 10 ms: taking the GIL may wait for a busy Python thread for milliseconds, which loops that
// check often (NTK tiles, Lanczos steps) must not pay per check. Ctrl-C still stops them within
// 10 ms plus one chunk.
void python_interrupt_hook() {
  if (!polling_interrupts) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_poll < std::chrono::milliseconds(10)) return;
  last_poll = now;
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}
}  // namespace

void install_interrupt_hook() { set_interrupt_hook(&python_interrupt_hook); }

ReleaseGil::ReleaseGil() : was_polling_(polling_interrupts) {
  polling_interrupts = true;
}

ReleaseGil::~ReleaseGil() { polling_interrupts = was_polling_; }

}  // namespace theta::python

namespace pybind11::detail {

bool type_caster<theta::Tensor>::load(handle source, bool convert) {
  if (source.is_none()) return false;
  if (isinstance<theta::python::PyTensor>(source)) {
    value = source.cast<const theta::python::PyTensor&>().value;
    return true;
  }
  if (isinstance<array>(source)) {
    value = theta::python::tensor_from_array(reinterpret_borrow<array>(source));
    return true;
  }
  if (!convert) return false;
  if (isinstance<float_>(source) || isinstance<int_>(source) || isinstance<list>(source) ||
      isinstance<tuple>(source)) {
    value = theta::python::to_tensor(source);
    return true;
  }
  return false;
}

handle type_caster<theta::Tensor>::cast(const theta::Tensor& tensor, return_value_policy, handle) {
  if (!tensor.defined()) return none().release();
  return theta::python::array_from_tensor(tensor).release();
}

}  // namespace pybind11::detail
