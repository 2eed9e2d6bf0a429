// Forward values of primitives that are not a single tensor op: the op registry gradchecks every
// primitive against finite differences of its own forward, which cannot see a wrong value.

#include <catch2/catch.hpp>

#include "autograd/transforms.hpp"
#include "autograd/ops.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using namespace theta::autograd;

namespace {
// y[r, o] = sum_i x[r, i] w[o, i] over the flattened leading axes of x.
std::vector<double> linear_reference(const Tensor& x, const Tensor& w) {
  const std::vector<double> xv = ref::read(x), wv = ref::read(w);
  const auto out = static_cast<std::size_t>(w.size(0)), in = static_cast<std::size_t>(w.size(1));
  const std::size_t rows = xv.size() / in;
  std::vector<double> y(rows * out, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t o = 0; o < out; ++o)
      for (std::size_t i = 0; i < in; ++i) y[r * out + o] += xv[r * in + i] * wv[o * in + i];
  return y;
}
}  // namespace

TEST_CASE("linear matches a reference loop and matmul with the transposed weight", "[autograd][linear]") {
  Rng rng(5);
  const Var w(rng.normal({4, 3}), true);
  for (const Shape& shape : {Shape{6, 3}, Shape{2, 5, 3}, Shape{3}}) {
    INFO(shape_str(shape));
    const Var x(rng.normal(shape), true);
    const Var y = linear(x, w);
    Shape expected_shape = shape;
    expected_shape.back() = 4;
    CHECK(y.shape() == expected_shape);
    CHECK_THAT(ref::read(y.value()), Catch::Matchers::Approx(linear_reference(x.value(), w.value())).margin(1e-12));

    const Tensor probe = rng.normal(y.shape());
    const auto via_linear = grad({y}, {x, w}, {Var(probe)});
    const auto via_matmul = grad({matmul(x, t(w))}, {x, w}, {Var(probe)});
    CHECK_THAT(ref::read(via_linear[0].value()), Catch::Matchers::Approx(ref::read(via_matmul[0].value())).margin(1e-12));
    CHECK_THAT(ref::read(via_linear[1].value()), Catch::Matchers::Approx(ref::read(via_matmul[1].value())).margin(1e-12));
    // The weight's gradient has the weight's own row-major layout (no gather in optimizer updates).
    CHECK(via_linear[1].value().is_contiguous());
  }
}

TEST_CASE("linear rejects mismatched shapes with both shapes in the message", "[autograd][linear]") {
  const Var w(zeros({4, 3}));
  CHECK_THROWS_WITH(linear(Var(zeros({2, 5})), w), Catch::Contains("[2, 5]") && Catch::Contains("[4, 3]"));
  CHECK_THROWS_AS(linear(Var(zeros({2, 3})), Var(zeros({3}))), ShapeError);
  CHECK_THROWS_AS(linear(Var(zeros({})), w), ShapeError);
}

TEST_CASE("Var-double operators give the reference values and constant-factor gradients", "[autograd][scalar]") {
  Rng rng(6);
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor xv = rng.normal({4, 5}, 0, 1, dtype);
    const Var x(xv, true);
    // c = -0.5: x + c, x - c, x * c and x / c are exact in double, so rounding the double result
    // to the dtype is the correctly rounded value the dtype's own arithmetic must give.
    const double c = -0.5;
    const std::vector<double> xs = ref::read(xv);
    const auto want = [&](auto f) {
      std::vector<double> out;
      for (double v : xs) out.push_back(ref::round_to(f(v), dtype));
      return out;
    };
    CHECK(ref::read((x + c).value()) == want([&](double v) { return v + c; }));
    CHECK(ref::read((c + x).value()) == want([&](double v) { return c + v; }));
    CHECK(ref::read((x - c).value()) == want([&](double v) { return v - c; }));
    CHECK(ref::read((c - x).value()) == want([&](double v) { return c - v; }));
    CHECK(ref::read((x * c).value()) == want([&](double v) { return v * c; }));
    CHECK(ref::read((c * x).value()) == want([&](double v) { return c * v; }));
    CHECK(ref::read((x / c).value()) == want([&](double v) { return v / c; }));
    // c / x is not exact in double: compare within the dtype's rounding.
    const double eps = dtype == DType::f32 ? 1e-6 : 1e-15;
    CHECK_THAT(ref::read((c / x).value()), Catch::Matchers::Approx(want([&](double v) { return c / v; })).epsilon(eps));
    // d/dx sum(3x + x/c - 2 + x) = 3 + 1/c + 1 = 2 everywhere.
    const Var g = grad(sum(x * 3.0 + x / c - 2.0 + x), x);
    CHECK(ref::read(g.value()) == std::vector<double>(20, 2.0));
  }
}
