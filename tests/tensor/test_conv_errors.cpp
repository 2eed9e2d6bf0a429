// conv2d and its adjoints on empty batches and channels, and every error path: bad shapes,
// options and dtypes, each refused with a message that names them.

#include <catch2/catch.hpp>

#include <cstdint>

#include "tensor/conv.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tensor/shape.hpp"

using namespace theta;
using Catch::Contains;

TEST_CASE("conv2d handles empty batches and channels", "[conv]") {
  Rng rng(13);
  CHECK(conv2d(zeros({0, 2, 4, 4}), zeros({3, 2, 3, 3})).shape() == Shape({0, 3, 2, 2}));
  CHECK(conv2d(zeros({2, 2, 4, 4}), zeros({0, 2, 3, 3})).shape() == Shape({2, 0, 2, 2}));
  CHECK(conv2d_input_grad(zeros({2, 0, 2, 2}), zeros({0, 2, 3, 3}), {2, 2, 4, 4}).shape() == Shape({2, 2, 4, 4}));
  const Tensor dw = conv2d_weight_grad(zeros({0, 2, 4, 4}), zeros({0, 3, 2, 2}), {3, 2, 3, 3});
  CHECK(dw.shape() == Shape({3, 2, 3, 3}));
  CHECK(sum(abs(dw)).item() == 0.0);
}

TEST_CASE("conv2d rejects bad shapes, options and dtypes", "[conv]") {
  const Tensor x = zeros({2, 3, 5, 5}), w = zeros({4, 3, 3, 3});
  CHECK_THROWS_AS(conv2d(zeros({3, 5, 5}), w), ShapeError);
  CHECK_THROWS_WITH(conv2d(zeros({3, 5, 5}), w), Contains("conv2d: expected input [N, C_in, H, W], got [3, 5, 5]"));
  CHECK_THROWS_AS(conv2d(x, zeros({4, 3, 3})), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, zeros({4, 3, 3})),
                    Contains("conv2d: expected weight [C_out, C_in, kh, kw], got [4, 3, 3]"));
  CHECK_THROWS_AS(conv2d(x, zeros({4, 2, 3, 3})), ShapeError);
  CHECK_THROWS_WITH(
      conv2d(x, zeros({4, 2, 3, 3})),
      Contains("conv2d: input has 3 channels but weight expects 2 (input [2, 3, 5, 5], weight [4, 2, 3, 3]"));
  CHECK_THROWS_AS(conv2d(x, zeros({4, 3, 6, 3})), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, zeros({4, 3, 6, 3})),
                    Contains("conv2d: the dilated kernel [6, 3] is larger than the padded input [5, 5]"));
  Conv2dOptions dilated;
  dilated.dilation = {3, 1};
  CHECK_THROWS_AS(conv2d(x, w, dilated), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, w, dilated),
                    Contains("the dilated kernel [7, 3] is larger than the padded input [5, 5]"));
  dilated.padding = {1, 0};
  CHECK(conv2d(x, w, dilated).shape() == Shape({2, 4, 1, 3}));
  CHECK_THROWS_AS(conv2d(x, zeros({4, 3, 0, 3})), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, zeros({4, 3, 0, 3})),
                    Contains("conv2d: need at least one input channel and a non-empty kernel"));
  Conv2dOptions bad;
  bad.stride = {0, 1};
  CHECK_THROWS_AS(conv2d(x, w, bad), ShapeError);
  CHECK_THROWS_WITH(
      conv2d(x, w, bad),
      Contains("conv2d: stride must be positive (input [2, 3, 5, 5], weight [4, 3, 3, 3], stride [0, 1]"));
  bad = {};
  bad.dilation = {1, -1};
  CHECK_THROWS_AS(conv2d(x, w, bad), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, w, bad), Contains("conv2d: dilation must be positive"));
  bad = {};
  bad.padding = {-1, 0};
  CHECK_THROWS_AS(conv2d(x, w, bad), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, w, bad), Contains("conv2d: padding must not be negative"));
  Conv2dOptions circular;
  circular.padding = {2, 2};
  circular.padding_mode = Padding::circular;
  CHECK_THROWS_AS(conv2d(zeros({1, 3, 0, 0}), w, circular), ShapeError);
  CHECK_THROWS_WITH(conv2d(zeros({1, 3, 0, 0}), w, circular),
                    Contains("conv2d: circular padding needs a non-empty image"));

  CHECK_THROWS_AS(conv2d(x.to(DType::f32), w), DTypeError);
  CHECK_THROWS_WITH(conv2d(x.to(DType::f32), w), Contains("conv2d: dtype mismatch: input float32, weight float64"));
  CHECK_THROWS_AS(conv2d(x.to(DType::i64), w.to(DType::i64)), DTypeError);
  CHECK_THROWS_WITH(conv2d(x.to(DType::i64), w.to(DType::i64)),
                    Contains("conv2d: expected a floating input, got int64"));
  CHECK_THROWS_AS(conv2d(Tensor(), w), std::invalid_argument);
  CHECK_THROWS_WITH(conv2d(Tensor(), w), Contains("conv2d: input is undefined"));
}

