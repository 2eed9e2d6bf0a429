// Reductions against naive reference loops: every axis set, keepdim both ways, every layout.

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"

using namespace theta;

namespace {

using Axes = std::vector<std::int64_t>;

struct ShapeAxes {
  Shape shape;
  std::vector<Axes> axes;
};

// Axis sets per shape: single, several, negative and all axes ({} means all).
const std::vector<ShapeAxes> kCases = {
    {{}, {{}}},
    {{6}, {{}, {0}, {-1}}},
    {{5, 7}, {{}, {0}, {1}, {-1}, {-2}, {0, 1}, {1, -2}}},
    {{2, 3, 4}, {{}, {0}, {1}, {2}, {-1}, {0, 2}, {-1, -3}, {1, 2}, {0, 1}, {2, 0, 1}}},
    {{3, 1, 5, 2}, {{1}, {0, 3}, {-2, 1}, {3}}},
    {{70, 3}, {{0}, {1}}},
};

const double kInf = std::numeric_limits<double>::infinity();

// Floating reductions with their reference folds. `scale` gives the magnitude a rounding error
// is measured against (the sum of |x| for sum-like folds, the result itself otherwise).
struct ReduceCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Axes&, bool)> op;
  std::function<double(const std::vector<double>&)> want;
  std::function<double(const std::vector<double>&)> scale;
  bool exact;
  std::int64_t min_group = 1;  // fewest elements per reduced group the op is defined for
};

std::int64_t group_size(const Shape& shape, const Axes& axes) {
  const auto mask = ref::axis_mask(axes, shape.size());
  std::int64_t n = 1;
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (mask[d]) n *= shape[d];
  return n;
}

double mean_of(const std::vector<double>& v) { return ref::sum_of(v) / static_cast<double>(v.size()); }

double var_of(const std::vector<double>& v, int correction) {
  long double m = 0;
  for (double x : v) m += x;
  m /= static_cast<long double>(v.size());
  long double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return static_cast<double>(s / static_cast<long double>(static_cast<int>(v.size()) - correction));
}

double logsumexp_of(const std::vector<double>& v) {
  const double m = ref::max_of(v);
  if (m == -kInf) return -kInf;
  long double s = 0;
  for (double x : v) s += std::exp(static_cast<long double>(x) - m);
  return m + static_cast<double>(std::log(s));
}

std::vector<ReduceCase> reduce_cases() {
  auto abs_sum = [](const std::vector<double>& v) { return ref::abs_sum_of(v); };
  auto abs_mean = [](const std::vector<double>& v) {
    return ref::abs_sum_of(v) / static_cast<double>(v.size());
  };
  auto self = [](auto f) { return [f](const std::vector<double>& v) { return std::abs(f(v)); }; };
  auto var0 = [](const std::vector<double>& v) { return var_of(v, 0); };
  auto var1 = [](const std::vector<double>& v) { return var_of(v, 1); };
  auto norm2 = [](const std::vector<double>& v) {
    long double s = 0;
    for (double x : v) s += static_cast<long double>(x) * x;
    return static_cast<double>(std::sqrt(s));
  };
  auto norm_inf = [](const std::vector<double>& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::abs(x));
    return m;
  };
  return {
      {"sum", [](const Tensor& x, const Axes& a, bool k) { return sum(x, a, k); }, ref::sum_of, abs_sum,
       false},
      {"mean", [](const Tensor& x, const Axes& a, bool k) { return mean(x, a, k); }, mean_of, abs_mean,
       false},
      {"max", [](const Tensor& x, const Axes& a, bool k) { return max(x, a, k); }, ref::max_of,
       self(ref::max_of), true},
      {"min", [](const Tensor& x, const Axes& a, bool k) { return min(x, a, k); }, ref::min_of,
       self(ref::min_of), true},
      {"logsumexp", [](const Tensor& x, const Axes& a, bool k) { return logsumexp(x, a, k); }, logsumexp_of,
       [](const std::vector<double>& v) { return std::max(1.0, std::abs(logsumexp_of(v))); }, false},
      {"var correction 0", [](const Tensor& x, const Axes& a, bool k) { return var(x, a, 0, k); }, var0,
       self(var0), false},
      {"norm 1", [](const Tensor& x, const Axes& a, bool k) { return norm(x, 1.0, a, k); }, abs_sum, abs_sum,
       false},
      {"norm 2", [](const Tensor& x, const Axes& a, bool k) { return norm(x, 2.0, a, k); }, norm2,
       self(norm2), false},
      {"norm inf", [](const Tensor& x, const Axes& a, bool k) { return norm(x, kInf, a, k); }, norm_inf,
       self(norm_inf), true},
      {"var correction 1", [](const Tensor& x, const Axes& a, bool k) { return var(x, a, 1, k); }, var1,
       self(var1), false, 2},
  };
}

