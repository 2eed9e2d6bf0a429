// theta.autograd.Var (a value with history, NumPy in and out, Python operators), the reverse-mode
// engine (grad, backward) and the grad / anomaly modes.

#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/ops.hpp"
#include "autograd/var.hpp"
#include "bindings.hpp"

namespace theta::python {

using autograd::Var;

// Note [Autograd without the GIL]
// backward(), grad() and the matrix products run with the GIL released, so other Python threads
// keep running. theta's graph is not safe to write from two threads at once: a backward pass
// accumulates into leaves' .grad and releases the buffers of the Nodes it visits. Every bound
// call that writes or reads that mutable state (.grad, requires_grad, zero_grad, backward,
// grad, HessianVectorOperator.apply) therefore holds one process-wide mutex, taken after the GIL
// is released (the holder may need the GIL: freeing a tensor that views a NumPy array takes it).
// Forward ops only read values, requires_grad and grad_fn, which a backward pass never writes,
// so they need no lock. The transforms that call a Python function hold the GIL throughout.
std::unique_lock<std::mutex> lock_graph() {
  static std::mutex graph_mutex;
  return std::unique_lock<std::mutex>(graph_mutex);
}

namespace {

// A Tensor from a Var constructor argument: Python numbers become float64 scalars.
Tensor value_tensor(const py::handle& object, const char* what) {
  if (py::isinstance<py::bool_>(object))
    throw py::type_error(std::string(what) + ": expected an array or a number, got bool");
  if (py::isinstance<py::float_>(object) || py::isinstance<py::int_>(object))
    return full({}, object.cast<double>(), DType::f64);
  if (py::isinstance<Var>(object)) return object.cast<const Var&>().value();
  return to_tensor(object, what);
}

// Runs fn() without the GIL and with the graph lock (Note [Autograd without the GIL]).
template <class Fn> auto with_graph(Fn&& fn) -> decltype(fn()) {
  ReleaseGil released;
  auto lock = lock_graph();
  return fn();
}

py::tuple shape_tuple(const Shape& shape) {
  py::tuple out(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) out[i] = py::int_(shape[i]);
  return out;
}

// Several Vars from a Var, an array or a list/tuple of them; `single` says which it was.
std::vector<Var> var_list(const py::handle& object, const char* what, bool* single = nullptr) {
  std::vector<Var> out;
  const bool is_sequence = py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object);
  if (single) *single = !is_sequence;
  if (!is_sequence) {
    out.push_back(to_var(object, what));
    return out;
  }
  for (const auto& item : object) out.push_back(to_var(item, what));
  return out;
}

py::object var_or_none(const Var& v) { return v.defined() ? py::cast(v) : py::none(); }

}  // namespace

Var to_var(const py::handle& object, const char* what) {
  if (py::isinstance<Var>(object)) return object.cast<Var>();
  if (object.is_none()) throw py::type_error(std::string(what) + ": expected a Var, an array or a number, got None");
  return Var(value_tensor(object, what));
}

