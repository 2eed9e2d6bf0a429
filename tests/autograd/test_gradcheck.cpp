// The gradcheck helpers themselves: they pass correct derivatives and catch each kind of wrong
// one (first order, nonlinear in the cotangent, wrong only to second order, wrong for strided
// layouts), with messages that name the input and element.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/gradcheck.hpp"

using namespace theta;
using namespace theta::autograd;
using Catch::Contains;
using theta::testing::gradcheck;
using theta::testing::gradgradcheck;

namespace {

/// x^2 with a backward that forgets the factor 2.
Var square_missing_factor(const Var& x) {
  return make_result(theta::square(x.value()), "square_missing_factor", {x},
                     [](const Var& g, const Node& n, const InputMask&) { return VarList{g * n.inputs[0]}; });
}

/// x^2 whose backward squares the cotangent: right for one-hot cotangents only.
Var square_nonlinear_in_g(const Var& x) {
  return make_result(theta::square(x.value()), "square_nonlinear_in_g", {x},
                     [](const Var& g, const Node& n, const InputMask&) {
                       return VarList{g * g * n.inputs[0] * 2.0};
                     });
}

/// x^2 whose backward treats x as a constant: right to first order, wrong to second.
Var square_first_order_only(const Var& x) {
  return make_result(theta::square(x.value()), "square_first_order_only", {x},
                     [](const Var& g, const Node& n, const InputMask&) {
                       return VarList{g * Var(theta::mul(n.inputs[0].value(), scalar_tensor(2.0)))};
                     });
}

/// x^2 whose backward treats the cotangent as a constant: its derivative in u is lost.
Var square_constant_cotangent(const Var& x) {
  return make_result(theta::square(x.value()), "square_constant_cotangent", {x},
                     [](const Var& g, const Node& n, const InputMask&) {
                       return VarList{Var(g.value()) * n.inputs[0] * 2.0};
                     });
}

/// 3 x whose forward reads the storage as if it were contiguous (wrong for strided views).
Var triple_ignoring_strides(const Var& x) {
  const Tensor& v = x.value();
  const Tensor as_if_contiguous(v.storage(), v.shape(), contiguous_strides(v.shape()), v.offset(), v.dtype());
  return make_result(theta::mul(as_if_contiguous, scalar_tensor(3.0)), "triple_ignoring_strides", {x},
                     [](const Var& g, const Node&, const InputMask&) { return VarList{g * 3.0}; });
}

}  // namespace

TEST_CASE("gradcheck passes correct derivatives and leaves inputs alone", "[autograd][gradcheck]") {
  Rng rng(1);
  const Tensor a = rng.normal({4, 3}).t();  // transposed view
  const Tensor b = rng.normal({4});
  const Tensor unused = rng.normal({2});
  const auto before_a = to_vector(a);
  const auto f = [](const std::vector<Var>& x) { return sin(x[0]) * x[1] + square(x[0]); };
  const auto f_unused = [](const std::vector<Var>& x) { return sum(exp(x[0])); };
  const auto r1 = gradcheck(f, {a, b});
  INFO(r1.message);
  CHECK(r1.ok);
  CHECK(r1.max_error < 1e-7);
  const auto r2 = gradgradcheck(f, {a, b});
  INFO(r2.message);
  CHECK(r2.ok);
  CHECK(gradcheck(f_unused, {b, unused}).ok);  // the unused input's Jacobian is zero
  CHECK(gradgradcheck(f_unused, {b, unused}).ok);
  CHECK(to_vector(a) == before_a);
  CHECK(a.strides() == Strides{1, 3});
}

TEST_CASE("gradcheck reports a wrong first derivative with the input and element", "[autograd][gradcheck]") {
  const Tensor x = tensor({0.5, -3.0, 1.25});
  const auto r = gradcheck([](const std::vector<Var>& in) { return square_missing_factor(in[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.max_error == Approx(3.0).epsilon(1e-6));  // analytic x vs numerical 2x at x = -3
  CHECK_THAT(r.message, Contains("gradcheck: ") && Contains("d input 0 [1]") && Contains("analytic"));
}

TEST_CASE("gradcheck catches a backward that is nonlinear in the cotangent", "[autograd][gradcheck]") {
  const Tensor x = tensor({0.5, -3.0, 1.25, 2.0}, {2, 2});
  const auto f = [](const std::vector<Var>& in) { return square_nonlinear_in_g(in[0]); };
  const auto r = gradcheck(f, {x});
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.message, Contains("random-cotangent vjp"));
}

TEST_CASE("gradgradcheck catches backwards that are right only to first order", "[autograd][gradcheck]") {
  const Tensor x = tensor({0.5, -3.0, 1.25});
  SECTION("input treated as a constant") {
    const auto f = [](const std::vector<Var>& in) { return square_first_order_only(in[0]); };
    CHECK(gradcheck(f, {x}).ok);
    const auto r = gradgradcheck(f, {x});
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.message, Contains("d vjp(input 0 [") && Contains("/ d input 0 ["));
  }
  SECTION("cotangent treated as a constant") {
    const auto f = [](const std::vector<Var>& in) { return square_constant_cotangent(in[0]); };
    CHECK(gradcheck(f, {x}).ok);
    const auto r = gradgradcheck(f, {x});
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.message, Contains("/ d cotangent ["));
  }
}

TEST_CASE("gradcheck catches a forward that is wrong for strided inputs", "[autograd][gradcheck]") {
  const Tensor base = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto f = [](const std::vector<Var>& in) { return triple_ignoring_strides(in[0]); };
  CHECK(gradcheck(f, {base}).ok);
  const auto r = gradcheck(f, {base.t()});
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.message, Contains("differs between the given layout and a contiguous copy"));
}
