// operator<< for Var: the value printed as a Tensor is, plus its autograd state.

#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "autograd/ops.hpp"

using namespace theta;
using theta::autograd::Var;

namespace {
template <class T> std::string printed(const T& x) {
  std::ostringstream out;
  out << x;
  return out.str();
}
}  // namespace

TEST_CASE("a Var prints its value and whether it requires grad or which op made it", "[autograd][print]") {
  const Var leaf(tensor({1.0, -2.5}), true);
  CHECK(printed(leaf) == "var([1, -2.5], dtype=float64, shape=[2], requires_grad=true)");
  CHECK(printed(Var(tensor({1.0, -2.5}))) == "var([1, -2.5], dtype=float64, shape=[2])");
  CHECK(printed(leaf * 2.0) == "var([2, -5], dtype=float64, shape=[2], grad_fn=mul_scalar)");
  CHECK(printed(autograd::sum(autograd::exp(leaf))).find("grad_fn=sum") != std::string::npos);
  {
    autograd::NoGradGuard no_grad;  // nothing recorded: a constant
    CHECK(printed(leaf * 2.0) == "var([2, -5], dtype=float64, shape=[2])");
  }
  CHECK(printed(Var()) == "var(undefined)");
}

TEST_CASE("a Var prints its elements exactly as its Tensor does", "[autograd][print]") {
  const Tensor t = arange(0.0, 6.0, 1.0, DType::f32).reshape({2, 3});
  CHECK(printed(t) == "tensor([[0, 1, 2],\n        [3, 4, 5]], dtype=float32, shape=[2, 3])");
  // Rows of a matrix stay aligned under the longer prefix.
  CHECK(printed(Var(t)) == "var([[0, 1, 2],\n     [3, 4, 5]], dtype=float32, shape=[2, 3])");
  CHECK(printed(Var(scalar_tensor(0.25))) == "var(0.25, dtype=float64, shape=[])");
  const Tensor big = zeros({2000});
  const std::string tensor_text = printed(big), var_text = printed(Var(big));
  CHECK(var_text == "var" + tensor_text.substr(6));  // summarised the same way
}
