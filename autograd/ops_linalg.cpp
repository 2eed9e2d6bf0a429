// matmul: the primitive works on operands of rank >= 2 (batched, broadcast batch axes); 1-D
// operands are promoted with unsqueeze and the result squeezed, as in NumPy.

#include "autograd/primitive.hpp"

namespace theta::autograd {

THETA_PRIMITIVE(matmul, "matmul");

namespace {
Var matmul_nd(const Var& a, const Var& b) {
  return make_result(theta::matmul(a.value(), b.value()), "matmul", {a, b},
                     [](const Var& g, const Node& n, const InputMask& needs) {
                       const Var& x = n.inputs[0];
                       const Var& y = n.inputs[1];
                       // Transposed views go to gemm as CblasTrans: no copies.
                       return std::vector<Var>{
                           needs[0] ? sum_to(matmul_nd(g, transpose(y, -1, -2)), x.shape()) : Var(),
                           needs[1] ? sum_to(matmul_nd(transpose(x, -1, -2), g), y.shape()) : Var()};
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

}  // namespace theta::autograd
