// The function transforms of autograd/transforms.hpp (vjp, jvp, hvp, vhp, jacobian, hessian,
// HessianVectorOperator) over Python functions of Vars. Results are NumPy arrays.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/forward.hpp"
#include "autograd/transforms.hpp"
#include "bindings.hpp"

namespace theta::python {

using autograd::Var;

namespace {

autograd::JvpMethod jvp_method(const std::string& name) {
  if (name == "forward") return autograd::JvpMethod::forward;
  if (name == "double_vjp") return autograd::JvpMethod::double_vjp;
  THETA_THROW(std::invalid_argument, "jvp: method must be \"forward\" or \"double_vjp\", got \"", name, "\"");
}

// A DualLevel opened by __enter__ and closed by __exit__ (a C++ DualLevel is scoped).
struct PyDualLevel {
  std::unique_ptr<autograd::DualLevel> level;
};

autograd::HvpMethod hvp_method(const std::string& name) {
  if (name == "forward_over_reverse") return autograd::HvpMethod::forward_over_reverse;
  if (name == "reverse_over_reverse") return autograd::HvpMethod::reverse_over_reverse;
  THETA_THROW(std::invalid_argument, "hvp: method must be \"forward_over_reverse\" or \"reverse_over_reverse\", got \"",
              name, "\"");
}

// Note [Python functions in transforms]
// The transforms call the Python function f, so they run with the GIL held (f runs in Python,
// on the calling thread); an exception raised by f propagates unchanged through theta's C++ code
// (py::error_already_set unwinds it, and pybind11 restores the original Python exception).
// Arguments follow Python habits: primals given as one array give one result, given as a list or
// tuple give a list; f's result, one Var or a list/tuple of Vars, fixes the structure of the
// outputs the same way. f receives one Var per primal (positionally).

// A Python function of Vars as a theta Function; records whether f returned one Var or several.
struct PythonFunction {
  py::function f;
  std::shared_ptr<bool> single_output = std::make_shared<bool>(true);

  std::vector<Var> operator()(const std::vector<Var>& xs) const {
    py::tuple args(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) args[i] = py::cast(xs[i]);
    const py::object result = f(*args);
    std::vector<Var> out;
    if (py::isinstance<py::list>(result) || py::isinstance<py::tuple>(result)) {
      *single_output = false;
      for (const auto& item : result) out.push_back(to_var(item, "f's result"));
    } else {
      *single_output = true;
      out.push_back(to_var(result, "f's result"));
    }
    return out;
  }
};

// A Python function returning one scalar Var, as a theta ScalarFunction.
autograd::ScalarFunction scalar_function(const py::function& f) {
  return [f](const std::vector<Var>& xs) -> Var {
    py::tuple args(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) args[i] = py::cast(xs[i]);
    const py::object result = f(*args);
    if (py::isinstance<py::list>(result) || py::isinstance<py::tuple>(result))
      throw py::type_error("f must return one scalar Var, got a " + std::string(py::str(py::type::of(result))));
    return to_var(result, "f's result");
  };
}

// Tensors from one array (or Var) or a list/tuple of them; `single` says which.
std::vector<Tensor> tensor_list(const py::handle& object, const char* what, bool& single) {
  auto one = [what](const py::handle& item) {
    if (py::isinstance<Var>(item)) return item.cast<const Var&>().value();
    return to_tensor(item, what);
  };
  single = !(py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object));
  if (single) return {one(object)};
  std::vector<Tensor> out;
  for (const auto& item : object) out.push_back(one(item));
  return out;
}

std::vector<Tensor> tensor_list(const py::handle& object, const char* what) {
  bool single = false;
  return tensor_list(object, what, single);
}

// One array when `single`, else a list of arrays.
py::object structured(const std::vector<Tensor>& tensors, bool single) {
  if (single) return py::cast(tensors.at(0));
  py::list out;
  for (const auto& t : tensors) out.append(py::cast(t));
  return out;
}

// HessianVectorOperator with the structure of its params.
struct PyHessianVectorOperator {
  std::unique_ptr<autograd::HessianVectorOperator> op;
  bool single = true;
};

}  // namespace