// Sums are compared with a tolerance per element of rtol * (sum of |x|): float32 accumulates
// in float32, so allow a few hundred ulps for these short rows.
ref::Tol reduce_tol(DType dtype) {
  return dtype == DType::f32 ? ref::Tol{1e-5, 1e-7} : ref::Tol{1e-13, 1e-15};
}

}  // namespace

TEST_CASE("reductions match the naive loop over every axis set and layout", "[tensor][reduce]") {
  Rng rng(41);
  for (const auto& c : reduce_cases())
    for (DType dtype : {DType::f32, DType::f64})
      for (const auto& [shape, axis_sets] : kCases)
        for (const Axes& axes : axis_sets)
          for (bool keepdim : {false, true})
            for (ref::Layout layout : ref::kLayouts) {
              if (c.min_group > group_size(shape, axes)) continue;
              INFO(c.name << " " << ref::dtype_label(dtype) << " " << ref::str(shape) << " axes "
                          << ref::str(axes) << (keepdim ? " keepdim " : " ") << ref::layout_name(layout));
              const Tensor x = ref::make_input(shape, layout, dtype, rng);
              const Tensor y = c.op(x, axes, keepdim);
              const ref::Dense xd = ref::dense(x);
              const ref::Dense want = ref::reduce(xd, axes, keepdim, c.want);
              REQUIRE(y.shape() == want.shape);
              REQUIRE(y.dtype() == dtype);
              if (c.exact) {
                ref::check_equal(ref::read(y), want.values);
              } else {
                const ref::Dense scale = ref::reduce(xd, axes, keepdim, c.scale);
                ref::check_close_scaled(ref::read(y), want.values, scale.values, reduce_tol(dtype));
              }
            }
}

TEST_CASE("reductions over empty tensors", "[tensor][reduce][empty]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor e = zeros({0, 3}, dtype);
    // The empty sum is 0; reducing the non-empty axis of an empty tensor gives an empty tensor.
    CHECK(sum(e).shape() == Shape{});
    CHECK(sum(e).item() == 0.0);
    CHECK(sum(e, {0}).shape() == Shape{3});
    CHECK(ref::read(sum(e, {0})) == std::vector<double>{0, 0, 0});
    CHECK(sum(e, {0}, true).shape() == Shape{1, 3});
    CHECK(sum(e, {1}).shape() == Shape{0});
    CHECK(max(e, {1}).shape() == Shape{0});
    CHECK(std::isnan(mean(e).item()));
    CHECK_THROWS_AS(max(e), ShapeError);
    CHECK_THROWS_AS(min(e, {0}), ShapeError);
    CHECK_THROWS_AS(argmax(e, 0), ShapeError);
    CHECK_THROWS_AS(var(zeros({1, 3}, dtype), {0}, 1), ShapeError);
  }
}

