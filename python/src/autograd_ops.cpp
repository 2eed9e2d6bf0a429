// The differentiable ops of autograd/ops.hpp as theta.autograd functions, and the commonest as
// Var methods. Arguments accept Vars, arrays and numbers (constants); results are Vars.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/var.hpp"
#include "bindings.hpp"
#include "conv_args.hpp"

namespace theta::python {

using autograd::Var;

namespace {

// axis=None (all axes), an int, or a tuple/list of ints. An empty tuple also means all axes.
std::vector<std::int64_t> axes_arg(const py::object& axis) {
  if (axis.is_none()) return {};
  if (py::isinstance<py::int_>(axis)) return {axis.cast<std::int64_t>()};
  if (py::isinstance<py::tuple>(axis) || py::isinstance<py::list>(axis)) return axis.cast<std::vector<std::int64_t>>();
  throw py::type_error("axis: expected None, an int or a tuple of ints, got " +
                       std::string(py::str(py::type::of(axis))));
}

// A shape or permutation given as f(2, 3) or f((2, 3)).
std::vector<std::int64_t> ints_from_args(const py::args& args, const char* what) {
  if (args.size() == 1 && (py::isinstance<py::tuple>(args[0]) || py::isinstance<py::list>(args[0])))
    return args[0].cast<std::vector<std::int64_t>>();
  std::vector<std::int64_t> out;
  for (const auto& a : args) {
    if (!py::isinstance<py::int_>(a)) throw py::type_error(std::string(what) + ": expected ints or one tuple of ints");
    out.push_back(a.cast<std::int64_t>());
  }
  return out;
}

// A where() mask: bool arrays are accepted (as int64 0/1), other arrays as theta takes them.
Tensor mask_arg(const py::object& mask) {
  if (py::isinstance<py::array>(mask) && py::reinterpret_borrow<py::array>(mask).dtype().kind() == 'b')
    return to_tensor(mask.attr("astype")(py::dtype::of<std::int64_t>()), "mask");
  return to_tensor(mask, "mask");
}

// NumPy's .T: the axes reversed (a 0-d or 1-D Var unchanged).
Var reverse_axes(const Var& x) {
  std::vector<std::int64_t> perm;
  for (std::int64_t i = x.dim() - 1; i >= 0; --i) perm.push_back(i);
  return autograd::permute(x, perm);
}

// x[key] for key an int, a slice (positive step), an Ellipsis or a tuple of them: select and
// slice ops, so the result records its graph like any op.
Var index_var(const Var& x, const py::object& key) {
  std::vector<py::object> keys;
  if (py::isinstance<py::tuple>(key)) {
    for (const auto& k : key) keys.push_back(py::reinterpret_borrow<py::object>(k));
  } else {
    keys.push_back(key);
  }
  std::size_t ellipses = 0;
  for (const auto& k : keys) ellipses += k.is(py::ellipsis()) ? 1 : 0;
  if (ellipses > 1) throw py::index_error("Var index: at most one Ellipsis");
  const auto explicit_axes = static_cast<std::int64_t>(keys.size() - ellipses);
  if (explicit_axes > x.dim())
    throw py::index_error("Var index: " + std::to_string(explicit_axes) + " indices for a Var with " +
                          std::to_string(x.dim()) + " dimensions");
  Var out = x;
  std::int64_t axis = 0;  // the axis of `out` the next key applies to
  for (const auto& k : keys) {
    if (k.is(py::ellipsis())) {
      axis += x.dim() - explicit_axes;
    } else if (py::isinstance<py::int_>(k)) {
      std::int64_t i = k.cast<std::int64_t>();
      const std::int64_t n = out.size(axis);
      if (i < -n || i >= n)
        throw py::index_error("Var index: index " + std::to_string(i) + " out of range for axis of size " +
                              std::to_string(n));
      out = autograd::select(out, axis, i < 0 ? i + n : i);
    } else if (py::isinstance<py::slice>(k)) {
      py::ssize_t start = 0, stop = 0, step = 0, length = 0;
      if (!py::reinterpret_borrow<py::slice>(k).compute(static_cast<py::ssize_t>(out.size(axis)), &start, &stop, &step,
                                                        &length))
        throw py::error_already_set();
      if (step <= 0) throw py::index_error("Var index: slices need a positive step");
      out = autograd::slice(out, axis, start, std::max(start, stop), step);
      ++axis;
    } else {
      throw py::type_error("Var index: expected ints, slices or an Ellipsis, got " +
                           std::string(py::str(py::type::of(k))) + " (use index_select or gather for arrays)");
    }
  }
  return out;
}

}  // namespace

void bind_autograd_ops(py::module_& m) {
  namespace ag = autograd;
  const auto x_ = py::arg("x");

  // ---- elementwise --------------------------------------------------------------------------
  m.def("neg", &ag::neg, x_, "-x.");
  m.def("abs", &ag::abs, x_, "|x| (gradient 0 at 0).");
  m.def("exp", &ag::exp, x_, "e^x.");
  m.def("log", &ag::log, x_, "Natural logarithm.");
  m.def("log1p", &ag::log1p, x_, "log(1 + x).");
  m.def("expm1", &ag::expm1, x_, "e^x - 1.");
  m.def("sqrt", &ag::sqrt, x_, "Square root.");
  m.def("rsqrt", &ag::rsqrt, x_, "1 / sqrt(x).");
  m.def("tanh", &ag::tanh, x_, "Hyperbolic tangent.");
  m.def("sigmoid", &ag::sigmoid, x_, "1 / (1 + e^-x).");
  m.def("relu", &ag::relu, x_, "max(x, 0) (gradient 0 at 0).");
  m.def("sin", &ag::sin, x_, "Sine.");
  m.def("cos", &ag::cos, x_, "Cosine.");
  m.def("square", &ag::square, x_, "x * x.");
  m.def("sign", &ag::sign, x_, "-1, 0 or 1 (gradient 0).");
  m.def("erf", &ag::erf, x_, "The error function.");
  m.def("reciprocal", &ag::reciprocal, x_, "1 / x.");
  m.def("clamp", &ag::clamp, x_, py::arg("lo"), py::arg("hi"),
        "x limited to [lo, hi] (gradient 1 inside, bounds included, 0 outside).");
  m.def(
      "pow", [](const Var& x, double p) { return ag::pow(x, p); }, x_, py::arg("p"), "x ** p for a number p.");
  m.def(
      "pow", [](const Var& a, const Var& b) { return ag::pow(a, b); }, py::arg("a"), py::arg("b"),
      "a ** b elementwise, for a > 0 (the gradient in b uses log a).");
  const auto a_ = py::arg("a");
  const auto b_ = py::arg("b");
  m.def("add", &ag::add, a_, b_, "a + b (broadcasting).");
  m.def("sub", &ag::sub, a_, b_, "a - b (broadcasting).");
  m.def("mul", &ag::mul, a_, b_, "a * b (broadcasting).");
  m.def("div", &ag::div, a_, b_, "a / b (broadcasting).");
  m.def("maximum", &ag::maximum, a_, b_, "Elementwise max (ties split the gradient evenly).");
  m.def("minimum", &ag::minimum, a_, b_, "Elementwise min (ties split the gradient evenly).");
  m.def("add_scalar", &ag::add_scalar, x_, py::arg("c"), "x + c for a number c.");
  m.def("mul_scalar", &ag::mul_scalar, x_, py::arg("c"), "x * c for a number c.");
  m.def("div_scalar", &ag::div_scalar, x_, py::arg("c"), "x / c for a number c.");
  m.def(
      "where", [](const py::object& mask, const Var& a, const Var& b) { return ag::where(mask_arg(mask), a, b); },
      py::arg("mask"), a_, b_, "mask != 0 ? a : b; mask (an array, bool allowed) is a constant.");

  // ---- reductions ---------------------------------------------------------------------------
  const auto axis_ = py::arg("axis") = py::none();
  const auto keepdim_ = py::arg("keepdim") = false;
  m.def(
      "sum", [](const Var& x, const py::object& axis, bool keepdim) { return ag::sum(x, axes_arg(axis), keepdim); }, x_,
      axis_, keepdim_, "Sum over axis (None: all axes; an int or a tuple).");
  m.def(
      "mean", [](const Var& x, const py::object& axis, bool keepdim) { return ag::mean(x, axes_arg(axis), keepdim); },
      x_, axis_, keepdim_, "Mean over axis (None: all axes).");
  m.def(
      "max", [](const Var& x, const py::object& axis, bool keepdim) { return ag::max(x, axes_arg(axis), keepdim); }, x_,
      axis_, keepdim_, "Max over axis (ties split the gradient evenly).");
  m.def(
      "min", [](const Var& x, const py::object& axis, bool keepdim) { return ag::min(x, axes_arg(axis), keepdim); }, x_,
      axis_, keepdim_, "Min over axis (ties split the gradient evenly).");
  m.def(
      "logsumexp",
      [](const Var& x, const py::object& axis, bool keepdim) { return ag::logsumexp(x, axes_arg(axis), keepdim); }, x_,
      axis_, keepdim_, "log(sum(exp(x))) over axis, computed stably.");
  m.def(
      "var",
      [](const Var& x, const py::object& axis, std::int64_t correction, bool keepdim) {
        return ag::var(x, axes_arg(axis), correction, keepdim);
      },
      x_, axis_, py::arg("correction") = 0, keepdim_, "Variance over axis, dividing by N - correction.");
  m.def(
      "norm",
      [](const Var& x, double p, const py::object& axis, bool keepdim) {
        return ag::norm(x, p, axes_arg(axis), keepdim);
      },
      x_, py::arg("p") = 2.0, axis_, keepdim_, "p-norm over axis for p = 1, 2 or inf (gradient 0 at the origin).");
  m.def(
      "sum_to", [](const Var& x, const std::vector<std::int64_t>& shape) { return ag::sum_to(x, Shape(shape)); }, x_,
      py::arg("shape"), "Sums broadcast axes away so the result has `shape`.");
  m.def(
      "expand", [](const Var& x, const std::vector<std::int64_t>& shape) { return ag::expand(x, Shape(shape)); }, x_,
      py::arg("shape"), "Broadcasts x to `shape` (the gradient sums back).");
  m.def("softmax", &ag::softmax, x_, py::arg("axis") = -1, "Softmax along axis.");
  m.def("log_softmax", &ag::log_softmax, x_, py::arg("axis") = -1, "log(softmax(x)) along axis, computed stably.");
  m.def("vdot", &ag::vdot, a_, b_, "sum(a * b) over all elements of two Vars of the same shape.");

  // ---- linear algebra -----------------------------------------------------------------------
  m.def(
      "matmul", [](const Var& a, const Var& b) { return without_gil([&] { return ag::matmul(a, b); }); }, a_, b_,
      "Matrix product with NumPy's matmul semantics (1-D, 2-D, batched).");
  m.def(
      "linear", [](const Var& x, const Var& weight) { return without_gil([&] { return ag::linear(x, weight); }); }, x_,
      py::arg("weight"), "x @ weight.T for weight [out, in] and x [..., in] (one recorded op).");

  // ---- convolution and pooling (NCHW) -------------------------------------------------------
  const auto stride_ = py::arg("stride") = 1;
  const auto padding_ = py::arg("padding") = 0;
  const auto dilation_ = py::arg("dilation") = 1;
  const auto padding_mode_ = py::arg("padding_mode") = "zeros";
  m.def(
      "conv2d",
      [](const Var& x, const Var& weight, const py::object& stride, const py::object& padding,
         const py::object& dilation, const std::string& padding_mode) {
        const Conv2dOptions options = conv2d_options(stride, padding, dilation, padding_mode);
        return without_gil([&] { return ag::conv2d(x, weight, options); });
      },
      x_, py::arg("weight"), stride_, padding_, dilation_, padding_mode_, R"doc(
Cross-correlation (PyTorch's conv2d without bias): x:[N, C_in, H, W], weight:[C_out, C_in, kh, kw]
-> [N, C_out, H_out, W_out], H_out = (H + 2 padding - dilation (kh - 1) - 1) // stride + 1.
stride, padding, dilation: an int or a pair (height, width); padding_mode "zeros" or "circular".)doc");
  m.def(
      "conv2d_input_grad",
      [](const Var& grad_out, const Var& weight, const std::vector<std::int64_t>& input_shape, const py::object& stride,
         const py::object& padding, const py::object& dilation, const std::string& padding_mode) {
        const Conv2dOptions options = conv2d_options(stride, padding, dilation, padding_mode);
        return without_gil([&] { return ag::conv2d_input_grad(grad_out, weight, Shape(input_shape), options); });
      },
      py::arg("grad_out"), py::arg("weight"), py::arg("input_shape"), stride_, padding_, dilation_, padding_mode_,
      "The adjoint of conv2d in its input, for an input of `input_shape` (differentiable).");
  m.def(
      "conv2d_weight_grad",
      [](const Var& x, const Var& grad_out, const std::vector<std::int64_t>& weight_shape, const py::object& stride,
         const py::object& padding, const py::object& dilation, const std::string& padding_mode) {
        const Conv2dOptions options = conv2d_options(stride, padding, dilation, padding_mode);
        return without_gil([&] { return ag::conv2d_weight_grad(x, grad_out, Shape(weight_shape), options); });
      },
      x_, py::arg("grad_out"), py::arg("weight_shape"), stride_, padding_, dilation_, padding_mode_,
      "The adjoint of conv2d in its weight, for a weight of `weight_shape`, summed over the batch (differentiable).");
  m.def(
      "avg_pool2d",
      [](const Var& x, const py::object& kernel_size, const py::object& stride, const py::object& padding) {
        const auto kernel = pair_arg(kernel_size, "kernel_size");
        const auto step = stride.is_none() ? kernel : pair_arg(stride, "stride");
        const auto pad = pair_arg(padding, "padding");
        return without_gil([&] { return ag::avg_pool2d(x, kernel, step, pad); });
      },
      x_, py::arg("kernel_size"), py::arg("stride") = py::none(), padding_, R"doc(
Mean over kernel windows of x:[N, C, H, W] (stride None: the kernel size; zero padding, at most half
the kernel, counts in the mean). kernel_size, stride, padding: an int or a pair.)doc");
  m.def(
      "avg_pool2d_grad",
      [](const Var& grad_out, const std::vector<std::int64_t>& input_shape, const py::object& kernel_size,
         const py::object& stride, const py::object& padding) {
        const auto kernel = pair_arg(kernel_size, "kernel_size");
        const auto step = stride.is_none() ? kernel : pair_arg(stride, "stride");
        const auto pad = pair_arg(padding, "padding");
        return without_gil([&] { return ag::avg_pool2d_grad(grad_out, Shape(input_shape), kernel, step, pad); });
      },
      py::arg("grad_out"), py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride") = py::none(), padding_,
      "The adjoint of avg_pool2d for an input of `input_shape` (differentiable).");
  m.def("global_avg_pool2d", &ag::global_avg_pool2d, x_, "Mean over the image: x:[N, C, H, W] -> [N, C].");
  m.def(
      "global_avg_pool2d_grad",
      [](const Var& grad_out, const std::vector<std::int64_t>& input_shape) {
        return ag::global_avg_pool2d_grad(grad_out, Shape(input_shape));
      },
      py::arg("grad_out"), py::arg("input_shape"),
      "The adjoint of global_avg_pool2d: grad_out:[N, C] -> [N, C, H, W], each entry divided by H W.");

  // ---- views and joins ----------------------------------------------------------------------
  m.def(
      "reshape", [](const Var& x, const std::vector<std::int64_t>& shape) { return ag::reshape(x, Shape(shape)); }, x_,
      py::arg("shape"), "x with a new shape of the same size.");
  m.def("permute", &ag::permute, x_, py::arg("perm"), "x with its axes reordered.");
  m.def("transpose", &ag::transpose, x_, py::arg("a"), py::arg("b"), "x with axes a and b swapped.");
  m.def("t", &ag::t, x_, "Transpose of a 2-D Var.");
  m.def("slice", &ag::slice, x_, py::arg("axis"), py::arg("start"), py::arg("stop"), py::arg("step") = 1,
        "x[start:stop:step] along axis.");
  m.def("select", &ag::select, x_, py::arg("axis"), py::arg("index"), "x[index] along axis (that axis removed).");
  m.def("squeeze", &ag::squeeze, x_, py::arg("axis"), "Removes a size-1 axis.");
  m.def("unsqueeze", &ag::unsqueeze, x_, py::arg("axis"), "Inserts a size-1 axis.");
  m.def("flatten", &ag::flatten, x_, "x as 1-D.");
  m.def("concat", &ag::concat, py::arg("xs"), py::arg("axis") = 0, "Joins Vars along an existing axis.");
  m.def("stack", &ag::stack, py::arg("xs"), py::arg("axis") = 0, "Joins Vars along a new axis.");
  m.def("index_select", &ag::index_select, x_, py::arg("axis"), py::arg("index"),
        "Entries `index` (1-D int64) of x along axis.");
  m.def("gather", &ag::gather, x_, py::arg("axis"), py::arg("index"),
        "out[..i..] = x[..index[..i..]..] along axis (index: int64, x's rank).");
  m.def("scatter_add", &ag::scatter_add, x_, py::arg("axis"), py::arg("index"), py::arg("src"),
        "x with src added at the index positions along axis.");
  m.def(
      "slice_backward",
      [](const Var& x, const std::vector<std::int64_t>& shape, std::int64_t axis, std::int64_t start, std::int64_t stop,
         std::int64_t step) { return ag::slice_backward(x, Shape(shape), axis, start, stop, step); },
      x_, py::arg("shape"), py::arg("axis"), py::arg("start"), py::arg("stop"), py::arg("step") = 1,
      "The inverse of slice: zeros of `shape` with x written at the sliced positions.");

  // ---- the commonest as Var methods ---------------------------------------------------------
  auto cls = py::reinterpret_borrow<py::class_<Var>>(m.attr("Var"));
  cls.def(
         "sum", [](const Var& x, const py::object& axis, bool keepdim) { return ag::sum(x, axes_arg(axis), keepdim); },
         axis_, keepdim_, "Sum over axis (None: all axes).")
      .def(
          "mean",
          [](const Var& x, const py::object& axis, bool keepdim) { return ag::mean(x, axes_arg(axis), keepdim); },
          axis_, keepdim_, "Mean over axis (None: all axes).")
      .def(
          "max", [](const Var& x, const py::object& axis, bool keepdim) { return ag::max(x, axes_arg(axis), keepdim); },
          axis_, keepdim_, "Max over axis.")
      .def(
          "min", [](const Var& x, const py::object& axis, bool keepdim) { return ag::min(x, axes_arg(axis), keepdim); },
          axis_, keepdim_, "Min over axis.")
      .def(
          "reshape",
          [](const Var& x, const py::args& shape) { return ag::reshape(x, Shape(ints_from_args(shape, "reshape"))); },
          "x.reshape(2, 3) or x.reshape((2, 3)).")
      .def(
          "permute", [](const Var& x, const py::args& perm) { return ag::permute(x, ints_from_args(perm, "permute")); },
          "x.permute(1, 0) or x.permute((1, 0)).")
      .def("transpose", &ag::transpose, py::arg("a"), py::arg("b"), "Axes a and b swapped.")
      .def("__getitem__", &index_var, py::arg("key"),
           "x[i], x[a:b:step], x[..., i] and tuples of them (differentiable; positive steps only).")
      .def_property_readonly("T", &reverse_axes, "The axes reversed (NumPy's .T).")
      .def("flatten", &ag::flatten, "x as 1-D.")
      .def("squeeze", &ag::squeeze, py::arg("axis"), "Removes a size-1 axis.")
      .def("unsqueeze", &ag::unsqueeze, py::arg("axis"), "Inserts a size-1 axis.")
      .def("exp", &ag::exp, "e^x (as theta.autograd.exp).")
      .def("log", &ag::log, "Natural logarithm (as theta.autograd.log).")
      .def("tanh", &ag::tanh, "Hyperbolic tangent (as theta.autograd.tanh).")
      .def("sigmoid", &ag::sigmoid, "1 / (1 + e^-x) (as theta.autograd.sigmoid).")
      .def("relu", &ag::relu, "max(x, 0) (as theta.autograd.relu).")
      .def("sqrt", &ag::sqrt, "Square root (as theta.autograd.sqrt).")
      .def("abs", &ag::abs, "|x| (as theta.autograd.abs).")
      .def(
          "pow", [](const Var& x, double p) { return ag::pow(x, p); }, py::arg("p"), "x ** p for a number p.")
      .def("softmax", &ag::softmax, py::arg("axis") = -1, "Softmax along axis.")
      .def("log_softmax", &ag::log_softmax, py::arg("axis") = -1, "log(softmax(x)) along axis.")
      .def(
          "matmul", [](const Var& a, const Var& b) { return without_gil([&] { return ag::matmul(a, b); }); },
          py::arg("other"), "self @ other.");
}

}  // namespace theta::python
