// conv2d and its two adjoints against naive loops, the adjoint identities, the shift equivariance
// of circular convolution and the Winograd route (the error paths: test_conv_errors.cpp).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/conv_geometry.hpp"
#include "tensor/conv_winograd.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/rng.hpp"
#include "tensor/shape.hpp"
#include "tests/tensor/conv_test_support.hpp"

using namespace theta;
using namespace theta::test;
using Catch::Contains;

namespace {

// Input coordinate read by output coordinate o through tap t along one axis, or -1 for a zero.
std::int64_t source(std::int64_t o, std::int64_t t, std::int64_t size, std::int64_t stride, std::int64_t padding,
                    std::int64_t dilation, bool circular) {
  std::int64_t i = o * stride - padding + t * dilation;
  if (circular) return ((i % size) + size) % size;
  return i < 0 || i >= size ? -1 : i;
}

std::int64_t out_size(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                      std::int64_t dilation) {
  return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// The seven-loop definition of conv2d, in double.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  const std::int64_t n = x.size(0), c_in = x.size(1), h = x.size(2), wd = x.size(3);
  const std::int64_t c_out = w.size(0), kh = w.size(2), kw = w.size(3);
  const std::int64_t ho = out_size(h, kh, o.stride[0], o.padding[0], o.dilation[0]);
  const std::int64_t wo = out_size(wd, kw, o.stride[1], o.padding[1], o.dilation[1]);
  const bool circular = o.padding_mode == Padding::circular;
  const std::vector<double> xv = to_vector(x), wv = to_vector(w);
  std::vector<double> out(static_cast<std::size_t>(n * c_out * ho * wo), 0.0);
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t oc = 0; oc < c_out; ++oc)
      for (std::int64_t oy = 0; oy < ho; ++oy)
        for (std::int64_t ox = 0; ox < wo; ++ox) {
          double total = 0;
          for (std::int64_t c = 0; c < c_in; ++c)
            for (std::int64_t i = 0; i < kh; ++i)
              for (std::int64_t j = 0; j < kw; ++j) {
                const std::int64_t iy = source(oy, i, h, o.stride[0], o.padding[0], o.dilation[0], circular);
                const std::int64_t ix = source(ox, j, wd, o.stride[1], o.padding[1], o.dilation[1], circular);
                if (iy < 0 || ix < 0) continue;
                total += wv[static_cast<std::size_t>(((oc * c_in + c) * kh + i) * kw + j)] *
                         xv[static_cast<std::size_t>(((s * c_in + c) * h + iy) * wd + ix)];
              }
          out[static_cast<std::size_t>(((s * c_out + oc) * ho + oy) * wo + ox)] = total;
        }
  return from_vector(out, {n, c_out, ho, wo});
}

struct ConvCase {
  Shape x, w;
  Conv2dOptions options;
};

std::string describe(const ConvCase& c) {
  return "x " + shape_str(c.x) + ", w " + shape_str(c.w) + ", stride [" + std::to_string(c.options.stride[0]) + ", " +
         std::to_string(c.options.stride[1]) + "], padding [" + std::to_string(c.options.padding[0]) + ", " +
         std::to_string(c.options.padding[1]) + "], dilation [" + std::to_string(c.options.dilation[0]) + ", " +
         std::to_string(c.options.dilation[1]) + "], " +
         (c.options.padding_mode == Padding::circular ? "circular" : "zeros");
}