void bind_autograd_transforms(py::module_& m) {
  const auto f_ = py::arg("f");
  m.def(
      "vjp",
      [](const py::function& f, const py::object& primals, const py::object& cotangents) {
        bool single = false;
        const auto xs = tensor_list(primals, "primals", single);
        const PythonFunction fn{f};
        const auto result = autograd::vjp(fn, xs, tensor_list(cotangents, "cotangents"));
        return py::make_tuple(structured(result.outputs, *fn.single_output), structured(result.grads, single));
      },
      f_, py::arg("primals"), py::arg("cotangents"), R"doc(
Vector-Jacobian product: (f(primals), J^T cotangents) as arrays.

f takes one Var per primal and returns a Var or a list of Vars; it runs in Python (the GIL is held)
and its exceptions propagate. primals: an array or a list of arrays (the gradients follow the same
structure); cotangents: one array per output of f, of its shape (an array when f returns one Var).
)doc");
  m.def(
      "jvp",
      [](const py::function& f, const py::object& primals, const py::object& tangents, const std::string& method) {
        const PythonFunction fn{f};
        const auto result = autograd::jvp(fn, tensor_list(primals, "primals"), tensor_list(tangents, "tangents"),
                                          jvp_method(method));
        return py::make_tuple(structured(result.outputs, *fn.single_output),
                              structured(result.tangents, *fn.single_output));
      },
      f_, py::arg("primals"), py::arg("tangents"), py::kw_only(), py::arg("method") = "forward", R"doc(
Jacobian-vector product: (f(primals), J tangents) as arrays, one tangent per output of f.

tangents has the structure of primals. f runs in Python, as for vjp. method: "forward" (one forward
pass carrying tangents; f sees its primals as constants) or "double_vjp" (two reverse passes).
)doc");
  m.def(
      "hvp",
      [](const py::function& f, const py::object& params, const py::object& v, const std::string& method) {
        bool single = false;
        const auto ps = tensor_list(params, "params", single);
        return structured(autograd::hvp(scalar_function(f), ps, tensor_list(v, "v"), hvp_method(method)), single);
      },
      f_, py::arg("params"), py::arg("v"), py::kw_only(), py::arg("method") = "forward_over_reverse", R"doc(
Hessian-vector product H v of a scalar f at params.

params and v: an array or a list of arrays (the result follows the same structure). f takes one Var
per param and returns one scalar Var; it runs in Python. method: "forward_over_reverse" (the
gradient's tangent along v) or "reverse_over_reverse" (double backward, as HessianVectorOperator).
)doc");
  m.def(
      "vhp",
      [](const py::function& f, const py::object& params, const py::object& v) {
        bool single = false;
        const auto ps = tensor_list(params, "params", single);
        return structured(autograd::vhp(scalar_function(f), ps, tensor_list(v, "v")), single);
      },
      f_, py::arg("params"), py::arg("v"),
      "v^T H, computed through a different graph than hvp (equal for a smooth f). Arguments as hvp.");
  m.def(
      "jacobian",
      [](const py::function& f, const py::object& inputs, std::int64_t chunk_size) -> py::object {
        bool single_input = false;
        const auto xs = tensor_list(inputs, "inputs", single_input);
        const PythonFunction fn{f};
        autograd::JacobianOptions options;
        options.chunk_size = chunk_size;
        const auto jac = autograd::jacobian(fn, xs, options);
        if (*fn.single_output) return structured(jac.at(0), single_input);
        py::list out;
        for (const auto& row : jac) out.append(structured(row, single_input));
        return out;
      },
      f_, py::arg("inputs"), py::arg("chunk_size") = 0, R"doc(
Jacobian of f at inputs: jac[i][j] = d outputs[i] / d inputs[j], of shape
outputs[i].shape + inputs[j].shape.

One output and one input give one array; a list of inputs gives a list over inputs; a list of
outputs gives a list over outputs. chunk_size bounds the output elements per forward pass (0: all
from one pass). f runs in Python, as for vjp.
)doc");
  m.def(
      "hessian",
      [](const py::function& f, const py::object& params) {
        return autograd::hessian(scalar_function(f), tensor_list(params, "params"));
      },
      f_, py::arg("params"), R"doc(
Dense Hessian [P, P] of a scalar f over its params flattened and concatenated in order (for small
problems). f runs in Python, as for hvp.
)doc");

  py::class_<PyHessianVectorOperator>(m, "HessianVectorOperator", R"doc(
Repeated Hessian-vector products of a scalar f at fixed params: f runs once (in Python) when the
operator is built, then each apply(v) is one backward pass through the stored gradient graph
(without the GIL). params: an array or a list of arrays; apply and gradient follow its structure.
)doc")
      .def(py::init([](const py::function& f, const py::object& params) {
             PyHessianVectorOperator self;
             const auto ps = tensor_list(params, "params", self.single);
             self.op = std::make_unique<autograd::HessianVectorOperator>(scalar_function(f), ps);
             return self;
           }),
           f_, py::arg("params"))
      .def(
          "apply",
          [](const PyHessianVectorOperator& self, const py::object& v) {
            const auto vs = tensor_list(v, "v");
            std::vector<Tensor> out;
            {
              ReleaseGil released;
              auto lock = lock_graph();
              out = self.op->apply(vs);
            }
            return structured(out, self.single);
          },
          py::arg("v"), "H v, with the structure of params.")
      .def_property_readonly(
          "loss", [](const PyHessianVectorOperator& self) { return self.op->loss(); }, "f at params.")
      .def(
          "gradient", [](const PyHessianVectorOperator& self) { return structured(self.op->gradient(), self.single); },
          "The gradient of f at params, with the structure of params.")
      .def_property_readonly(
          "size", [](const PyHessianVectorOperator& self) { return self.op->size(); }, "Number of scalar parameters.");

  py::class_<PyDualLevel>(m, "DualLevel", R"doc(
A forward-mode level, as a context manager: inside `with DualLevel():`, make_dual(x, t) gives a Var
carrying the tangent t, every op propagates it, and tangent(y) reads J t. Levels do not nest; a
tangent is invisible once its level has closed.)doc")
      .def(py::init<>())
      .def(
          "__enter__",
          [](PyDualLevel& self) -> PyDualLevel& {
            if (self.level) throw std::logic_error("DualLevel: this level is already open");
            self.level = std::make_unique<autograd::DualLevel>();
            return self;
          },
          py::return_value_policy::reference_internal)
      .def("__exit__", [](PyDualLevel& self, const py::args&) { self.level.reset(); });
  m.def("make_dual", &autograd::make_dual, py::arg("primal"), py::arg("tangent"), R"doc(
A Var with primal's value carrying `tangent` (same shape and dtype) inside an open DualLevel;
gradients flow to primal unchanged.)doc");
  m.def(
      "tangent",
      [](const Var& x) -> py::object {
        const Var t = autograd::tangent(x);
        if (!t.defined()) return py::none();
        return py::cast(t);
      },
      py::arg("x"), "x's tangent in the open DualLevel, or None when it is zero.");
}

}  // namespace theta::python
