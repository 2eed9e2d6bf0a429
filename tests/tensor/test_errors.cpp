// User mistakes throw typed exceptions (all std::invalid_argument) whose messages name the op
// and show the operands.

#include <catch2/catch.hpp>

#include <stdexcept>
#include <type_traits>

#include "tensor/ops.hpp"

using namespace theta;
using Catch::Contains;

static_assert(std::is_base_of_v<std::invalid_argument, ShapeError>);
static_assert(std::is_base_of_v<std::invalid_argument, DTypeError>);
static_assert(std::is_base_of_v<std::invalid_argument, IndexError>);

TEST_CASE("shape errors name the op and the shapes", "[tensor][errors]") {
  CHECK_THROWS_AS(matmul(zeros({2, 3}), zeros({4, 5})), ShapeError);
  CHECK_THROWS_WITH(matmul(zeros({2, 3}), zeros({4, 5})),
                    Contains("matmul: inner dimensions differ: [2, 3] @ [4, 5]"));
  CHECK_THROWS_AS(add(zeros({3, 4}), zeros({2, 4})), ShapeError);
  CHECK_THROWS_WITH(add(zeros({3, 4}), zeros({2, 4})), Contains("add: cannot broadcast [3, 4] with [2, 4]"));
  CHECK_THROWS_WITH(mul(zeros({3}), zeros({2})), Contains("mul: cannot broadcast [3] with [2]"));
  CHECK_THROWS_WITH(where(zeros({3}), zeros({2}), zeros({2})),
                    Contains("where: cannot broadcast [3] with [2]"));
  const Tensor t = zeros({4, 3}).t();
  CHECK_THROWS_AS(t.reshape({12}), ShapeError);
  CHECK_THROWS_WITH(t.reshape({12}), Contains("reshape: cannot view [3, 4] (strides [1, 3]) as [12]"));
  CHECK_THROWS_AS(zeros({2, 3}).reshape({4}), ShapeError);
  CHECK_THROWS_WITH(zeros({2, 3}).reshape({4}), Contains("reshape") && Contains("[2, 3]") && Contains("[4]"));
  CHECK_THROWS_WITH(zeros({2, 3}).expand({4, 3}),
                    Contains("expand") && Contains("[2, 3]") && Contains("[4, 3]"));
  CHECK_THROWS_WITH(concat({zeros({2, 3}), zeros({2, 4})}), Contains("concat") && Contains("[2, 4]"));
  CHECK_THROWS_WITH(zeros({2}).item(), Contains("item") && Contains("[2]"));
}

TEST_CASE("dtype errors name the op and the dtypes", "[tensor][errors]") {
  const Tensor f = zeros({2}, DType::f32), d = zeros({2}, DType::f64), i = zeros({2}, DType::i64);
  CHECK_THROWS_AS(add(f, d), DTypeError);
  CHECK_THROWS_WITH(add(f, d), Contains("add: dtype mismatch: float32 [2] vs float64 [2]"));
  CHECK_THROWS_WITH(maximum(d, i), Contains("maximum: dtype mismatch: float64 [2] vs int64 [2]"));
  CHECK_THROWS_AS(where(d, f, d), DTypeError);
  CHECK_THROWS_AS(matmul(f, d), DTypeError);
  CHECK_THROWS_WITH(matmul(f, d), Contains("matmul: dtype mismatch: float32 @ float64"));
  CHECK_THROWS_AS(exp(i), DTypeError);
  CHECK_THROWS_WITH(exp(i), Contains("exp: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(sqrt(i), Contains("sqrt: expected a floating tensor, got int64"));
  CHECK_THROWS_WITH(div(i, i), Contains("div") && Contains("int64"));
  CHECK_THROWS_AS(Tensor(d).copy_(f), DTypeError);
  CHECK_THROWS_WITH(Tensor(d).copy_(f), Contains("copy_: dtype mismatch"));
  CHECK_THROWS_AS(d.data<float>(), DTypeError);
  CHECK_THROWS_WITH(d.data<float>(), Contains("float64") && Contains("float32"));
  CHECK_THROWS_AS(index_select(d, 0, d), DTypeError);
  CHECK_THROWS_WITH(index_select(d, 0, d), Contains("index_select: index must be int64, got float64"));
  CHECK_THROWS_AS(var(i), DTypeError);
  CHECK_THROWS_AS(norm(i), DTypeError);
}

TEST_CASE("index errors name the op, the index and the shape", "[tensor][errors]") {
  const Tensor x = zeros({3, 4});
  CHECK_THROWS_AS(index_select(x, 0, from_indices({5})), IndexError);
  CHECK_THROWS_WITH(index_select(x, 0, from_indices({5})),
                    Contains("index_select: index 5 out of range for axis 0 of shape [3, 4]"));
  CHECK_THROWS_AS(x.select(1, 4), IndexError);
  CHECK_THROWS_WITH(x.select(1, 4), Contains("select: index 4 out of range for axis 1 of shape [3, 4]"));
  CHECK_THROWS_AS(gather(x, 1, from_indices({4}).reshape({1, 1})), IndexError);
  CHECK_THROWS_WITH(gather(x, 1, from_indices({4}).reshape({1, 1})),
                    Contains("gather: index 4 out of range"));
  CHECK_THROWS_AS(x.at({3, 0}), IndexError);
}

TEST_CASE("axis errors name the op and the rank", "[tensor][errors]") {
  const Tensor x = zeros({3, 4});
  CHECK_THROWS_AS(sum(x, {2}), IndexError);
  CHECK_THROWS_WITH(sum(x, {2}), Contains("sum: axis 2 out of range for a tensor with 2 dimensions"));
  CHECK_THROWS_WITH(max(x, {-3}), Contains("max: axis -3 out of range for a tensor with 2 dimensions"));
  CHECK_THROWS_WITH(mean(x, {5}), Contains("mean: axis 5 out of range"));
  CHECK_THROWS_WITH(argmax(x, 2), Contains("argmax: axis 2 out of range"));
  CHECK_THROWS_WITH(x.transpose(0, 2), Contains("transpose: axis 2 out of range"));
  CHECK_THROWS_WITH(x.squeeze(2), Contains("squeeze: axis 2 out of range"));
  CHECK_THROWS_WITH(concat({x, x}, 2), Contains("concat: axis 2 out of range"));
  CHECK_THROWS_AS(sum(x, {0, -2}), IndexError);
}

TEST_CASE("every user error is a std::invalid_argument", "[tensor][errors]") {
  const Tensor x = zeros({3, 4});
  CHECK_THROWS_AS(matmul(x, x), std::invalid_argument);
  CHECK_THROWS_AS(add(x, zeros({2})), std::invalid_argument);
  CHECK_THROWS_AS(exp(zeros({2}, DType::i64)), std::invalid_argument);
  CHECK_THROWS_AS(x.select(0, 9), std::invalid_argument);
  CHECK_THROWS_AS(sum(x, {7}), std::invalid_argument);
  CHECK_THROWS_AS(x.slice(0, 0, 1, 0), std::invalid_argument);
}