// Many geometries: kernel sizes 1x1, 3x3 and non-square, strides, paddings, dilations, both
// padding modes, non-square images, several channels and samples.
std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases;
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{1, 1, 5, 5}, {1, 1, 3, 3}}, {{2, 3, 6, 7}, {4, 3, 3, 3}}, {{3, 2, 5, 8}, {3, 2, 1, 1}},
      {{2, 2, 7, 6}, {5, 2, 2, 3}}, {{1, 4, 9, 9}, {2, 4, 3, 1}}, {{5, 3, 4, 6}, {2, 3, 3, 3}},
  };
  for (const auto& [xs, ws] : shapes)
    for (std::int64_t stride : {1, 2})
      for (std::int64_t padding : {0, 1, 2})
        for (std::int64_t dilation : {1, 2})
          for (Padding mode : {Padding::zeros, Padding::circular}) {
            Conv2dOptions o;
            o.stride = {stride, stride == 2 && padding == 1 ? 1 : stride};
            o.padding = {padding, padding == 2 ? 1 : padding};
            o.dilation = {dilation, dilation};
            o.padding_mode = mode;
            const std::int64_t span_h = dilation * (ws[2] - 1) + 1, span_w = dilation * (ws[3] - 1) + 1;
            if (span_h > xs[2] + 2 * o.padding[0] || span_w > xs[3] + 2 * o.padding[1]) continue;
            cases.push_back({xs, ws, o});
          }
  return cases;
}

// x rolled by (dy, dx) along its spatial axes: out[.., y, x] = x[.., (y - dy) mod H, (x - dx) mod W].
Tensor roll2d(const Tensor& x, std::int64_t dy, std::int64_t dx) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const std::vector<double> v = to_vector(x);
  std::vector<double> out(v.size());
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t c = 0; c < w; ++c)
        out[static_cast<std::size_t>((p * h + (y + dy) % h) * w + (c + dx) % w)] =
            v[static_cast<std::size_t>((p * h + y) * w + c)];
  return from_vector(out, x.shape(), x.dtype());
}

}  // namespace

TEST_CASE("conv2d equals the seven-loop definition", "[conv]") {
  Rng rng(7);
  const auto cases = conv_cases();
  CHECK(cases.size() > 100);
  for (const auto& c : cases) {
    INFO(describe(c));
    const Tensor x = rng.normal(c.x), w = rng.normal(c.w);
    const Tensor expected = naive_conv2d(x, w, c.options);
    CHECK(max_abs_diff(conv2d(x, w, c.options), expected) < 1e-12);
    const Tensor y32 = conv2d(x.to(DType::f32), w.to(DType::f32), c.options);
    CHECK(y32.dtype() == DType::f32);
    CHECK(max_abs_diff(y32, expected) < 1e-4);
  }
}

TEST_CASE("conv2d reads non-contiguous operands", "[conv]") {
  Rng rng(8);
  Conv2dOptions o;
  o.padding = {1, 1};
  // x laid out [N, H, W, C] and permuted to NCHW; w a transposed view of [C_out, C_in] per tap.
  const Tensor x = rng.normal({2, 6, 5, 3}).permute({0, 3, 1, 2});
  const Tensor w = rng.normal({3, 4, 3, 3}).transpose(0, 1);
  REQUIRE_FALSE(x.is_contiguous());
  REQUIRE_FALSE(w.is_contiguous());
  CHECK(max_abs_diff(conv2d(x, w, o), naive_conv2d(x, w, o)) < 1e-12);
  // A strided slice of a larger image.
  const Tensor big = rng.normal({2, 3, 10, 12});
  const Tensor sliced = big.slice(2, 1, 9, 2).slice(3, 0, 12, 3);
  CHECK(max_abs_diff(conv2d(sliced, w, o), naive_conv2d(sliced, w, o)) < 1e-12);
}

TEST_CASE("conv2d's adjoints satisfy <conv(x, w), g> = <x, input_grad(g, w)> = <w, weight_grad(x, g)>", "[conv]") {
  Rng rng(9);
  for (const auto& c : conv_cases()) {
    INFO(describe(c));
    const Tensor x = rng.normal(c.x), w = rng.normal(c.w);
    const Tensor y = conv2d(x, w, c.options);
    const Tensor g = rng.normal(y.shape());
    const Tensor dx = conv2d_input_grad(g, w, c.x, c.options);
    const Tensor dw = conv2d_weight_grad(x, g, c.w, c.options);
    REQUIRE(dx.shape() == c.x);
    REQUIRE(dw.shape() == c.w);
    const double forward = inner(y, g);
    const double scale = std::max(1.0, std::abs(forward));
    CHECK(std::abs(inner(x, dx) - forward) < 1e-12 * scale * 10);
    CHECK(std::abs(inner(w, dw) - forward) < 1e-12 * scale * 10);
    // float32 agrees with float64.
    const Tensor dx32 = conv2d_input_grad(g.to(DType::f32), w.to(DType::f32), c.x, c.options);
    const Tensor dw32 = conv2d_weight_grad(x.to(DType::f32), g.to(DType::f32), c.w, c.options);
    CHECK(max_abs_diff(dx32, dx) < 1e-4);
    CHECK(max_abs_diff(dw32, dw) < 1e-3);
  }
}

