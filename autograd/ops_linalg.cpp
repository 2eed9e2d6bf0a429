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

Var matmul_nd(const Var& a, const Var& b) {
  return make_result(theta::matmul(a.value(), b.value()), "matmul", {a, b},
                     [](const Var& g, const Node& n, const InputMask& needs) {
                       const Var& x = n.inputs[0];
                       const Var& y = n.inputs[1];
                       // Transposed views go to gemm as CblasTrans: no copies. An operand that
                       // is itself a transposed view (x W^T in Linear) gets its gradient computed
                       // in its own layout, so the parameter's gradient comes out contiguous
                       // after the transpose's backward (Note [Gradient layout]).
                       return VarList{needs[0] ? grad_in_layout(x, [&] { return matmul_nd(g, transpose(y, -1, -2)); },
                                                                         [&] { return matmul_nd(y, transpose(g, -1, -2)); })
                                                        : Var(),
                                               needs[1] ? grad_in_layout(y, [&] { return matmul_nd(transpose(x, -1, -2), g); },
                                                                         [&] { return matmul_nd(transpose(g, -1, -2), x); })
                                                        : Var()};
                     });
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
  return make_result(theta::matmul(x.value(), weight.value().t()), "linear", {x, weight},
                     [](const Var& g, const Node& n, const InputMask& needs) {
                       const Var& in = n.inputs[0];
                       const Var& w = n.inputs[1];
                       // Leading axes of x are a batch: dW sums over them, as one gemm over rows.
                       const auto rows = [](const Var& v) { return v.dim() == 2 ? v : reshape(v, {-1, v.size(-1)}); };
                       const Var grad_w = needs[1] ? matmul(transpose(rows(g), 0, 1), rows(in)) : Var();
                       return VarList{needs[0] ? matmul(g, w) : Var(), grad_w};
                     });
}

}  // namespace theta::autograd
