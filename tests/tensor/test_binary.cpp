// Broadcasting binary ops, comparisons and where against naive reference loops.

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "tensor/ops.hpp"
#include "tests/support/op_cases.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"

using namespace theta;

namespace {

struct ShapePair {
  Shape a, b;
};

const std::vector<ShapePair> kShapePairs = {
    {{3, 4}, {3, 4}}, {{3, 1, 5}, {4, 1}}, {{}, {2, 3}}, {{2, 3}, {}}, {{5}, {2, 3, 5}},    {{2, 1}, {1, 70}},
    {{0, 3}, {1, 3}}, {{2, 0}, {2, 1}},    {{}, {}},     {{1}, {6}},   {{4, 1, 1}, {3, 2}},
};

}  // namespace

TEST_CASE("binary ops broadcast like NumPy in every layout", "[tensor][binary]") {
  Rng rng(21);
  for (const auto& c : ref::binary_cases())
    for (DType dtype : {DType::f32, DType::f64})
      for (const auto& [sa, sb] : kShapePairs)
        for (ref::Layout la : ref::kLayouts)
          for (ref::Layout lb : ref::kLayouts) {
            INFO(c.name << " " << ref::dtype_label(dtype) << " " << ref::str(sa) << " "
                        << ref::layout_name(la) << " with " << ref::str(sb) << " " << ref::layout_name(lb));
            const Tensor a = ref::make_input(sa, la, dtype, rng, c.a_domain);
            const Tensor b = ref::make_input(sb, lb, dtype, rng, c.b_domain);
            const Tensor y = c.op(a, b);
            ref::Dense want = ref::binary(ref::dense(a), ref::dense(b), c.want);
            REQUIRE(y.shape() == want.shape);
            REQUIRE(y.dtype() == dtype);
            // Contiguous, or laid out like an operand of the output's shape (Note [Output layout]).
            CHECK((y.is_contiguous() || (y.is_dense() && ((a.shape() == y.shape() && y.strides() == a.strides()) ||
                                                          (b.shape() == y.shape() && y.strides() == b.strides())))));
            CHECK(y.storage() != a.storage());
            CHECK(y.storage() != b.storage());
            for (auto& v : want.values) v = ref::round_to(v, dtype);
            if (c.exact)
              ref::check_equal(ref::read(y), want.values);
            else
              ref::check_close(ref::read(y), want.values, ref::tol_for(dtype));
          }
}

TEST_CASE("binary ops with a double operand take the tensor's dtype", "[tensor][binary]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    const Tensor x = tensor({1.0, 2.0, 4.0}, {}, dtype);
    CHECK((x + 1.0).dtype() == dtype);
    CHECK(ref::read(x + 1.0) == std::vector<double>{2.0, 3.0, 5.0});
    CHECK(ref::read(10.0 - x) == std::vector<double>{9.0, 8.0, 6.0});
    CHECK(ref::read(x * 3.0) == std::vector<double>{3.0, 6.0, 12.0});
    CHECK(ref::read(2.0 * x) == std::vector<double>{2.0, 4.0, 8.0});
  }
  CHECK(ref::read(tensor({1.0, 2.0, 4.0}) / 4.0) == std::vector<double>{0.25, 0.5, 1.0});
  CHECK(ref::read(8.0 / tensor({1.0, 2.0, 4.0})) == std::vector<double>{8.0, 4.0, 2.0});
}

TEST_CASE("a double operand gives exactly the result of a 0-d tensor operand", "[tensor][binary]") {
  // The scalar fast path must agree bit for bit with broadcasting a 0-d tensor, on every layout.
  Rng rng(4);
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor base = rng.normal({7, 9}, 0, 1, dtype);
    for (const Tensor& x : {base, base.t(), base.slice(1, 0, 9, 2)}) {
      const double s = -1.75;  // exact in float, so the reference below rounds once
      const Tensor st = scalar_tensor(s, dtype);
      INFO(ref::dtype_label(dtype) << " " << shape_str(x.shape()) << (x.is_contiguous() ? " contiguous" : " strided"));
      CHECK(ref::read(x + s) == ref::read(add(x, st)));
      CHECK(ref::read(x - s) == ref::read(sub(x, st)));
      CHECK(ref::read(x * s) == ref::read(mul(x, st)));
      CHECK(ref::read(x / s) == ref::read(div(x, st)));
      CHECK(ref::read(s + x) == ref::read(add(st, x)));
      CHECK(ref::read(s - x) == ref::read(sub(st, x)));
      CHECK(ref::read(s * x) == ref::read(mul(st, x)));
      CHECK(ref::read(s / x) == ref::read(div(st, x)));
      const std::vector<double> xv = ref::read(x);
      const std::vector<double> got = ref::read(s - x);
      for (std::size_t i = 0; i < xv.size(); ++i) CHECK(got[i] == ref::round_to(s - xv[i], dtype));
    }
  }
}

