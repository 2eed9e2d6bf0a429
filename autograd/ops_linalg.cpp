// matmul: the primitive works on operands of rank >= 2 (batched, broadcast batch axes); 1-D
// operands are promoted with unsqueeze and the result squeezed, as in NumPy.

#include "autograd/primitive.hpp"

namespace theta::autograd {

THETA_PRIMITIVE(matmul, "matmul");
THETA_PRIMITIVE(linear, "linear");

namespace {
// Note [Gradient layout]
// For y = a @ b the gradient of b is a^T g. When b is a transposed view (Linear computes
// x @ W^T), that product is produced row-major and then viewed transposed twice on its way to
// W, leaving W's gradient with strides (1, out): every later elementwise pass over it (the
// optimizer update) then gathers. Computing (g^T a) instead and transposing it gives the same
// values with W's own layout, at the same gemm cost.
bool is_transposed_view(const Var& v) {
  const Strides& s = v.value().strides();
  const std::size_t d = s.size();
  return d >= 2 && v.size(-2) > 1 && v.size(-1) > 1 && s[d - 2] == 1 && s[d - 1] != 1;
}

// Gradient of `operand` from `direct` (its natural layout) or, for a transposed view, the
// transpose of `swapped` (the same product computed transposed).
template <class Direct, class Swapped>
Var grad_in_layout(const Var& operand, Direct direct, Swapped swapped) {
  const Var g = is_transposed_view(operand) ? transpose(swapped(), -1, -2) : direct();
  return sum_to(g, operand.shape());
}

Var matmul_nd(const Var& a, const Var& b);

// d/dx and d/dy of x @ y with output gradient g. Transposed views go to gemm as CblasTrans: no
// copies. An operand that is itself a transposed view (x W^T) gets its gradient computed in its
// own layout, so a parameter's gradient comes out contiguous after the transpose's backward
// (Note [Gradient layout]).
Var matmul_grad_x(const Var& g, const Var& x, const Var& y) {
  return grad_in_layout(x, [&] { return matmul_nd(g, transpose(y, -1, -2)); },
                        [&] { return matmul_nd(y, transpose(g, -1, -2)); });
}
Var matmul_grad_y(const Var& g, const Var& x, const Var& y) {
  return grad_in_layout(y, [&] { return matmul_nd(transpose(x, -1, -2), g); },
                        [&] { return matmul_nd(transpose(g, -1, -2), x); });
}

VarList matmul_backward(const Var& g, const Node& n, const InputMask& needs) {
  const Var& x = n.inputs[0];
  const Var& y = n.inputs[1];
  return VarList{needs[0] ? matmul_grad_x(g, x, y) : Var(), needs[1] ? matmul_grad_y(g, x, y) : Var()};
}

// Plain matrices add their products into the buffers the engine offers (Note [Accumulating
// backward]); batched operands, whose gradients are summed over broadcast axes, take the plain
// rule.
VarList matmul_backward_into(const Var& g, const Node& n, const InputMask& needs, const GradBuffers& into) {
  const Var& x = n.inputs[0];
  const Var& y = n.inputs[1];
  if (g.dim() != 2 || x.dim() != 2 || y.dim() != 2) return matmul_backward(g, n, needs);
  VarList out(2);
  if (needs[0]) {
    if (into[0].defined())
      into[0].add_matmul_(g.value(), y.value().t());
    else
      out[0] = matmul_grad_x(g, x, y);
  }
  if (needs[1]) {
    if (into[1].defined())
      into[1].add_matmul_(x.value().t(), g.value());
    else
      out[1] = matmul_grad_y(g, x, y);
  }
  return out;
}

// Note [Bilinear tangents]
// matmul and linear are bilinear: d(a b) = da b + a db. When the rule records nothing, the first
// product is a fresh constant nobody else holds, and the second is added into its buffer by the
// gemm itself (beta 1, Note [Accumulating gemm]): no second [m, n] temporary and no pass to add
// it, which is most of a forward-over-reverse HVP's extra memory at the weight gradients.
bool owns_fresh_buffer(const Var& v) {
  return !v.requires_grad() && v.use_count() == 1 && v.value().storage().use_count() == 1 && v.value().is_contiguous();
}

Var matmul_tangent(const VarList& t, const VarList& in) {
  if (!t[0].defined()) return matmul_nd(in[0], t[1]);
  Var first = matmul_nd(t[0], in[1]);
  if (!t[1].defined()) return first;
  if (first.dim() == 2 && in[0].dim() == 2 && t[1].dim() == 2 && owns_fresh_buffer(first)) {
    first.value().add_matmul_(in[0].value(), t[1].value());
    return first;
  }
  return first + matmul_nd(in[0], t[1]);
}

Var linear_tangent(const VarList& t, const VarList& in) {
  if (!t[0].defined()) return linear(in[0], t[1]);
  Var first = linear(t[0], in[1]);
  if (!t[1].defined()) return first;
  if (in[0].dim() == 2 && owns_fresh_buffer(first)) {
    first.value().add_matmul_(in[0].value(), t[1].value().t());
    return first;
  }
  return first + linear(in[0], t[1]);
}

Var matmul_nd(const Var& a, const Var& b) {
  Var out = make_result(theta::matmul(a.value(), b.value()), "matmul", {a, b}, matmul_backward, matmul_tangent);
  if (const auto& node = out.grad_fn()) node->backward_into = matmul_backward_into;
  return out;
}

// linear(x, W) = x W^T. Leading axes of x are a batch: dW sums over them, as one gemm over rows.
Var rows(const Var& v) { return v.dim() == 2 ? v : reshape(v, {-1, v.size(-1)}); }
Tensor rows(const Tensor& t) { return t.dim() == 2 ? t : t.reshape({-1, t.size(-1)}); }

VarList linear_backward(const Var& g, const Node& n, const InputMask& needs) {
  const Var& in = n.inputs[0];
  const Var& w = n.inputs[1];
  return VarList{needs[0] ? matmul(g, w) : Var(), needs[1] ? matmul(transpose(rows(g), 0, 1), rows(in)) : Var()};
}

VarList linear_backward_into(const Var& g, const Node& n, const InputMask& needs, const GradBuffers& into) {
  const Var& in = n.inputs[0];
  const Var& w = n.inputs[1];
  VarList out(2);
  if (needs[0]) {
    if (into[0].defined() && g.dim() == 2)
      into[0].add_matmul_(g.value(), w.value());
    else
      out[0] = matmul(g, w);
  }
  if (needs[1]) {
    if (into[1].defined())
      into[1].add_matmul_(rows(g.value()).t(), rows(in.value()));
    else
      out[1] = matmul(transpose(rows(g), 0, 1), rows(in));
  }
  return out;
}
}  // namespace

Var matmul(const Var& a, const Var& b) {
  THETA_CHECK(a.defined() && b.defined() && a.dim() >= 1 && b.dim() >= 1, ShapeError,
              "matmul: operands must have at least one dimension");
  const Var a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Var b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  THETA_CHECK(a2.size(-1) == b2.size(-2), ShapeError, "matmul: inner dimensions differ: ",
              shape_str(a.shape()), " @ ", shape_str(b.shape()));
  Var out = matmul_nd(a2, b2);
  if (a.dim() == 1) out = squeeze(out, -2);
  if (b.dim() == 1) out = squeeze(out, -1);
  return out;
}

Var linear(const Var& x, const Var& weight) {
  THETA_CHECK(weight.defined() && weight.dim() == 2, ShapeError, "linear: weight must be [out, in], got ",
              weight.defined() ? shape_str(weight.shape()) : std::string("an undefined Var"));
  THETA_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == weight.size(1), ShapeError, "linear: input ",
              x.defined() ? shape_str(x.shape()) : std::string("(undefined)"), " does not end in ",
              weight.size(1), " = the weight's input width ", shape_str(weight.shape()));
  // One node for x W^T: the weight's transpose is a BLAS flag here, not a recorded view, and the
  // weight's gradient g^T x comes out in the weight's own [out, in] layout.
  Var out = make_result(theta::matmul(x.value(), weight.value().t()), "linear", {x, weight}, linear_backward,
                        linear_tangent);
  if (const auto& node = out.grad_fn()) node->backward_into = linear_backward_into;
  return out;
}

}  // namespace theta::autograd