TEST_CASE("conv2d's adjoints read non-contiguous operands", "[conv]") {
  Rng rng(10);
  Conv2dOptions o;
  o.padding = {1, 0};
  o.stride = {2, 1};
  const Shape xs = {3, 2, 7, 5}, ws = {4, 2, 3, 2};
  const Tensor x = rng.normal(xs), w = rng.normal(ws);
  const Shape ys = conv2d(x, w, o).shape();
  const Tensor g = rng.normal({ys[0], ys[2], ys[3], ys[1]}).permute({0, 3, 1, 2});
  const Tensor x_view = rng.normal({xs[0], xs[2], xs[3], xs[1]}).permute({0, 3, 1, 2});
  const Tensor w_view = rng.normal({ws[1], ws[0], ws[2], ws[3]}).transpose(0, 1);
  CHECK(max_abs_diff(conv2d_input_grad(g, w_view, xs, o),
                     conv2d_input_grad(g.contiguous(), w_view.contiguous(), xs, o)) == 0.0);
  CHECK(max_abs_diff(conv2d_weight_grad(x_view, g, ws, o),
                     conv2d_weight_grad(x_view.contiguous(), g.contiguous(), ws, o)) == 0.0);
}

TEST_CASE("conv2d gives the same result on one thread and on several", "[conv]") {
  Rng rng(11);
  Conv2dOptions o;
  o.padding = {1, 1};
  const Tensor x = rng.normal({9, 3, 6, 6}), w = rng.normal({4, 3, 3, 3});
  const Tensor g = rng.normal({9, 4, 6, 6});
  const int saved = get_num_threads();
  set_num_threads(1);
  const Tensor y1 = conv2d(x, w, o), dx1 = conv2d_input_grad(g, w, x.shape(), o);
  const Tensor dw1 = conv2d_weight_grad(x, g, w.shape(), o);
  set_num_threads(3);
  const Tensor y3 = conv2d(x, w, o), dx3 = conv2d_input_grad(g, w, x.shape(), o);
  const Tensor dw3 = conv2d_weight_grad(x, g, w.shape(), o);
  set_num_threads(saved);
  // Samples are independent: forward and input adjoint are bitwise equal; the weight adjoint sums
  // per-thread partials in another order.
  CHECK(max_abs_diff(y1, y3) == 0.0);
  CHECK(max_abs_diff(dx1, dx3) == 0.0);
  CHECK(max_abs_diff(dw1, dw3) < 1e-12);
}

TEST_CASE("circular conv2d with stride 1 commutes with a circular shift of the input", "[conv]") {
  Rng rng(12);
  // Odd kernels with "same" padding, so the output is as large as the input and the shift acts on
  // both alike.
  for (const auto& [kh, kw, dil] :
       std::vector<std::array<std::int64_t, 3>>{{3, 3, 1}, {3, 3, 2}, {1, 1, 1}, {5, 3, 1}, {3, 5, 2}}) {
    INFO("kernel [" << kh << ", " << kw << "], dilation " << dil);
    Conv2dOptions o;
    o.padding = {dil * (kh - 1) / 2, dil * (kw - 1) / 2};
    o.dilation = {dil, dil};
    o.padding_mode = Padding::circular;
    const Tensor x = rng.normal({2, 3, 7, 6}), w = rng.normal({2, 3, kh, kw});
    REQUIRE(conv2d(x, w, o).shape() == Shape({2, 2, 7, 6}));
    CHECK(max_abs_diff(conv2d(roll2d(x, 2, 5), w, o), roll2d(conv2d(x, w, o), 2, 5)) < 1e-12);
    CHECK(max_abs_diff(conv2d(roll2d(x, 6, 1), w, o), roll2d(conv2d(x, w, o), 6, 1)) < 1e-12);
  }
}