TEST_CASE("conv2d's adjoints reject bad shapes and dtypes", "[conv]") {
  const Tensor x = zeros({2, 3, 5, 5}), w = zeros({4, 3, 3, 3}), g = zeros({2, 4, 3, 3});
  CHECK_NOTHROW(conv2d_input_grad(g, w, x.shape()));
  CHECK_NOTHROW(conv2d_weight_grad(x, g, w.shape()));
  CHECK_THROWS_AS(conv2d_input_grad(zeros({2, 4, 3, 4}), w, x.shape()), ShapeError);
  CHECK_THROWS_WITH(conv2d_input_grad(zeros({2, 4, 3, 4}), w, x.shape()),
                    Contains("conv2d_input_grad: grad_out is [2, 4, 3, 4] but conv2d of input [2, 3, 5, 5] and "
                             "weight [4, 3, 3, 3] gives [2, 4, 3, 3]"));
  CHECK_THROWS_AS(conv2d_weight_grad(x, zeros({2, 5, 3, 3}), w.shape()), ShapeError);
  CHECK_THROWS_WITH(conv2d_weight_grad(x, zeros({2, 5, 3, 3}), w.shape()),
                    Contains("conv2d_weight_grad: grad_out is [2, 5, 3, 3] but conv2d of input [2, 3, 5, 5] and "
                             "weight [4, 3, 3, 3] gives [2, 4, 3, 3]"));
  CHECK_THROWS_AS(conv2d_input_grad(g, w, {2, 2, 5, 5}), ShapeError);
  CHECK_THROWS_WITH(conv2d_input_grad(g, w, {2, 2, 5, 5}), Contains("conv2d_input_grad: input has 2 channels"));
  CHECK_THROWS_AS(conv2d_weight_grad(x, g, {4, 3, 3}), ShapeError);
  CHECK_THROWS_WITH(conv2d_weight_grad(x, g, {4, 3, 3}),
                    Contains("conv2d_weight_grad: expected weight [C_out, C_in, kh, kw], got [4, 3, 3]"));
  CHECK_THROWS_AS(conv2d_input_grad(g.to(DType::f32), w, x.shape()), DTypeError);
  CHECK_THROWS_WITH(conv2d_input_grad(g.to(DType::f32), w, x.shape()),
                    Contains("conv2d_input_grad: dtype mismatch: grad_out float32, weight float64"));
  CHECK_THROWS_AS(conv2d_weight_grad(x, g.to(DType::f32), w.shape()), DTypeError);
  CHECK_THROWS_WITH(conv2d_weight_grad(x, g.to(DType::f32), w.shape()),
                    Contains("conv2d_weight_grad: dtype mismatch: input float64, grad_out float32"));
}