void bind_autograd_var(py::module_& m) {
  py::class_<Var> cls(m, "Var", R"doc(
A tensor value that records how it was computed, for reverse-mode differentiation.

Var(value, requires_grad=False): value is a NumPy array (float64, float32 or int64; shared, not
copied, when C-contiguous and writeable), a theta.Tensor, a Var (a new leaf on the same value) or a
Python number (a float64 scalar). Only floating values may require gradients. Arithmetic mixes
Vars with arrays and numbers, which act as constants.
Writing into the value's memory after it was used by an op invalidates the recorded graph.
)doc");
  cls.def(py::init([](const py::object& value, bool requires_grad) {
            return Var(value_tensor(value, "Var: value"), requires_grad);
          }),
          py::arg("value"), py::arg("requires_grad") = false);
  py::implicitly_convertible<py::float_, Var>();
  py::implicitly_convertible<py::int_, Var>();
  py::implicitly_convertible<py::array, Var>();
  py::implicitly_convertible<py::list, Var>();
  py::implicitly_convertible<PyTensor, Var>();
  // ndarray (op) Var defers to Var's reflected operators.
  cls.attr("__array_ufunc__") = py::none();
  cls.attr("__array_priority__") = 1000;

  cls.def_property_readonly(
         "value", [](const Var& v) { return array_from_tensor(v.value()); },
         "The value as a NumPy array viewing the Var's memory.")
      .def(
          "numpy", [](const Var& v) { return array_from_tensor(v.value()); },
          "The value as a NumPy array viewing the Var's memory (as .value).")
      .def_property(
          "grad",
          [](const Var& v) -> py::object {
            const Tensor g = with_graph([&] { return v.grad(); });
            if (!g.defined()) return py::none();
            return array_from_tensor(g);
          },
          [](const Var& v, const py::object& g) {
            if (g.is_none()) return with_graph([&] { v.zero_grad(); });
            const Tensor t = to_tensor(g, "grad");
            if (t.dtype() != v.dtype())
              throw py::type_error("grad: dtype " + std::string(dtype_name(t.dtype())) + " does not match the Var's " +
                                   dtype_name(v.dtype()));
            with_graph([&] { v.set_grad(t); });
          },
          "Gradient accumulated by backward() (a NumPy array), or None. Settable (None clears it).")
      .def_property_readonly("shape", [](const Var& v) { return shape_tuple(v.shape()); })
      .def_property_readonly("dtype", [](const Var& v) { return numpy_dtype(v.dtype()); })
      .def_property_readonly("ndim", &Var::dim)
      .def_property_readonly("size", &Var::numel, "Number of elements.")
      .def_property(
          "requires_grad", &Var::requires_grad,
          [](const Var& v, bool enabled) { with_graph([&] { v.set_requires_grad(enabled); }); },
          "Whether gradients flow to this Var. Settable on leaves only.")
      .def_property_readonly("is_leaf", &Var::is_leaf, "True unless the Var is an op's recorded result.")
      .def_property_readonly(
          "grad_fn",
          [](const Var& v) -> py::object {
            if (!v.grad_fn()) return py::none();
            return py::str(v.grad_fn()->name);
          },
          "Name of the op that produced this Var, or None for a leaf or a constant.")
      .def("item", &Var::item, "The single element as a Python float.")
      .def("__float__", &Var::item, "The single element as a Python float.")
      .def(
          "__array__",
          [](const Var& v, const py::object& dtype, const py::object& copy) -> py::object {
            py::object out = array_from_tensor(v.value());
            if (!dtype.is_none() || (!copy.is_none() && copy.cast<bool>()))
              out = py::module_::import("numpy").attr("array")(out, dtype);
            return out;
          },
          py::arg("dtype") = py::none(), py::arg("copy") = py::none(),
          "np.asarray(var): the value (a view unless a dtype or a copy is asked for).")
      .def("detach", &Var::detach, "The same value (shared memory) without history.")
      .def(
          "backward",
          [](const Var& self, const py::object& grad_output, bool retain_graph) {
            const Var g = grad_output.is_none() ? Var() : to_var(grad_output, "grad_output");
            with_graph([&] { autograd::backward(self, g, retain_graph); });
          },
          py::arg("grad_output") = py::none(), py::arg("retain_graph") = false,
          "Accumulates d(self)/d(leaf) into leaf.grad for every leaf that requires a gradient.\n"
          "self must have one element unless grad_output (same shape) is given.")
      .def(
          "zero_grad", [](const Var& v) { with_graph([&] { v.zero_grad(); }); }, "Drops the accumulated gradient.")
      .def("__repr__",
           [](const Var& v) {
             std::ostringstream out;
             out << v;
             return out.str();
           })
      .def("__len__", [](const Var& v) {
        if (v.dim() == 0) throw py::type_error("len() of a 0-d Var");
        return v.size(0);
      });

  // Operators. The double overloads come first so numbers use the scalar ops; arrays and theta
  // Tensors become constant Vars (implicit conversions above).
  using autograd::matmul;
  cls.def("__neg__", [](const Var& x) { return -x; })
      .def("__pos__", [](const Var& x) { return x; })
      .def(
          "__add__", [](const Var& a, double b) { return a + b; }, py::is_operator())
      .def(
          "__add__", [](const Var& a, const Var& b) { return a + b; }, py::is_operator())
      .def(
          "__radd__", [](const Var& a, double b) { return b + a; }, py::is_operator())
      .def(
          "__radd__", [](const Var& a, const Var& b) { return b + a; }, py::is_operator())
      .def(
          "__sub__", [](const Var& a, double b) { return a - b; }, py::is_operator())
      .def(
          "__sub__", [](const Var& a, const Var& b) { return a - b; }, py::is_operator())
      .def(
          "__rsub__", [](const Var& a, double b) { return b - a; }, py::is_operator())
      .def(
          "__rsub__", [](const Var& a, const Var& b) { return b - a; }, py::is_operator())
      .def(
          "__mul__", [](const Var& a, double b) { return a * b; }, py::is_operator())
      .def(
          "__mul__", [](const Var& a, const Var& b) { return a * b; }, py::is_operator())
      .def(
          "__rmul__", [](const Var& a, double b) { return b * a; }, py::is_operator())
      .def(
          "__rmul__", [](const Var& a, const Var& b) { return b * a; }, py::is_operator())
      .def(
          "__truediv__", [](const Var& a, double b) { return a / b; }, py::is_operator())
      .def(
          "__truediv__", [](const Var& a, const Var& b) { return a / b; }, py::is_operator())
      .def(
          "__rtruediv__", [](const Var& a, double b) { return b / a; }, py::is_operator())
      .def(
          "__rtruediv__", [](const Var& a, const Var& b) { return b / a; }, py::is_operator())
      .def(
          "__matmul__", [](const Var& a, const Var& b) { return without_gil([&] { return matmul(a, b); }); },
          py::is_operator())
      .def(
          "__rmatmul__", [](const Var& a, const Var& b) { return without_gil([&] { return matmul(b, a); }); },
          py::is_operator())
      .def(
          "__pow__", [](const Var& a, double p) { return autograd::pow(a, p); }, py::is_operator())
      .def(
          "__pow__", [](const Var& a, const Var& b) { return autograd::pow(a, b); }, py::is_operator())
      .def(
          "__rpow__", [](const Var& a, double c) { return autograd::pow(Var(full({}, c, a.dtype())), a); },
          py::is_operator())
      .def(
          "__rpow__", [](const Var& a, const Var& b) { return autograd::pow(b, a); }, py::is_operator());

  m.def(
      "grad",
      [](const py::object& outputs, const py::object& inputs, const py::object& grad_outputs,
         std::optional<bool> retain_graph, bool create_graph, bool allow_unused) -> py::object {
        bool single_input = false;
        const auto outs = var_list(outputs, "outputs");
        const auto ins = var_list(inputs, "inputs", &single_input);
        std::vector<Var> gouts;
        if (!grad_outputs.is_none()) gouts = var_list(grad_outputs, "grad_outputs");
        autograd::GradOptions options;
        options.create_graph = create_graph;
        options.retain_graph = retain_graph;
        options.allow_unused = allow_unused;
        const auto grads = with_graph([&] { return autograd::grad(outs, ins, gouts, options); });
        if (single_input) return var_or_none(grads.at(0));
        py::list out;
        for (const auto& g : grads) out.append(var_or_none(g));
        return out;
      },
      py::arg("outputs"), py::arg("inputs"), py::arg("grad_outputs") = py::none(), py::arg("retain_graph") = py::none(),
      py::arg("create_graph") = false, py::arg("allow_unused") = false, R"doc(
Gradients of sum_i <grad_outputs[i], outputs[i]> with respect to each input, as Vars.

outputs, inputs and grad_outputs are each a Var or a list of Vars; grad_outputs may be None when
every output has one element. A single input gives a single gradient, a list gives a list.
retain_graph (default: create_graph) keeps the graph for another pass; create_graph records the
backward pass so the gradients can be differentiated again; allow_unused returns None for an
input the outputs do not depend on instead of raising.
)doc");
  m.def(
      "backward",
      [](const Var& loss, const py::object& grad_output, bool retain_graph) {
        const Var g = grad_output.is_none() ? Var() : to_var(grad_output, "grad_output");
        with_graph([&] { autograd::backward(loss, g, retain_graph); });
      },
      py::arg("loss"), py::arg("grad_output") = py::none(), py::arg("retain_graph") = false,
      "Accumulates d(loss)/d(leaf) into leaf.grad (as Var.backward).");
  m.def("set_grad_mode", &autograd::set_grad_mode, py::arg("enabled"),
        "Turns recording on or off for this thread (prefer the no_grad / enable_grad context managers).");
  m.def("grad_mode_enabled", &autograd::grad_mode_enabled, "Whether ops record history on this thread.");
  m.def("set_anomaly_mode", &autograd::set_anomaly_mode, py::arg("enabled"),
        "Anomaly mode (process-wide): every op and gradient is checked for NaN/Inf and raises RuntimeError "
        "naming the op.");
  m.def("anomaly_mode_enabled", &autograd::anomaly_mode_enabled, "Whether anomaly mode is on.");
  m.def("live_node_count", &autograd::live_node_count, "Number of recorded graph nodes alive in this process.");
  m.def("primitive_names", &autograd::primitive_names, "Names of every differentiable primitive op.");
}

}  // namespace theta::python