TEST_CASE("3x3 conv2d with stride 1 (the Winograd route) equals the definition across blocks and threads",
          "[conv][winograd]") {
  // Batches that fill several blocks of tiles and end in a partial one, odd output sizes (whose
  // last tiles reach past the padded input), an image wider than a block, both padding modes.
  struct Case {
    Shape x, w;
    std::int64_t padding;
    Padding mode;
  };
  const std::vector<Case> cases = {
      {{40, 8, 8, 8}, {6, 8, 3, 3}, 1, Padding::zeros},     {{40, 8, 8, 8}, {6, 8, 3, 3}, 1, Padding::circular},
      {{300, 8, 3, 3}, {3, 8, 3, 3}, 1, Padding::zeros},    {{3, 9, 7, 9}, {5, 9, 3, 3}, 0, Padding::zeros},
      {{3, 9, 7, 9}, {5, 9, 3, 3}, 2, Padding::circular},   {{2, 8, 50, 45}, {4, 8, 3, 3}, 1, Padding::zeros},
      {{5, 8, 4, 4}, {2, 8, 3, 3}, 3, Padding::circular},   {{20, 8, 20, 20}, {3, 8, 3, 3}, 1, Padding::zeros},
  };
  Rng rng(14);
  const int saved = get_num_threads();
  for (const auto& c : cases) {
    Conv2dOptions o;
    o.padding = {c.padding, c.padding};
    o.padding_mode = c.mode;
    INFO(describe({c.x, c.w, o}));
    const Tensor x = rng.normal(c.x), w = rng.normal(c.w);
    const Tensor expected = naive_conv2d(x, w, o);
    const Tensor g = rng.normal(expected.shape());
    set_num_threads(1);
    const Tensor y1 = conv2d(x, w, o), dx1 = conv2d_input_grad(g, w, c.x, o), dw1 = conv2d_weight_grad(x, g, c.w, o);
    set_num_threads(3);
    const Tensor y3 = conv2d(x, w, o), dx3 = conv2d_input_grad(g, w, c.x, o), dw3 = conv2d_weight_grad(x, g, c.w, o);
    set_num_threads(saved);
    CHECK(max_abs_diff(y1, expected) < 1e-12);
    // Blocks of samples, and so the gemms' shapes, follow the thread count; OpenBLAS's kernels may
    // round another shape differently (the README promises bitwise equality at a fixed count).
    CHECK(max_abs_diff(y3, y1) < 1e-12);
    // Both tile sizes, whichever conv2d picks for float64, hold the definition and the adjoint
    // identities in float64.
    const detail::ConvGeometry geometry = detail::conv_geometry("test", c.x, c.w, o);
    REQUIRE(detail::winograd_applies(geometry));
    // The route works for any number of channels; conv2d takes it from kWinogradMinInputChannels on.
    const detail::ConvGeometry few = detail::conv_geometry("test", {c.x[0], 2, c.x[2], c.x[3]}, {c.w[0], 2, 3, 3}, o);
    CHECK_FALSE(detail::winograd_applies(few));
    CHECK(detail::winograd_supports(few));
    for (const auto tiles : {detail::WinogradTiles::f2x2, detail::WinogradTiles::f4x4}) {
      INFO((tiles == detail::WinogradTiles::f2x2 ? "F(2x2, 3x3)" : "F(4x4, 3x3)"));
      Tensor y = Tensor::empty(expected.shape()), dx = zeros(c.x);
      detail::winograd_conv2d(geometry, x, w, y, tiles);
      detail::winograd_input_grad(geometry, g, w, dx, tiles);
      const Tensor dw = detail::winograd_weight_grad(geometry, x, g, tiles);
      const double forward = inner(expected, g), scale = std::max(1.0, std::abs(forward));
      CHECK(max_abs_diff(y, expected) < 1e-12);
      CHECK(std::abs(inner(x, dx) - forward) < 1e-12 * scale * 10);
      CHECK(std::abs(inner(w, dw) - forward) < 1e-12 * scale * 10);
      CHECK(max_abs_diff(dx, dx1) < 1e-12);
      CHECK(max_abs_diff(dw, dw1) < 1e-10);
    }
    CHECK(max_abs_diff(dx3, dx1) < 1e-12);
    CHECK(max_abs_diff(dw3, dw1) < 1e-10);
    const double forward = inner(expected, g), scale = std::max(1.0, std::abs(forward));
    CHECK(std::abs(inner(x, dx1) - forward) < 1e-12 * scale * 10);
    CHECK(std::abs(inner(w, dw1) - forward) < 1e-12 * scale * 10);
    // float32 follows float64 to its own precision (F(4x4)'s: Note [Winograd schemes and dtypes]).
    const double outputs = max_abs_diff(expected, zeros(expected.shape())), inputs = max_abs_diff(dx1, zeros(c.x));
    CHECK(max_abs_diff(conv2d(x.to(DType::f32), w.to(DType::f32), o), expected) < 2e-5 * outputs);
    CHECK(max_abs_diff(conv2d_input_grad(g.to(DType::f32), w.to(DType::f32), c.x, o), dx1) < 2e-5 * inputs);
    CHECK(max_abs_diff(conv2d_weight_grad(x.to(DType::f32), g.to(DType::f32), c.w, o), dw1) < 1e-2);
  }
}