TEST_CASE("argmax returns the first maximum", "[tensor][reduce][argmax]") {
  Rng rng(43);
  const ref::Domain ties{-2.0, 2.0, false, true};  // small integers: many tied maxima
  const std::vector<std::pair<Shape, Axes>> cases = {
      {{9}, {0, -1}}, {{4, 6}, {0, 1, -1, -2}}, {{2, 3, 5}, {0, 1, 2, -1}}, {{3, 0}, {0}}};
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (const auto& [shape, axes] : cases)
      for (std::int64_t axis : axes)
        for (bool keepdim : {false, true})
          for (ref::Layout layout : ref::kLayouts) {
            INFO(ref::dtype_label(dtype) << " " << ref::str(shape) << " axis " << axis
                                         << (keepdim ? " keepdim " : " ") << ref::layout_name(layout));
            const Tensor x = ref::make_input(shape, layout, dtype, rng, ties);
            const Tensor y = argmax(x, axis, keepdim);
            const ref::Groups g = ref::group(ref::dense(x), {axis}, keepdim);
            REQUIRE(y.shape() == g.out_shape);
            REQUIRE(y.dtype() == DType::i64);
            std::vector<std::int64_t> want;
            for (const auto& m : g.members) {
              std::size_t best = 0;
              for (std::size_t i = 1; i < m.size(); ++i)
                if (m[i] > m[best]) best = i;
              want.push_back(static_cast<std::int64_t>(best));
            }
            CHECK(ref::read_i64(y) == want);
          }
}

TEST_CASE("argmax is exact for int64 values beyond 2^53", "[tensor][reduce][argmax][int64]") {
  // 2^53 and 2^53 + 1 are distinct int64 values that round to the same double.
  const std::int64_t p = std::int64_t{1} << 53;
  CHECK(argmax(from_indices({p, p + 1, p}), 0).item<std::int64_t>() == 1);
  CHECK(ref::read_i64(argmax(from_indices({p, p + 1, -p - 1, -p}).reshape({2, 2}), 1)) ==
        std::vector<std::int64_t>{1, 1});
}

TEST_CASE("argmax treats NaN as the maximum", "[tensor][reduce][argmax][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(argmax(tensor({1.0, nan, 5.0, nan}), 0).item<std::int64_t>() == 1);
  CHECK(argmax(tensor({9.0, 1.0, nan}), 0).item<std::int64_t>() == 2);
}

TEST_CASE("max and min propagate NaN wherever it sits", "[tensor][reduce][nan]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::f32, DType::f64})
    for (std::int64_t n : {1, 7, 16, 33, 100})
      for (std::int64_t pos : {std::int64_t{0}, n / 2, n - 1}) {
        INFO(ref::dtype_label(dtype) << " n=" << n << " NaN at " << pos);
        std::vector<double> v(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<double>(i % 5);
        v[static_cast<std::size_t>(pos)] = nan;
        const Tensor x = from_vector(v, dtype);
        CHECK(std::isnan(max(x).item()));
        CHECK(std::isnan(min(x).item()));
        CHECK(std::isnan(norm(x, kInf).item()));
        // The same column reduced across rows (reduced axis leading) and along rows.
        const Tensor col = x.reshape({n, 1}).expand({n, 3}).contiguous();
        for (double r : ref::read(max(col, {0}))) CHECK(std::isnan(r));
        for (double r : ref::read(min(col, {0}))) CHECK(std::isnan(r));
        for (double r : ref::read(max(col.t().contiguous(), {1}))) CHECK(std::isnan(r));
      }
}

TEST_CASE("logsumexp is stable at large magnitudes and exact for -inf rows", "[tensor][reduce][logsumexp]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const ref::Tol tol = dtype == DType::f32 ? ref::Tol{1e-6, 0} : ref::Tol{1e-15, 0};
    // Rows: huge equal values, huge negative values, a mix, all -inf, -inf next to a finite value.
    const Tensor x = tensor({1e4, 1e4, 1e4,        //
                             -1e4, -1e4, -1e4,     //
                             1e4, -1e4, 0.0,       //
                             -kInf, -kInf, -kInf,  //
                             -kInf, 2.0, -kInf},
                            {5, 3}, dtype);
    const auto got = ref::read(logsumexp(x, {1}));
    CHECK(ref::close(got[0], 1e4 + std::log(3.0), tol));
    CHECK(ref::close(got[1], -1e4 + std::log(3.0), tol));
    CHECK(ref::close(got[2], 1e4, tol));
    CHECK(got[3] == -kInf);
    CHECK(ref::close(got[4], 2.0, tol));
    // All -inf over every axis, and a +inf entry.
    CHECK(logsumexp(full({2, 2}, -kInf, dtype)).item() == -kInf);
    CHECK(logsumexp(tensor({1.0, kInf}, {}, dtype)).item() == kInf);
    CHECK(logsumexp(full({2, 2}, -kInf, dtype), {0}, true).shape() == Shape{1, 2});
  }
}

