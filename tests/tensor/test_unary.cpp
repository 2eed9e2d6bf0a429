// Unary ops against naive reference loops, in both float dtypes and every input layout.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "tensor/ops.hpp"
#include "tests/support/op_cases.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/thread_count.hpp"

using namespace theta;

namespace {

const std::vector<Shape> kShapes = {{}, {0}, {1}, {7}, {3, 5}, {2, 3, 4}, {2, 0, 3}, {4, 1, 33}};

}  // namespace

TEST_CASE("unary ops match the naive loop in every layout", "[tensor][unary]") {
  Rng rng(11);
  for (const auto& c : ref::unary_cases())
    for (DType dtype : {DType::f32, DType::f64})
      for (const Shape& shape : kShapes)
        for (ref::Layout layout : ref::kLayouts) {
          INFO(c.name << " " << ref::dtype_label(dtype) << " " << ref::str(shape) << " "
                      << ref::layout_name(layout));
          const Tensor x = ref::make_input(shape, layout, dtype, rng, c.domain);
          const Tensor y = c.op(x);
          REQUIRE(y.shape() == shape);
          REQUIRE(y.dtype() == dtype);
          // Contiguous, or laid out like a dense input (Note [Output layout]).
          CHECK((y.is_contiguous() || (x.is_dense() && y.strides() == x.strides())));
          CHECK(y.storage() != x.storage());
          std::vector<double> want = ref::read(x);
          for (auto& v : want) v = c.want(v);
          ref::check_close(ref::read(y), want, ref::tol_for(dtype));
        }
}

TEST_CASE("unary ops leave their input untouched", "[tensor][unary]") {
  Rng rng(3);
  for (const auto& c : ref::unary_cases()) {
    INFO(c.name);
    const Tensor x = ref::make_input({4, 9}, ref::Layout::sliced, DType::f64, rng, c.domain);
    const auto before = ref::read(x);
    (void)c.op(x);
    ref::check_equal(ref::read(x), before);
  }
}

TEST_CASE("pow with integral exponents is exact for negative bases", "[tensor][unary][pow]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor x = tensor({-3.0, -2.0, -1.5, -1.0, -0.5, 0.5, 2.0}, {}, dtype);
    const auto xs = ref::read(x);
    for (double p : {2.0, 3.0, 4.0, 5.0, -1.0, -2.0, -3.0}) {
      INFO("p = " << p << " " << ref::dtype_label(dtype));
      std::vector<double> want;
      for (double v : xs) {
        // Repeated multiplication in double is exact for these small dyadic values.
        double r = 1.0;
        for (int i = 0; i < std::abs(static_cast<int>(p)); ++i) r *= v;
        want.push_back(p < 0 ? 1.0 / r : r);
      }
      for (auto& w : want) w = ref::round_to(w, dtype);
      ref::check_equal(ref::read(pow(x, p)), want);
    }
  }
}

TEST_CASE("pow with a non-integral exponent gives NaN for negative bases", "[tensor][unary][pow]") {
  for (DType dtype : {DType::f32, DType::f64})
    for (double p : {0.5, 1.7, -0.3}) {
      INFO("p = " << p);
      const auto y = ref::read(pow(tensor({-2.0, -0.25}, {}, dtype), p));
      CHECK(std::isnan(y[0]));
      CHECK(std::isnan(y[1]));
    }
}

TEST_CASE("relu, clamp and sign propagate NaN", "[tensor][unary][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::f32, DType::f64})
    for (std::int64_t n : {1, 5, 17, 40}) {
      INFO(ref::dtype_label(dtype) << " n=" << n);
      std::vector<double> v(static_cast<std::size_t>(n), -1.0);
      v.back() = nan;
      v.front() = nan;
      const Tensor x = from_vector(v, dtype);
      for (const Tensor& y : {relu(x), clamp(x, -0.5, 0.5), sign(x), abs(x)}) {
        const auto got = ref::read(y);
        CHECK(std::isnan(got.front()));
        CHECK(std::isnan(got.back()));
      }
    }
}