TEST_CASE("conv2d_grads equals conv2d_input_grad and conv2d_weight_grad bit for bit", "[conv][winograd]") {
  // Every geometry of conv_cases (im2col and Winograd routes), then batches that fill several
  // Winograd blocks, on 1 and 3 threads, in both dtypes.
  std::vector<ConvCase> cases = conv_cases();
  for (Padding mode : {Padding::zeros, Padding::circular}) {
    Conv2dOptions o;
    o.padding = {1, 1};
    o.padding_mode = mode;
    cases.push_back({{300, 8, 8, 8}, {5, 8, 3, 3}, o});
    cases.push_back({{70, 9, 5, 7}, {3, 9, 3, 3}, o});
    cases.push_back({{20, 8, 20, 20}, {3, 8, 3, 3}, o});
  }
  Rng rng(15);
  const int saved = get_num_threads();
  int winograd = 0;
  for (const auto& c : cases) {
    INFO(describe(c));
    winograd += detail::winograd_applies(detail::conv_geometry("test", c.x, c.w, c.options));
    for (DType dtype : {DType::f64, DType::f32})
      for (int threads : {1, 3}) {
        set_num_threads(threads);
        const Tensor x = rng.normal(c.x, 0, 1, dtype), w = rng.normal(c.w, 0, 1, dtype);
        const Tensor g = rng.normal(conv2d(x, w, c.options).shape(), 0, 1, dtype);
        const Conv2dGrads both = conv2d_grads(x, w, g, c.options);
        const Tensor dx = conv2d_input_grad(g, w, c.x, c.options), dw = conv2d_weight_grad(x, g, c.w, c.options);
        REQUIRE(both.input.shape() == c.x);
        REQUIRE(both.weight.shape() == c.w);
        CHECK(both.input.dtype() == dtype);
        CHECK(max_abs_diff(both.input, dx) == 0.0);
        CHECK(max_abs_diff(both.weight, dw) == 0.0);
      }
  }
  set_num_threads(saved);
  CHECK(winograd == 6);
  CHECK_THROWS_WITH(conv2d_grads(zeros({2, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({2, 4, 5, 5})),
                    Contains("conv2d_grads: grad_out is [2, 4, 5, 5] but conv2d of input [2, 3, 5, 5] and weight "
                             "[4, 3, 3, 3] gives [2, 4, 3, 3]"));
  CHECK_THROWS_AS(conv2d_grads(zeros({2, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({2, 4, 3, 3}, DType::f32)),
                  DTypeError);
}
