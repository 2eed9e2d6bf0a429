// Shapes whose element count (or strides) would overflow int64, and negative sizes, are refused
// by every op that builds a shape (Note [Shape limits] in tensor/shape.cpp), with a ShapeError
// naming the op and the shape. Expanded views let such shapes arise from tiny inputs.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using Catch::Contains;

namespace {
constexpr std::int64_t k2e22 = std::int64_t{1} << 22;
constexpr std::int64_t k2e30 = std::int64_t{1} << 30;
constexpr std::int64_t k2e32 = std::int64_t{1} << 32;
constexpr std::int64_t k2e40 = std::int64_t{1} << 40;
constexpr std::int64_t k2e62 = std::int64_t{1} << 62;

// A view of `shape` over a single element (stride 0 everywhere): any size, no memory.
Tensor huge(const Shape& shape) { return ones(Shape(shape.size(), 1)).expand(shape); }
}  // namespace

TEST_CASE("shape_numel refuses negative sizes and int64 overflow, naming the op",
          "[tensor][shape][overflow]") {
  CHECK(shape_numel({k2e62, 1}) == k2e62);
  CHECK(shape_numel({0, k2e40, k2e22}) == 0);
  CHECK_THROWS_WITH(shape_numel({2, -3}, "zeros"), "zeros: shape [2, -3]: a size is negative");
  CHECK_THROWS_WITH(shape_numel({k2e40, k2e40}, "ones"),
                    "ones: shape [1099511627776, 1099511627776]: more elements than int64 can count");
  // With a zero size there are no elements, but the contiguous strides would still overflow, and
  // the verdict must not depend on where the zero sits.
  for (const Shape& s : {Shape{0, k2e40, k2e40}, Shape{k2e40, 0, k2e40}, Shape{k2e40, k2e40, 0}}) {
    INFO(ref::str(s));
    CHECK_THROWS_AS(shape_numel(s), ShapeError);
    CHECK_THROWS_WITH(shape_numel(s, "op"), Contains("op: ") && Contains("too large for int64 strides"));
  }
}

TEST_CASE("expand refuses shapes whose element count overflows, and negative sizes",
          "[tensor][views][expand][overflow]") {
  const Tensor one = ones({1});
  CHECK_THROWS_AS(one.expand({k2e62 + 1, 4}), ShapeError);
  CHECK_THROWS_WITH(one.expand({k2e62 + 1, 4}),
                    Contains("expand: cannot expand [1] to [4611686018427387905, 4]") &&
                        Contains("more elements than int64 can count"));
  CHECK_THROWS_WITH(ones({1, 1}).expand({k2e40, k2e40}), Contains("expand") && Contains("[1, 1]"));
  CHECK_THROWS_WITH(zeros({1, 1, 0}).expand({k2e40, k2e40, 0}), Contains("expand") && Contains("int64 strides"));
  // Negative sizes other than -1 (keep the size), in existing and in new leading axes.
  CHECK_THROWS_WITH(one.expand({-2}), Contains("expand: cannot expand [1] to [-2]") && Contains("negative"));
  CHECK_THROWS_AS(ones({1, 3}).expand({-5, 3}), ShapeError);
  CHECK_THROWS_AS(one.expand({-1, 3}), ShapeError);
  CHECK_THROWS_AS(one.expand({-3, 3}), ShapeError);
  // What stays allowed: large counts that fit, -1 on an existing axis.
  CHECK(one.expand({k2e62, 1}).numel() == k2e62);
  CHECK(ones({2, 1}).expand({-1, 5}).shape() == Shape{2, 5});
  CHECK(ref::read(ones({2, 1}).expand({3, -1, 2})) == std::vector<double>(12, 1.0));
}

TEST_CASE("reshape refuses shapes too large for int64", "[tensor][views][reshape][overflow]") {
  const Tensor empty = zeros({0});
  CHECK_THROWS_AS(empty.reshape({0, k2e62, 4}), ShapeError);
  CHECK_THROWS_WITH(empty.reshape({0, k2e62, 4}),
                    Contains("reshape: cannot reshape [0]") && Contains("[0, 4611686018427387904, 4]"));
  CHECK_THROWS_AS(empty.reshape({k2e62, 4, 0}), ShapeError);
  CHECK_THROWS_AS(empty.reshape({-1, k2e62, 4}), ShapeError);
  CHECK_THROWS_WITH(ones({4}).reshape({-1, k2e62, 4}), Contains("reshape") && Contains("[-1, 4611686018427387904, 4]"));
  CHECK_THROWS_AS(empty.reshape_copy({0, k2e62, 4}), ShapeError);
  CHECK_THROWS_AS(empty.reshape({-2, 0}), ShapeError);
  CHECK(empty.reshape({0, k2e30, 4}).shape() == Shape{0, k2e30, 4});
  CHECK(empty.reshape({-1, 5}).shape() == Shape{0, 5});
}

