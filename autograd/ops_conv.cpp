// Convolution and average pooling. Each op here is linear in each input, so its backward rules
// are ops of this file again (Note [Closed under adjoints]) and derivatives of any order go
// through the same im2col + gemm kernels.

#include "autograd/primitive.hpp"

namespace theta::autograd {

THETA_PRIMITIVE(conv2d, "conv2d");
THETA_PRIMITIVE(conv2d_input_grad, "conv2d_input_grad");
THETA_PRIMITIVE(conv2d_weight_grad, "conv2d_weight_grad");
THETA_PRIMITIVE(avg_pool2d, "avg_pool2d");
THETA_PRIMITIVE(avg_pool2d_grad, "avg_pool2d_grad");
THETA_PRIMITIVE(global_avg_pool2d, "global_avg_pool2d");
THETA_PRIMITIVE(global_avg_pool2d_grad, "global_avg_pool2d_grad");

// Note [Closed under adjoints]
// Write B(x, w) = conv2d(x, w). It is bilinear, and its two adjoints are
//   I(g, w) = B(., w)^T g   (conv2d_input_grad)     W(x, g) = B(x, .)^T g   (conv2d_weight_grad),
// both bilinear too. For a cotangent h of each, the identities
//   <h, I(g, w)> = <B(h, w), g> = <W(h, g), w>      <h, W(x, g)> = <B(x, h), g> = <I(g, h), x>
// give every partial derivative as one of B, I, W again:
//   d/dx <h, B(x, w)>: I(h, w)    d/dw <h, B(x, w)>: W(x, h)
//   d/dg <h, I(g, w)>: B(h, w)    d/dw <h, I(g, w)>: W(h, g)
//   d/dx <h, W(x, g)>: I(g, h)    d/dg <h, W(x, g)>: B(x, h)
// so the three close under differentiation. Pooling is linear in one input: its adjoint's adjoint
// is the pooling itself. Tangents follow from bilinearity: d B(x, w) = B(dx, w) + B(x, dw), and
// alike for I and W; a linear op's tangent is the op applied to the input's tangent.

// A backward pass that records nothing (no create_graph, no forward-mode level: Note
// [Differentiable backward]) and needs both gradients of a convolution takes them from
// conv2d_grads, which transforms the cotangent once for both; the values are the same bit for bit.
namespace {
bool plain_backward() { return !grad_mode_enabled() && detail::forward_level == 0; }
}  // namespace

Var conv2d(const Var& x, const Var& weight, const Conv2dOptions& options) {
  return make_result(theta::conv2d(x.value(), weight.value(), options), "conv2d", {x, weight},
                     [options](const Var& h, const Node& n, const InputMask& needs) {
                       const Var& in = n.inputs[0];
                       const Var& w = n.inputs[1];
                       if (needs[0] && needs[1] && plain_backward()) {
                         Conv2dGrads grads = theta::conv2d_grads(in.value(), w.value(), h.value(), options);
                         return VarList{Var(std::move(grads.input)), Var(std::move(grads.weight))};
                       }
                       return VarList{needs[0] ? conv2d_input_grad(h, w, in.shape(), options) : Var(),
                                      needs[1] ? conv2d_weight_grad(in, h, w.shape(), options) : Var()};
                     },
                     [&options](const VarList& t, const VarList& in) {
                       return detail::add_defined(t[0].defined() ? conv2d(t[0], in[1], options) : Var(),
                                                  t[1].defined() ? conv2d(in[0], t[1], options) : Var());
                     });
}

Var conv2d_input_grad(const Var& grad_out, const Var& weight, const Shape& input_shape,
                      const Conv2dOptions& options) {
  return make_result(theta::conv2d_input_grad(grad_out.value(), weight.value(), input_shape, options),
                     "conv2d_input_grad", {grad_out, weight},
                     [options](const Var& h, const Node& n, const InputMask& needs) {
                       const Var& g = n.inputs[0];
                       const Var& w = n.inputs[1];
                       return VarList{needs[0] ? conv2d(h, w, options) : Var(),
                                      needs[1] ? conv2d_weight_grad(h, g, w.shape(), options) : Var()};
                     },
                     [&](const VarList& t, const VarList& in) {
                       return detail::add_defined(
                           t[0].defined() ? conv2d_input_grad(t[0], in[1], input_shape, options) : Var(),
                           t[1].defined() ? conv2d_input_grad(in[0], t[1], input_shape, options) : Var());
                     });
}

Var conv2d_weight_grad(const Var& x, const Var& grad_out, const Shape& weight_shape, const Conv2dOptions& options) {
  return make_result(theta::conv2d_weight_grad(x.value(), grad_out.value(), weight_shape, options),
                     "conv2d_weight_grad", {x, grad_out},
                     [options](const Var& h, const Node& n, const InputMask& needs) {
                       const Var& in = n.inputs[0];
                       const Var& g = n.inputs[1];
                       return VarList{needs[0] ? conv2d_input_grad(g, h, in.shape(), options) : Var(),
                                      needs[1] ? conv2d(in, h, options) : Var()};
                     },
                     [&](const VarList& t, const VarList& in) {
                       return detail::add_defined(
                           t[0].defined() ? conv2d_weight_grad(t[0], in[1], weight_shape, options) : Var(),
                           t[1].defined() ? conv2d_weight_grad(in[0], t[1], weight_shape, options) : Var());
                     });
}

Var avg_pool2d(const Var& x, std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
               std::array<std::int64_t, 2> padding) {
  return detail::unary_primitive("avg_pool2d", x, theta::avg_pool2d(x.value(), kernel, stride, padding),
                                 [kernel, stride, padding](const Var& h, const Var& in) {
                                   return avg_pool2d_grad(h, in.shape(), kernel, stride, padding);
                                 },
                                 [&](const Var& t, const Var&) { return avg_pool2d(t, kernel, stride, padding); });
}

Var avg_pool2d_grad(const Var& grad_out, const Shape& input_shape, std::array<std::int64_t, 2> kernel,
                    std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  return detail::unary_primitive(
      "avg_pool2d_grad", grad_out, theta::avg_pool2d_grad(grad_out.value(), input_shape, kernel, stride, padding),
      [kernel, stride, padding](const Var& h, const Var&) { return avg_pool2d(h, kernel, stride, padding); },
      [&](const Var& t, const Var&) { return avg_pool2d_grad(t, input_shape, kernel, stride, padding); });
}

Var global_avg_pool2d(const Var& x) {
  return detail::unary_primitive("global_avg_pool2d", x, theta::global_avg_pool2d(x.value()),
                                 [](const Var& h, const Var& in) { return global_avg_pool2d_grad(h, in.shape()); },
                                 [](const Var& t, const Var&) { return global_avg_pool2d(t); });
}

Var global_avg_pool2d_grad(const Var& grad_out, const Shape& input_shape) {
  return detail::unary_primitive("global_avg_pool2d_grad", grad_out,
                                 theta::global_avg_pool2d_grad(grad_out.value(), input_shape),
                                 [](const Var& h, const Var&) { return global_avg_pool2d(h); },
                                 [&](const Var& t, const Var&) { return global_avg_pool2d_grad(t, input_shape); });
}

}  // namespace theta::autograd