TEST_CASE("exp, expm1, tanh, sigmoid and erf saturate at huge and infinite arguments", "[tensor][unary]") {
  // The exp-based kernels see arguments far past their saturation points (Note [Exponent range]);
  // the expected values are the functions' limits, NaN stays NaN.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> args = {4.9e262, -4.9e262, 1e19, -1e19, 800.0, -800.0, inf, -inf, nan};
  for (DType dtype : {DType::f32, DType::f64})
    for (std::size_t repeat : {std::size_t{1}, std::size_t{7}}) {  // scalar tails and full SIMD lanes
      INFO(ref::dtype_label(dtype) << " x" << repeat);
      std::vector<double> v;
      for (std::size_t r = 0; r < repeat; ++r) v.insert(v.end(), args.begin(), args.end());
      const Tensor x = from_vector(v, dtype);
      const auto e = ref::read(exp(x)), m = ref::read(expm1(x)), t = ref::read(tanh(x)),
                 s = ref::read(sigmoid(x)), f = ref::read(erf(x));
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double a = v[i];
        if (std::isnan(a)) {
          CHECK((std::isnan(e[i]) && std::isnan(m[i]) && std::isnan(t[i]) && std::isnan(s[i]) && std::isnan(f[i])));
          continue;
        }
        const bool up = a > 0;
        CHECK(e[i] == (up ? inf : 0.0));
        CHECK(m[i] == (up ? inf : -1.0));
        CHECK(t[i] == (up ? 1.0 : -1.0));
        CHECK(s[i] == (up ? 1.0 : 0.0));
        CHECK(f[i] == (up ? 1.0 : -1.0));
      }
    }
}

TEST_CASE("all_finite finds a single NaN or infinity anywhere, in any layout", "[tensor][unary]") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const double tiny = std::numeric_limits<double>::denorm_min(), huge = std::numeric_limits<double>::max();
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    CHECK(all_finite(zeros({0}, dtype)));
    const Tensor clean = from_vector({1.0, -2.0, tiny, -tiny, 0.0, -0.0, 3e38, -3e38}, dtype);
    CHECK(all_finite(clean));
    // 300000 elements make several blocks of the parallel scan, the last one partial; on two
    // threads the blocks are shared out.
    for (const int threads : {1, 2}) {
      const test::ThreadCount thread_count(threads);
      CHECK(all_finite(ones({300000}, dtype)));
      for (std::int64_t n : {1, 7, 64, 1001, 300000})
        for (double bad : {nan, inf, -inf})
          for (std::int64_t at : {std::int64_t{0}, n / 2, n - 1, std::min<std::int64_t>(n - 1, 16384)}) {
            INFO(threads << " thread(s), n " << n << ", bad at " << at);
            Tensor t = ones({n}, dtype);
            t.select(0, at).fill_(bad);
            CHECK_FALSE(all_finite(t));
          }
    }
    // A transposed view with one bad element, and a slice that excludes it.
    Tensor m = ones({5, 6}, dtype);
    m.select(0, 4).select(0, 5).fill_(nan);
    CHECK_FALSE(all_finite(m.t()));
    CHECK(all_finite(m.slice(0, 0, 4)));
  }
  CHECK_FALSE(all_finite(from_vector({huge, huge * 2})));  // overflow to inf in float64
  CHECK(all_finite(from_vector({1e300}, DType::f64)));
  CHECK_FALSE(all_finite(from_vector({1e300}, DType::f32)));  // 1e300 rounds to inf in float32
  CHECK(all_finite(arange(0, 5, 1, DType::i64)));
}

TEST_CASE("clamp bounds: lo == hi pins every value, lo > hi throws", "[tensor][unary][clamp]") {
  const Tensor x = tensor({-5.0, 0.25, 9.0});
  CHECK(ref::read(clamp(x, 1.5, 1.5)) == std::vector<double>{1.5, 1.5, 1.5});
  CHECK_THROWS_AS(clamp(x, 1.0, 0.0), std::invalid_argument);
}

TEST_CASE("math ops reject int64 tensors", "[tensor][unary][dtype]") {
  const Tensor i = from_indices({1, 2, 3});
  CHECK_THROWS_AS(exp(i), DTypeError);
  CHECK_THROWS_AS(sqrt(i), DTypeError);
  CHECK_THROWS_AS(pow(i, 2.0), DTypeError);
  CHECK_THROWS_AS(clamp(i, 0.0, 1.0), DTypeError);
  // neg is defined for int64 (by subtraction, exactly).
  CHECK(ref::read_i64(neg(from_indices({5, -7, (std::int64_t{1} << 62) + 1}))) ==
        std::vector<std::int64_t>{-5, 7, -((std::int64_t{1} << 62) + 1)});
}