TEST_CASE("slice with a step far beyond the axis takes one element", "[tensor][views][slice][overflow]") {
  const Tensor x = arange(0, 10);
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  for (std::int64_t step : {std::int64_t{10}, k2e62, kMax - 1, kMax}) {
    INFO("step " << step);
    CHECK(ref::read(x.slice(0, 0, 10, step)) == std::vector<double>{0});
    CHECK(ref::read(x.slice(0, 3, kMax, step)) == std::vector<double>{3});
    CHECK(ref::read(x.slice(0, -1, kMax, step)) == std::vector<double>{9});
    CHECK(x.slice(0, 10, kMax, step).numel() == 0);
  }
  CHECK(ref::read(x.reshape({2, 5}).slice(1, 1, 5, k2e62)) == std::vector<double>{1, 6});
}

TEST_CASE("broadcasting refuses results too large for int64", "[tensor][binary][overflow]") {
  const Tensor col = huge({k2e40, 1}), row = huge({1, k2e40});
  CHECK_THROWS_AS(broadcast_shapes(col.shape(), row.shape(), "op"), ShapeError);
  CHECK_THROWS_WITH(broadcast_shapes(col.shape(), row.shape(), "op"),
                    "op: broadcasting [1099511627776, 1] with [1, 1099511627776] gives "
                    "[1099511627776, 1099511627776]: more elements than int64 can count");
  CHECK_THROWS_WITH(add(col, row), Contains("add: broadcasting [1099511627776, 1] with [1, 1099511627776]"));
  CHECK_THROWS_WITH(mul(col, row), Contains("mul: broadcasting"));
  CHECK_THROWS_WITH(where(col, row, col), Contains("where: broadcasting"));
  CHECK_THROWS_WITH(sum_to(col, {-1, 1}), Contains("sum_to"));
  CHECK(broadcast_shapes({k2e40, 1}, {1, k2e22}, "op") == Shape{k2e40, k2e22});
}

TEST_CASE("matmul, concat, stack and index_select refuse results too large for int64",
          "[tensor][index][matmul][overflow]") {
  CHECK_THROWS_AS(matmul(huge({k2e40, 2, 1}), huge({1, 1, k2e30})), ShapeError);
  CHECK_THROWS_WITH(matmul(huge({k2e40, 2, 1}), huge({1, 1, k2e30})),
                    Contains("matmul: [1099511627776, 2, 1] @ [1, 1, 1073741824] gives "
                             "[1099511627776, 2, 1073741824]"));

  const Tensor long_row = huge({k2e62});
  CHECK_THROWS_AS(concat({long_row, long_row, long_row}), ShapeError);
  CHECK_THROWS_WITH(concat({long_row, long_row, long_row}),
                    Contains("concat") && Contains("[4611686018427387904]") && Contains("int64"));
  CHECK_THROWS_WITH(concat({huge({k2e62, 1}), huge({k2e62, 1})}, 1), Contains("concat: joining 2 tensors"));
  CHECK_THROWS_AS(stack({long_row, long_row}), ShapeError);
  CHECK_THROWS_WITH(stack({long_row, long_row}), Contains("stack") && Contains("int64"));

  const Tensor tall = huge({k2e62, 1});
  CHECK_THROWS_AS(index_select(tall, 1, from_indices({0, 0, 0, 0})), ShapeError);
  CHECK_THROWS_WITH(index_select(tall, 1, from_indices({0, 0, 0, 0})),
                    Contains("index_select") && Contains("[4611686018427387904, 4]"));
}

TEST_CASE("factories refuse negative and overflowing sizes, naming themselves", "[tensor][factories][overflow]") {
  const Shape too_many{k2e40, k2e40};
  CHECK_THROWS_WITH(zeros(too_many), Contains("zeros: shape [1099511627776, 1099511627776]"));
  CHECK_THROWS_WITH(ones(too_many), Contains("ones: shape"));
  CHECK_THROWS_WITH(full(too_many, 2.0), Contains("full: shape"));
  CHECK_THROWS_WITH(zeros({0, k2e40, k2e40}), Contains("zeros") && Contains("int64 strides"));
  CHECK_THROWS_WITH(zeros({3, -1}), "zeros: shape [3, -1]: a size is negative");
  CHECK_THROWS_WITH(ones({-4}), Contains("ones: shape [-4]"));
  CHECK_THROWS_WITH(from_vector({1, 2}, {-1, -2}), Contains("from_vector: shape [-1, -2]"));
  CHECK_THROWS_WITH(eye(k2e32), Contains("eye: shape [4294967296, 4294967296]"));
  CHECK_THROWS_AS(arange(0, 1e300), ShapeError);
  CHECK_THROWS_WITH(arange(0, 1e300), Contains("arange: (0, 1e+300, 1)") && Contains("int64"));
  CHECK_THROWS_WITH(arange(-1.7e308, 1.7e308), Contains("arange"));
  CHECK(arange(5, 0).numel() == 0);
  Rng rng(1);
  CHECK_THROWS_WITH(rng.normal({-1}), Contains("Rng::normal: shape [-1]"));
  CHECK_THROWS_WITH(rng.uniform(too_many), Contains("Rng::uniform"));
  CHECK_THROWS_WITH(rng.integers({2, -2}, 0, 3), Contains("Rng::integers"));
  CHECK_THROWS_WITH(rng.rademacher({-3}), Contains("Rng::rademacher"));
}
