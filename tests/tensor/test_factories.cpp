// Factories: zeros, ones, full, scalar_tensor, arange, linspace, eye, from_vector, from_indices,
// tensor, to_vector.

#include <catch2/catch.hpp>

#include <cmath>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"

using namespace theta;

TEST_CASE("zeros, ones, full and scalar_tensor", "[tensor][factories]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor z = zeros({2, 3}, dtype);
    CHECK(z.dtype() == dtype);
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.is_contiguous());
    CHECK(z.offset() == 0);
    CHECK(ref::read(z) == std::vector<double>(6, 0.0));
    CHECK(ref::read(ones({4}, dtype)) == std::vector<double>(4, 1.0));
    CHECK(ref::read(full({3, 1}, -2.0, dtype)) == std::vector<double>(3, -2.0));
    CHECK(ref::read(full({}, 5.0, dtype)) == std::vector<double>{5.0});
    CHECK(full({}, 5.0, dtype).shape() == Shape{});
    CHECK(scalar_tensor(3.0, dtype).shape() == Shape{});
    CHECK(scalar_tensor(3.0, dtype).item() == 3.0);
    CHECK(zeros({0, 4}, dtype).numel() == 0);
    CHECK(zeros({}, dtype).numel() == 1);
  }
  CHECK(zeros({2}).dtype() == DType::f64);
  CHECK(full({}, 0.1, DType::f32).item<float>() == 0.1f);
  CHECK_THROWS_AS(zeros({2, -1}), ShapeError);
}

TEST_CASE("arange counts ceil((stop - start) / step) elements", "[tensor][factories][arange]") {
  struct Case {
    double start, stop, step;
  };
  for (const Case c : {Case{0, 5, 1}, Case{2, 9, 3}, Case{5, 0, -1}, Case{0, 1, 0.25}, Case{0, 1, 0.3},
                       Case{-1.5, 1.5, 0.5}, Case{3, 3, 1}, Case{3, 1, 1}, Case{0, 10, 20}})
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO(c.start << " " << c.stop << " " << c.step << " " << ref::dtype_label(dtype));
      std::vector<double> want;
      for (int i = 0;; ++i) {
        const double v = c.start + i * c.step;
        if (c.step > 0 ? v >= c.stop : v <= c.stop) break;
        want.push_back(ref::round_to(v, dtype));
      }
      const Tensor t = arange(c.start, c.stop, c.step, dtype);
      CHECK(t.shape() == Shape{static_cast<std::int64_t>(want.size())});
      ref::check_close(ref::read(t), want, ref::tol_for(dtype));
    }
  CHECK(ref::read_i64(arange(-2, 3, 1, DType::i64)) == std::vector<std::int64_t>{-2, -1, 0, 1, 2});
  CHECK_THROWS_AS(arange(0, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(arange(0, INFINITY, 1), std::invalid_argument);
}

TEST_CASE("linspace includes both ends exactly", "[tensor][factories][linspace]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor t = linspace(-1.0, 2.0, 7, dtype);
    REQUIRE(t.shape() == Shape{7});
    const auto v = ref::read(t);
    CHECK(v.front() == -1.0);
    CHECK(v.back() == 2.0);
    for (int i = 0; i < 7; ++i) CHECK(v[static_cast<std::size_t>(i)] == Approx(-1.0 + 0.5 * i).margin(1e-6));
    CHECK(ref::read(linspace(0.1, 0.7, 2, dtype)) ==
          std::vector<double>{ref::round_to(0.1, dtype), ref::round_to(0.7, dtype)});
    CHECK(ref::read(linspace(3.0, 9.0, 1, dtype)) == std::vector<double>{3.0});
    CHECK(linspace(3.0, 9.0, 0, dtype).shape() == Shape{0});
    // Decreasing ranges.
    CHECK(ref::read(linspace(1.0, 0.0, 5, dtype)) == std::vector<double>{1.0, 0.75, 0.5, 0.25, 0.0});
  }
  CHECK_THROWS_AS(linspace(0, 1, -1), std::invalid_argument);
}

TEST_CASE("eye is the identity", "[tensor][factories][eye]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (std::int64_t n : {0, 1, 4}) {
      const Tensor e = eye(n, dtype);
      REQUIRE(e.shape() == Shape{n, n});
      CHECK(e.dtype() == dtype);
      const auto v = ref::read(e);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          CHECK(v[static_cast<std::size_t>(i * n + j)] == (i == j ? 1.0 : 0.0));
    }
  CHECK_THROWS_AS(eye(-1), std::invalid_argument);
}

TEST_CASE("from_vector, from_indices, tensor and to_vector", "[tensor][factories]") {
  const std::vector<double> values = {1.5, -2.0, 3.25, 0.0, 7.0, -0.5};
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor t = from_vector(values, {2, 3}, dtype);
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.dtype() == dtype);
    CHECK(ref::read(t) == values);
    CHECK(from_vector(values, dtype).shape() == Shape{6});
    CHECK(to_vector(t) == values);
    CHECK(to_vector(t.t()) == std::vector<double>{1.5, 0.0, -2.0, 7.0, 3.25, -0.5});
  }
  CHECK(ref::read_i64(from_vector({-2.0, 3.0}, DType::i64)) == std::vector<std::int64_t>{-2, 3});
  CHECK_THROWS_AS(from_vector(values, {4, 2}), ShapeError);
  CHECK(from_vector({}, DType::f32).shape() == Shape{0});
  const std::int64_t big = (std::int64_t{1} << 62) + 5;
  const Tensor idx = from_indices({big, -1, 0});
  CHECK(idx.dtype() == DType::i64);
  CHECK(ref::read_i64(idx) == std::vector<std::int64_t>{big, -1, 0});
  CHECK(from_indices({}).shape() == Shape{0});
  CHECK(tensor({1, 2, 3, 4}, {2, 2}).shape() == Shape{2, 2});
  CHECK(tensor({1, 2, 3, 4}).shape() == Shape{4});
  CHECK(tensor({1, 2, 3, 4}, {2, 2}, DType::f32).dtype() == DType::f32);
  CHECK(ref::read(tensor({1, 2, 3, 4}, {2, 2})) == std::vector<double>{1, 2, 3, 4});
  // A fresh factory result never shares storage with another.
  CHECK(zeros({3}).storage() != zeros({3}).storage());
}
