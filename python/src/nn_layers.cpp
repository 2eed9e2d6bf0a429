// theta.nn layers (Linear, Activation, Sequential, BatchNorm1d, LayerNorm, Identity, Flatten,
// Residual) as subclasses of theta.nn.Module, and the mlp / residual_mlp builders.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "nn/linearized.hpp"
#include "nn/residual.hpp"
#include "nn_common.hpp"

namespace theta::python {

namespace {

// Note [Child handles]
// A container owns its children through shared_ptrs it does not expose; seq[i] and Residual.body
// hand out an aliasing shared_ptr instead: it points at the child and shares ownership of the
// container, so the child stays valid as long as Python holds it, whatever happens to the
// container's own Python object. A child that came from Python keeps its Python object (pybind11
// finds it by address); one built in C++ (mlp) gets a new one of its most derived bound class.
template <class Container>
std::shared_ptr<nn::Module> child_handle(const std::shared_ptr<Container>& owner, nn::Module& child) {
  return std::shared_ptr<nn::Module>(owner, &child);
}

std::shared_ptr<nn::Module> as_module(const py::handle& object, const std::string& what) {
  if (!py::isinstance<nn::Module>(object))
    throw py::type_error(what + ": expected a theta.nn.Module, got " + std::string(py::str(py::type::of(object))));
  return object.cast<std::shared_ptr<nn::Module>>();
}

std::int64_t normalize_index(std::int64_t index, std::size_t size) {
  const auto n = static_cast<std::int64_t>(size);
  if (index < -n || index >= n)
    throw py::index_error("Sequential index " + std::to_string(index) + " out of range for " + std::to_string(n) +
                          " layers");
  return index < 0 ? index + n : index;
}

const char* parameterization_name(nn::Parameterization p) {
  return p == nn::Parameterization::ntk ? "ntk" : "standard";
}

void bind_linear(py::module_& m) {
  py::class_<nn::Linear, nn::Module, std::shared_ptr<nn::Linear>>(m, "Linear", R"doc(
Fully connected layer y = x W^T + b: weight [out_features, in_features] (PyTorch's layout), bias
[out_features]. parameterization "standard" initialises like PyTorch (U(-1/sqrt(in), 1/sqrt(in)));
"ntk" computes y = sigma_w / sqrt(in) x W^T + sigma_b b with W, b ~ N(0, 1).
)doc")
      .def(py::init([](std::int64_t in_features, std::int64_t out_features, bool bias,
                       const std::string& parameterization, double sigma_w, double sigma_b, const py::handle& dtype,
                       std::uint64_t seed) {
             Rng rng(seed);
             return std::make_shared<nn::Linear>(
                 in_features, out_features, rng,
                 nn::LinearOptions{.bias = bias,
                                   .parameterization = parse_parameterization(parameterization),
                                   .sigma_w = sigma_w,
                                   .sigma_b = sigma_b,
                                   .dtype = parse_dtype(dtype)});
           }),
           py::arg("in_features"), py::arg("out_features"), py::arg("bias") = true,
           py::arg("parameterization") = "standard", py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0,
           py::arg("dtype") = "float64", py::arg("seed") = 0, "A Linear layer initialised from Rng(seed).")
      .def_property_readonly(
          "weight", [](const nn::Linear& self) { return array_from_tensor(self.weight().value()); },
          "The weight [out_features, in_features] (a view: writes change the layer).")
      .def_property_readonly(
          "bias",
          [](const nn::Linear& self) -> py::object {
            if (!self.options().bias) return py::none();
            return array_from_tensor(self.bias().value());
          },
          "The bias [out_features] (a view), or None.")
      .def_property_readonly("in_features", &nn::Linear::in_features, "Input width.")
      .def_property_readonly("out_features", &nn::Linear::out_features, "Output width.")
      .def_property_readonly(
          "parameterization",
          [](const nn::Linear& self) { return parameterization_name(self.options().parameterization); },
          "\"standard\" or \"ntk\".")
      .def_property_readonly("weight_scale", &nn::Linear::weight_scale,
                             "The factor multiplying x W^T in forward (1 in standard parameterisation).")
      .def_property_readonly("bias_scale", &nn::Linear::bias_scale,
                             "The factor multiplying b in forward (1 in standard parameterisation).");
}

void bind_sequential(py::module_& m) {
  py::class_<nn::Sequential, nn::Module, std::shared_ptr<nn::Sequential>>(m, "Sequential", R"doc(
Applies its layers in order. Sequential(a, b, c) or Sequential([a, b, c]); parameters are named
"layers.<i>.<name>". seq[i] is the i-th layer (the same object, not a copy), len(seq) their count.
)doc")
      .def(py::init([](const py::args& args) {
             auto seq = std::make_shared<nn::Sequential>();
             py::sequence layers = args;
             if (args.size() == 1 && !py::isinstance<nn::Module>(args[0])) {
               if (!py::isinstance<py::sequence>(args[0]))
                 throw py::type_error("Sequential: expected modules or a list of modules, got " +
                                      std::string(py::str(py::type::of(args[0]))));
               layers = py::reinterpret_borrow<py::sequence>(args[0]);
             }
             for (std::size_t i = 0; i < layers.size(); ++i)
               seq->add(as_module(layers[i], "Sequential: layer " + std::to_string(i)));
             return seq;
           }),
           "Sequential(*layers) or Sequential(list_of_layers).")
      .def(
          "append",
          [](nn::Sequential& self, const py::handle& layer) -> nn::Sequential& {
            auto module = as_module(layer, "Sequential.append");
            with_module(self, true, [&] { self.add(std::move(module)); });
            return self;
          },
          py::arg("layer"), py::return_value_policy::reference, "Appends a layer (registered as layers.<len>).")
      .def("__len__", &nn::Sequential::size, "Number of layers.")
      .def(
          "__getitem__",
          [](const std::shared_ptr<nn::Sequential>& self, const py::slice& slice) {
            std::size_t start = 0, stop = 0, step = 0, count = 0;
            if (!slice.compute(self->size(), &start, &stop, &step, &count)) throw py::error_already_set();
            auto out = std::make_shared<nn::Sequential>();
            for (std::size_t i = 0; i < count; ++i, start += step) out->add(child_handle(self, self->at(start)));
            return out;
          },
          py::arg("index"), "A Sequential of the selected layers (the same layer objects, shared, not copies).")
      .def(
          "__getitem__",
          [](const std::shared_ptr<nn::Sequential>& self, std::int64_t index) {
            return child_handle(self, self->at(static_cast<std::size_t>(normalize_index(index, self->size()))));
          },
          py::arg("index"), "The layer at `index` (negative counts from the end; IndexError out of range).")
      .def(
          "forward_prefix",
          [](nn::Sequential& self, const Tensor& x, std::size_t count) {
            if (count > self.size())
              throw py::index_error("forward_prefix: count " + std::to_string(count) + " > " +
                                    std::to_string(self.size()) + " layers");
            ReleaseGil released;
            auto lock = lock_module(self);
            autograd::NoGradGuard no_grad;
            return self.forward_prefix(autograd::Var(x), count).value();
          },
          py::arg("x"), py::arg("count"),
          "The output of the first `count` layers on x (a hidden representation; no graph is recorded).");
}

void bind_norms(py::module_& m) {
  py::class_<nn::BatchNorm1d, nn::Module, std::shared_ptr<nn::BatchNorm1d>>(m, "BatchNorm1d", R"doc(
BatchNorm over the batch axis of x:[n, features], as PyTorch: batch statistics in training (running
estimates updated with `momentum`), running statistics in eval. Parameters weight/bias [features]
(when affine), buffers running_mean/running_var.
)doc")
      .def(py::init([](std::int64_t features, double eps, double momentum, bool affine, const py::handle& dtype) {
             return std::make_shared<nn::BatchNorm1d>(
                 features,
                 nn::NormOptions{.eps = eps, .momentum = momentum, .affine = affine, .dtype = parse_dtype(dtype)});
           }),
           py::arg("features"), py::arg("eps") = 1e-5, py::arg("momentum") = 0.1, py::arg("affine") = true,
           py::arg("dtype") = "float64", "BatchNorm over `features` features.");
  py::class_<nn::LayerNorm, nn::Module, std::shared_ptr<nn::LayerNorm>>(
      m, "LayerNorm",
      "LayerNorm over the last axis of x:[..., features]; parameters weight/bias [features] when affine.")
      .def(py::init([](std::int64_t features, double eps, bool affine, const py::handle& dtype) {
             return std::make_shared<nn::LayerNorm>(
                 features, nn::NormOptions{.eps = eps, .affine = affine, .dtype = parse_dtype(dtype)});
           }),
           py::arg("features"), py::arg("eps") = 1e-5, py::arg("affine") = true, py::arg("dtype") = "float64",
           "LayerNorm over `features` features.");
}

void bind_simple_layers(py::module_& m) {
  py::class_<nn::Activation, nn::Module, std::shared_ptr<nn::Activation>>(
      m, "Activation",
      "An elementwise activation by name: identity, relu, leaky_relu, tanh, sigmoid, softplus, gelu, erf.")
      .def(py::init([](const std::string& name, double negative_slope) {
             return std::make_shared<nn::Activation>(parse_activation(name), negative_slope);
           }),
           py::arg("name") = "relu", py::arg("negative_slope") = 0.01, "The activation `name` as a layer.")
      .def_property_readonly(
          "name", [](const nn::Activation& self) { return nn::activation_name(self.kind()); },
          "The activation's name.");
  py::class_<nn::Identity, nn::Module, std::shared_ptr<nn::Identity>>(m, "Identity", "Returns its input.")
      .def(py::init<>(), "The identity layer.");
  py::class_<nn::Flatten, nn::Module, std::shared_ptr<nn::Flatten>>(
      m, "Flatten", "Merges every axis after the first: x:[n, d1, d2, ...] -> [n, d1*d2*...].")
      .def(py::init<>(), "The flattening layer.");
  py::class_<nn::Residual, nn::Module, std::shared_ptr<nn::Residual>>(m, "Residual", R"doc(
y = body(x) + shortcut(x), the shortcut being projection(x) when a projection is given and x
otherwise; parameters are named "body.<name>" then "projection.<name>".
)doc")
      .def(py::init([](const py::handle& body, const py::handle& projection) {
             return std::make_shared<nn::Residual>(
                 as_module(body, "Residual: body"),
                 projection.is_none() ? nullptr : as_module(projection, "Residual: projection"));
           }),
           py::arg("body"), py::arg("projection") = py::none(), "body(x) + x, or body(x) + projection(x).")
      .def_property_readonly(
          "body", [](const std::shared_ptr<nn::Residual>& self) { return child_handle(self, self->body()); },
          "The residual branch (the same object).")
      .def_property_readonly(
          "projection",
          [](const std::shared_ptr<nn::Residual>& self) -> std::shared_ptr<nn::Module> {
            if (self->projection() == nullptr) return nullptr;
            return child_handle(self, *self->projection());
          },
          "The shortcut's projection, or None for the identity shortcut.");
}

void bind_linearized(py::module_& m) {
  py::class_<nn::Linearized, nn::Module, std::shared_ptr<nn::Linearized>>(m, "Linearized", R"doc(
f(w0, x) + J(w0, x)(w - w0): a model's first-order Taylor expansion in its parameters around w0,
made by linearize(model). Its parameters (the model's names, starting at w0) train like any
module's; its forward is one forward-mode pass (a JVP along w - w0).)doc")
      .def_property_readonly(
          "origin",
          [](const nn::Linearized& self) {
            py::list out;
            for (const auto& t : self.origin()) out.append(array_from_tensor(t));
            return out;
          },
          "The expansion point w0: one array per parameter, in named_parameters() order.");
  m.def(
      "linearize",
      [](const py::handle& model) {
        const auto base = as_module(model, "linearize: model");
        ReleaseGil released;
        auto lock = lock_module(*base);
        return nn::linearize(*base);
      },
      py::arg("model"), R"doc(
The linearisation of model around its current parameters (a new Linearized module; model is
copied, not touched): its NTK is the model's NTK at w0 wherever its parameters go, and gradient
descent on a squared loss follows the kernel dynamics exactly.)doc");
}

void bind_builders(py::module_& m) {
  m.def(
      "mlp",
      [](const std::vector<std::int64_t>& widths, const std::string& activation, bool bias,
         const std::string& parameterization, double sigma_w, double sigma_b, const py::handle& dtype,
         std::uint64_t seed) {
        if (widths.size() < 2)
          throw py::value_error("mlp: widths needs the input and output widths at least, got " +
                                std::to_string(widths.size()) + " entries");
        const nn::MlpOptions options{.activation = parse_activation(activation),
                                     .bias = bias,
                                     .parameterization = parse_parameterization(parameterization),
                                     .sigma_w = sigma_w,
                                     .sigma_b = sigma_b,
                                     .dtype = parse_dtype(dtype)};
        Rng rng(seed);
        return nn::mlp(widths, rng, options);
      },
      py::arg("widths"), py::arg("activation") = "relu", py::arg("bias") = true,
      py::arg("parameterization") = "standard", py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0,
      py::arg("dtype") = "float64", py::arg("seed") = 0, R"doc(
An MLP: widths = [in, hidden..., out] gives Linear layers with the activation between them (none
after the last), as a Sequential whose Linear layers sit at even positions ("layers.0.weight",
"layers.2.weight", ...), the layout of torch.nn.Sequential(Linear, ReLU, Linear, ...).
)doc");
  m.def(
      "residual_mlp",
      [](std::int64_t in_features, std::int64_t width, std::int64_t out_features, std::int64_t blocks,
         const std::string& activation, bool bias, const std::string& parameterization, double sigma_w, double sigma_b,
         const py::handle& dtype, std::uint64_t seed) {
        const nn::ResidualMlpOptions options{.in_features = in_features,
                                             .width = width,
                                             .out_features = out_features,
                                             .blocks = blocks,
                                             .activation = parse_activation(activation),
                                             .bias = bias,
                                             .parameterization = parse_parameterization(parameterization),
                                             .sigma_w = sigma_w,
                                             .sigma_b = sigma_b,
                                             .dtype = parse_dtype(dtype)};
        Rng rng(seed);
        return nn::residual_mlp(options, rng);
      },
      py::arg("in_features"), py::arg("width"), py::arg("out_features"), py::arg("blocks") = 2,
      py::arg("activation") = "relu", py::arg("bias") = true, py::arg("parameterization") = "standard",
      py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0, py::arg("dtype") = "float64", py::arg("seed") = 0, R"doc(
A pre-activation residual MLP x:[n, in_features] -> [n, out_features]: Linear(in -> width), then
`blocks` Residual(Sequential(activation, Linear(width -> width))), the activation, and
Linear(width -> out_features).
)doc");
}

}  // namespace

void bind_nn_layers(py::module_& m) {
  bind_linear(m);
  bind_simple_layers(m);
  bind_sequential(m);
  bind_norms(m);
  bind_linearized(m);
  bind_builders(m);
}

}  // namespace theta::python