TEST_CASE("maximum and minimum propagate NaN from either side", "[tensor][binary][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::f32, DType::f64})
    for (std::int64_t n : {1, 3, 8, 16, 21}) {
      INFO(ref::dtype_label(dtype) << " n=" << n);
      std::vector<double> a(static_cast<std::size_t>(n), 1.0), b(static_cast<std::size_t>(n), 2.0);
      a.front() = nan;
      b.back() = nan;
      const Tensor ta = from_vector(a, dtype), tb = from_vector(b, dtype);
      for (const Tensor& y : {maximum(ta, tb), minimum(ta, tb), maximum(tb, ta), minimum(tb, ta)}) {
        const auto got = ref::read(y);
        CHECK(std::isnan(got.front()));
        CHECK(std::isnan(got.back()));
        for (std::size_t i = 1; i + 1 < got.size(); ++i) CHECK_FALSE(std::isnan(got[i]));
      }
      // Against a broadcast NaN scalar.
      for (const Tensor& y : {maximum(ta, full({}, nan, dtype)), minimum(full({}, nan, dtype), tb)})
        for (double v : ref::read(y)) CHECK(std::isnan(v));
    }
}

TEST_CASE("comparisons with NaN: only ne is true", "[tensor][binary][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor a = tensor({nan, nan, 1.0});
  const Tensor b = tensor({nan, 1.0, nan});
  CHECK(ref::read(eq(a, b)) == std::vector<double>{0, 0, 0});
  CHECK(ref::read(ne(a, b)) == std::vector<double>{1, 1, 1});
  CHECK(ref::read(lt(a, b)) == std::vector<double>{0, 0, 0});
  CHECK(ref::read(ge(a, b)) == std::vector<double>{0, 0, 0});
}

TEST_CASE("where selects with a broadcast mask of any dtype", "[tensor][where]") {
  Rng rng(31);
  const ref::Domain mask_domain{0.0, 2.0, false, true};  // {0, 1}
  const std::vector<std::vector<Shape>> shapes = {
      {{3, 4}, {3, 4}, {3, 4}}, {{3, 1}, {1, 4}, {4}}, {{}, {2, 3}, {3}},
      {{2, 3}, {}, {}},         {{0, 2}, {2}, {1}},    {{5, 1, 2}, {1, 3, 1}, {5, 3, 2}}};
  for (DType dtype : {DType::f32, DType::f64})
    for (DType mask_dtype : {DType::f32, DType::f64, DType::i64})
      for (const auto& s : shapes)
        for (ref::Layout layout : ref::kLayouts) {
          INFO(ref::dtype_label(dtype)
               << " mask " << ref::dtype_label(mask_dtype) << " " << ref::str(s[0]) << " " << ref::str(s[1])
               << " " << ref::str(s[2]) << " " << ref::layout_name(layout));
          const Tensor m = ref::make_input(s[0], layout, mask_dtype, rng, mask_domain);
          const Tensor a = ref::make_input(s[1], layout, dtype, rng);
          const Tensor b = ref::make_input(s[2], ref::Layout::sliced, dtype, rng);
          const Tensor y = where(m, a, b);
          // where(m, a, b) = m ? a : b, with m, a and b broadcast together: first each operand
          // is broadcast to the common shape, then the pick is made elementwise.
          const ref::Dense ab = ref::binary(ref::dense(a), ref::dense(b), [](double p, double) { return p; });
          const ref::Dense mb = ref::binary(ref::dense(m), ab, [](double mv, double) { return mv; });
          const ref::Dense av = ref::binary(mb, ref::dense(a), [](double, double v) { return v; });
          const ref::Dense bv = ref::binary(mb, ref::dense(b), [](double, double v) { return v; });
          ref::Dense want{mb.shape, {}};
          for (std::size_t i = 0; i < mb.values.size(); ++i)
            want.values.push_back(mb.values[i] != 0 ? av.values[i] : bv.values[i]);
          REQUIRE(y.shape() == want.shape);
          CHECK(y.dtype() == dtype);
          ref::check_equal(ref::read(y), want.values);
        }
}

TEST_CASE("where treats a NaN mask entry as true and keeps NaN values", "[tensor][where][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto y = ref::read(where(tensor({nan, 0.0, 1.0}), tensor({1.0, 2.0, nan}), tensor({4.0, 5.0, 6.0})));
  CHECK(y[0] == 1.0);
  CHECK(y[1] == 5.0);
  CHECK(std::isnan(y[2]));
}

