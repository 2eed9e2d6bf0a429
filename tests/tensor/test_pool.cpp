// avg_pool2d and global_avg_pool2d against naive loops, their adjoint identities, and every error
// path.

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/pool.hpp"
#include "tensor/rng.hpp"
#include "tensor/shape.hpp"
#include "tests/tensor/conv_test_support.hpp"

using namespace theta;
using namespace theta::test;
using Catch::Contains;

namespace {

// The naive average pool (count_include_pad), in double.
Tensor naive_avg_pool2d(const Tensor& x, std::array<std::int64_t, 2> k, std::array<std::int64_t, 2> s,
                        std::array<std::int64_t, 2> p) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const std::int64_t ho = (h + 2 * p[0] - k[0]) / s[0] + 1, wo = (w + 2 * p[1] - k[1]) / s[1] + 1;
  const std::vector<double> v = to_vector(x);
  std::vector<double> out;
  for (std::int64_t q = 0; q < planes; ++q)
    for (std::int64_t oy = 0; oy < ho; ++oy)
      for (std::int64_t ox = 0; ox < wo; ++ox) {
        double total = 0;
        for (std::int64_t i = 0; i < k[0]; ++i)
          for (std::int64_t j = 0; j < k[1]; ++j) {
            const std::int64_t y = oy * s[0] - p[0] + i, c = ox * s[1] - p[1] + j;
            if (y >= 0 && y < h && c >= 0 && c < w) total += v[static_cast<std::size_t>((q * h + y) * w + c)];
          }
        out.push_back(total / static_cast<double>(k[0] * k[1]));
      }
  return from_vector(out, {x.size(0), x.size(1), ho, wo});
}

}  // namespace

TEST_CASE("avg_pool2d equals the naive window mean, padding counted", "[conv][pool]") {
  Rng rng(14);
  using P = std::array<std::int64_t, 2>;
  struct PoolCase {
    Shape x;
    P k, s, p;
  };
  const std::vector<PoolCase> cases = {
      {{2, 3, 6, 6}, {2, 2}, {2, 2}, {0, 0}}, {{1, 2, 7, 5}, {3, 3}, {2, 2}, {1, 1}},
      {{3, 1, 5, 8}, {3, 2}, {1, 2}, {1, 0}}, {{2, 2, 4, 4}, {4, 4}, {1, 1}, {2, 2}},
      {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0}}, {{2, 3, 9, 7}, {2, 3}, {3, 1}, {1, 1}},
  };
  for (const auto& c : cases) {
    INFO("x " << shape_str(c.x) << ", kernel [" << c.k[0] << ", " << c.k[1] << "], stride [" << c.s[0] << ", " << c.s[1]
              << "], padding [" << c.p[0] << ", " << c.p[1] << "]");
    const Tensor x = rng.normal(c.x);
    const Tensor y = avg_pool2d(x, c.k, c.s, c.p);
    CHECK(max_abs_diff(y, naive_avg_pool2d(x, c.k, c.s, c.p)) < 1e-14);
    CHECK(max_abs_diff(avg_pool2d(x.to(DType::f32), c.k, c.s, c.p), y) < 1e-5);
    const Tensor x_view = x.transpose(2, 3).contiguous().transpose(2, 3);
    CHECK(max_abs_diff(avg_pool2d(x_view, c.k, c.s, c.p), y) == 0.0);
    const Tensor g = rng.normal(y.shape());
    const Tensor dx = avg_pool2d_grad(g, c.x, c.k, c.s, c.p);
    REQUIRE(dx.shape() == c.x);
    CHECK(std::abs(inner(y, g) - inner(x, dx)) < 1e-12);
    CHECK(max_abs_diff(avg_pool2d_grad(g.to(DType::f32), c.x, c.k, c.s, c.p), dx) < 1e-5);
  }
}

TEST_CASE("global_avg_pool2d is the spatial mean, and its adjoint spreads evenly", "[conv][pool]") {
  Rng rng(15);
  const Tensor x = rng.normal({3, 4, 5, 6});
  const Tensor y = global_avg_pool2d(x);
  REQUIRE(y.shape() == Shape({3, 4}));
  CHECK(max_abs_diff(y, naive_avg_pool2d(x, {5, 6}, {1, 1}, {0, 0}).reshape({3, 4})) < 1e-14);
  const Tensor g = rng.normal({3, 4});
  const Tensor dx = global_avg_pool2d_grad(g, x.shape());
  REQUIRE(dx.shape() == x.shape());
  CHECK(std::abs(inner(y, g) - inner(x, dx)) < 1e-12);
  CHECK(dx.at({1, 2, 3, 4}) == g.at({1, 2}) / 30.0);
  CHECK(max_abs_diff(global_avg_pool2d_grad(g.t().contiguous().t(), x.shape()), dx) == 0.0);
  CHECK(global_avg_pool2d(x.to(DType::f32)).dtype() == DType::f32);
}