TEST_CASE("var: correction 0 and 1 on a known sample", "[tensor][reduce][var]") {
  // Sample {2, 4, 4, 4, 5, 5, 7, 9}: mean 5, sum of squared deviations 32.
  const Tensor x = tensor({2, 4, 4, 4, 5, 5, 7, 9});
  CHECK(var(x).item() == 4.0);
  CHECK(var(x, {}, 1).item() == Approx(32.0 / 7.0).epsilon(1e-15));
  CHECK(var(x, {0}, 0, true).shape() == Shape{1});
  // Offset by 1e8: a one-pass formula would lose every digit in float64 here.
  CHECK(var(x + 1e8).item() == Approx(4.0).epsilon(1e-12));
}

TEST_CASE("sum_to reduces a broadcast back to its shape", "[tensor][reduce][sum_to]") {
  Rng rng(47);
  const Shape from = {2, 3, 4};
  const std::vector<Shape> targets = {{2, 3, 4}, {3, 4}, {1, 4}, {2, 1, 1}, {4},
                                      {},        {1},    {3, 1}, {1, 1, 1}, {2, 3, 1}};
  for (DType dtype : {DType::f32, DType::f64})
    for (const Shape& target : targets)
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " " << ref::str(target) << " " << ref::layout_name(layout));
        const Tensor x = ref::make_input(from, layout, dtype, rng);
        const Tensor y = sum_to(x, target);
        REQUIRE(y.shape() == target);
        const auto xs = ref::read(x);
        std::vector<double> want(static_cast<std::size_t>(ref::count(target)), 0.0), scale = want;
        for (std::int64_t i = 0; i < ref::count(from); ++i) {
          const auto t = static_cast<std::size_t>(ref::broadcast_source(i, from, target));
          want[t] += xs[static_cast<std::size_t>(i)];
          scale[t] += std::abs(xs[static_cast<std::size_t>(i)]);
        }
        ref::check_close_scaled(ref::read(y), want, scale, reduce_tol(dtype));
      }
  // Nothing to reduce: still a new contiguous tensor, like every op's result.
  const Tensor xt = tensor({1, 2, 3, 4, 5, 6}, {2, 3}).t();
  const Tensor same = sum_to(xt, {3, 2});
  CHECK(same.is_contiguous());
  CHECK(same.storage() != xt.storage());
  CHECK(ref::read(same) == ref::read(xt));
  CHECK_THROWS_AS(sum_to(zeros({2, 3}), {4}), ShapeError);
  CHECK_THROWS_AS(sum_to(zeros({3}), {2, 3}), ShapeError);
}

TEST_CASE("reductions on int64: sum, max, min exactly", "[tensor][reduce][int64]") {
  const std::int64_t big = std::int64_t{1} << 58;
  const Tensor x = from_indices({big + 1, 2, -3, big, 5, -(big + 7)}).reshape({2, 3});
  CHECK(sum(x).dtype() == DType::i64);
  CHECK(sum(x).item<std::int64_t>() == (big + 1) + 2 - 3 + big + 5 - (big + 7));
  CHECK(ref::read_i64(sum(x, {0})) == std::vector<std::int64_t>{2 * big + 1, 7, -(big + 10)});
  CHECK(ref::read_i64(sum(x, {1}, true)) == std::vector<std::int64_t>{big, 5 - 7});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(ref::read_i64(max(x, {1})) == std::vector<std::int64_t>{big + 1, big});
  CHECK(ref::read_i64(min(x, {0})) == std::vector<std::int64_t>{big, 2, -(big + 7)});
  CHECK(ref::read_i64(max(x.t(), {-1})) == std::vector<std::int64_t>{big + 1, 5, -3});
  CHECK(sum(zeros({0}, DType::i64)).item<std::int64_t>() == 0);
  CHECK_THROWS_AS(mean(x), DTypeError);
  CHECK_THROWS_AS(logsumexp(x), DTypeError);
}