TEST_CASE("where tests the mask for != 0 in the mask's own dtype", "[tensor][where][dtype]") {
  // 1e-50 is not 0 in float64 but would round to 0 in float32.
  const Tensor mask = tensor({1e-50, 0.0, -1e-300});
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor y = where(mask, full({3}, 1.0, dtype), full({3}, 2.0, dtype));
    CHECK(ref::read(y) == std::vector<double>{1.0, 2.0, 1.0});
  }
  const std::int64_t big = std::int64_t{1} << 60;
  CHECK(ref::read(where(from_indices({big, 0, -1}), tensor({1, 1, 1}, {}, DType::f32),
                        tensor({2, 2, 2}, {}, DType::f32))) == std::vector<double>{1.0, 2.0, 1.0});
  CHECK(ref::read_i64(where(mask, from_indices({1, 1, 1}), from_indices({2, 2, 2}))) ==
        std::vector<std::int64_t>{1, 2, 1});
}

TEST_CASE("binary ops on int64", "[tensor][binary][int64]") {
  const std::int64_t big = (std::int64_t{1} << 60) + 3;  // not representable in a double
  const Tensor a = from_indices({big, -4, 7, 0, 2}).reshape({5, 1});
  const Tensor b = from_indices({1, 7, -4});
  const auto av = ref::read_i64(a), bv = ref::read_i64(b);
  auto check = [&](const Tensor& y, auto f) {
    REQUIRE(y.dtype() == DType::i64);
    REQUIRE(y.shape() == Shape{5, 3});
    const auto got = ref::read_i64(y);
    for (std::size_t i = 0; i < 5; ++i)
      for (std::size_t j = 0; j < 3; ++j) CHECK(got[i * 3 + j] == f(av[i], bv[j]));
  };
  check(add(a, b), [](std::int64_t p, std::int64_t q) { return p + q; });
  check(sub(a, b), [](std::int64_t p, std::int64_t q) { return p - q; });
  check(mul(a, b), [](std::int64_t p, std::int64_t q) { return p * q; });
  check(maximum(a, b), [](std::int64_t p, std::int64_t q) { return p > q ? p : q; });
  check(minimum(a, b), [](std::int64_t p, std::int64_t q) { return p < q ? p : q; });
  check(eq(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p == q}; });
  check(ne(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p != q}; });
  check(lt(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p < q}; });
  check(le(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p <= q}; });
  check(gt(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p > q}; });
  check(ge(a, b), [](std::int64_t p, std::int64_t q) { return std::int64_t{p >= q}; });
  check(relu_grad(a, b), [](std::int64_t p, std::int64_t q) { return q > 0 ? p : std::int64_t{0}; });
  // Transposed and sliced int64 views.
  const Tensor m = from_indices({1, 2, 3, 4, 5, 6}).reshape({2, 3});
  CHECK(ref::read_i64(add(m.t(), m.t())) == std::vector<std::int64_t>{2, 8, 4, 10, 6, 12});
  CHECK(ref::read_i64(mul(m.slice(1, 0, 3, 2), from_indices({10}))) ==
        std::vector<std::int64_t>{10, 30, 40, 60});
  CHECK_THROWS_AS(div(a, b), DTypeError);
  CHECK_THROWS_AS(pow(a, b), DTypeError);
}

TEST_CASE("where on int64 operands", "[tensor][where][int64]") {
  const std::int64_t big = (std::int64_t{1} << 55) + 1;
  const Tensor y = where(tensor({1.0, 0.0, 1.0}), from_indices({big, 2, 3}), from_indices({-1}));
  CHECK(ref::read_i64(y) == std::vector<std::int64_t>{big, -1, 3});
  const Tensor mask = from_indices({0, 5}).reshape({2, 1});
  const Tensor z = where(mask, from_indices({1, 2, 3}), from_indices({7, 8, 9}).unsqueeze(0));
  CHECK(z.shape() == Shape{2, 3});
  CHECK(ref::read_i64(z) == std::vector<std::int64_t>{7, 8, 9, 1, 2, 3});
}

TEST_CASE("relu_grad passes grad where x > 0 only, whatever grad holds elsewhere", "[tensor][binary][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor grad = tensor({nan, inf, 2.0, nan, 5.0}, {5}, dtype);
    const Tensor x = tensor({-1.0, 0.0, nan, 3.0, 1e-30}, {5}, dtype);
    const auto got = ref::read(relu_grad(grad, x));
    CHECK(got[0] == 0.0);
    CHECK(got[1] == 0.0);  // relu'(0) = 0
    CHECK(got[2] == 0.0);  // a NaN input is not > 0
    CHECK(std::isnan(got[3]));
    CHECK(got[4] == 5.0);
  }
}