TEST_CASE("pooling rejects bad shapes and options", "[conv][pool]") {
  const Tensor x = zeros({2, 3, 5, 5});
  CHECK_THROWS_AS(avg_pool2d(zeros({3, 5, 5}), {2, 2}, {2, 2}), ShapeError);
  CHECK_THROWS_WITH(avg_pool2d(zeros({3, 5, 5}), {2, 2}, {2, 2}),
                    Contains("avg_pool2d: expected input [N, C, H, W], got [3, 5, 5]"));
  CHECK_THROWS_AS(avg_pool2d(x, {6, 2}, {1, 1}), ShapeError);
  CHECK_THROWS_WITH(
      avg_pool2d(x, {6, 2}, {1, 1}),
      Contains("avg_pool2d: the kernel is larger than the padded input [5, 5] (input [2, 3, 5, 5], kernel [6, 2]"));
  CHECK_THROWS_AS(avg_pool2d(x, {0, 2}, {1, 1}), ShapeError);
  CHECK_THROWS_WITH(avg_pool2d(x, {0, 2}, {1, 1}), Contains("avg_pool2d: kernel must be positive"));
  CHECK_THROWS_AS(avg_pool2d(x, {2, 2}, {1, 0}), ShapeError);
  CHECK_THROWS_WITH(avg_pool2d(x, {2, 2}, {1, 0}), Contains("avg_pool2d: stride must be positive"));
  CHECK_THROWS_AS(avg_pool2d(x, {2, 2}, {1, 1}, {-1, 0}), ShapeError);
  CHECK_THROWS_WITH(avg_pool2d(x, {2, 2}, {1, 1}, {-1, 0}), Contains("avg_pool2d: padding must not be negative"));
  CHECK_THROWS_AS(avg_pool2d(x, {2, 2}, {1, 1}, {2, 0}), ShapeError);
  CHECK_THROWS_WITH(avg_pool2d(x, {2, 2}, {1, 1}, {2, 0}),
                    Contains("avg_pool2d: padding must be at most half the kernel"));
  CHECK_THROWS_AS(avg_pool2d(zeros({1, 1, 4, 4}, DType::i64), {2, 2}, {2, 2}), DTypeError);
  CHECK_THROWS_WITH(avg_pool2d(zeros({1, 1, 4, 4}, DType::i64), {2, 2}, {2, 2}),
                    Contains("avg_pool2d: expected a floating input, got int64"));
  CHECK_THROWS_AS(avg_pool2d_grad(zeros({2, 3, 3, 3}), x.shape(), {2, 2}, {2, 2}), ShapeError);
  CHECK_THROWS_WITH(
      avg_pool2d_grad(zeros({2, 3, 3, 3}), x.shape(), {2, 2}, {2, 2}),
      Contains("avg_pool2d_grad: grad_out is [2, 3, 3, 3] but avg_pool2d of [2, 3, 5, 5] gives [2, 3, 2, 2]"));
  CHECK_THROWS_AS(global_avg_pool2d(zeros({2, 3, 5})), ShapeError);
  CHECK_THROWS_WITH(global_avg_pool2d(zeros({2, 3, 5})),
                    Contains("global_avg_pool2d: expected input [N, C, H, W], got [2, 3, 5]"));
  CHECK_THROWS_AS(global_avg_pool2d(zeros({2, 3, 0, 5})), ShapeError);
  CHECK_THROWS_WITH(global_avg_pool2d(zeros({2, 3, 0, 5})), Contains("global_avg_pool2d: empty image [2, 3, 0, 5]"));
  CHECK_THROWS_AS(global_avg_pool2d_grad(zeros({2, 4}), x.shape()), ShapeError);
  CHECK_THROWS_WITH(
      global_avg_pool2d_grad(zeros({2, 4}), x.shape()),
      Contains("global_avg_pool2d_grad: grad_out is [2, 4] but global_avg_pool2d of [2, 3, 5, 5] gives [2, 3]"));
}
