// Conv2d, pooling, Unflatten, BatchNorm2d, the residual convolution block and the CNN builder,
// against reference loops, closed forms and finite differences.

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>

#include "nn/conv.hpp"
#include "nn/train.hpp"
#include "tensor/ops.hpp"
#include "tests/support/gradcheck.hpp"

using namespace theta;
using namespace theta::nn;
using Catch::Contains;
using theta::autograd::Var;

namespace {

// out[n, o, y, x] = scale * sum_{c, i, j} w[o, c, i, j] x[n, c, y s + i d - p, x s + j d - p] + bias_scale * b[o]
// by loops, reading outside the image as zero or (circular) modulo the size.
Tensor reference_conv(const Tensor& x, const Tensor& w, const Tensor& b, std::int64_t stride, std::int64_t padding,
                      std::int64_t dilation, bool circular, double scale, double bias_scale) {
  const std::int64_t n = x.size(0), c_in = x.size(1), h = x.size(2), wd = x.size(3);
  const std::int64_t c_out = w.size(0), k = w.size(2);
  const std::int64_t h_out = (h + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  const std::int64_t w_out = (wd + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  Tensor out = zeros({n, c_out, h_out, w_out});
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t o = 0; o < c_out; ++o)
      for (std::int64_t oy = 0; oy < h_out; ++oy)
        for (std::int64_t ox = 0; ox < w_out; ++ox) {
          double acc = 0;
          for (std::int64_t c = 0; c < c_in; ++c)
            for (std::int64_t i = 0; i < k; ++i)
              for (std::int64_t j = 0; j < k; ++j) {
                std::int64_t iy = oy * stride + i * dilation - padding, ix = ox * stride + j * dilation - padding;
                if (circular) {
                  iy = (iy % h + h) % h;
                  ix = (ix % wd + wd) % wd;
                } else if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                  continue;
                }
                acc += w.at({o, c, i, j}) * x.at({s, c, iy, ix});
              }
          out.data<double>()[((s * c_out + o) * h_out + oy) * w_out + ox] =
              scale * acc + (b.defined() ? bias_scale * b.at({o}) : 0.0);
        }
  return out;
}

}  // namespace

TEST_CASE("Conv2d matches a reference loop in both parameterisations and padding modes", "[nn][conv]") {
  Rng rng(7);
  const Tensor x = rng.normal({2, 3, 6, 5});
  struct Case {
    ConvOptions options;
    const char* label;
  };
  const Case cases[] = {
      {{}, "standard, no padding"},
      {{.stride = 2, .padding = 1, .dilation = 1}, "stride 2, padding 1"},
      {{.padding = 2, .dilation = 2}, "dilation 2"},
      {{.padding = 1, .padding_mode = Padding::circular}, "circular"},
      {{.padding = 1, .bias = false}, "no bias"},
      {{.padding = 1, .parameterization = Parameterization::ntk, .sigma_w = 1.4, .sigma_b = 0.3}, "ntk"},
  };
  for (const auto& c : cases) {
    INFO(c.label);
    Conv2d conv(3, 4, 3, rng, c.options);
    CHECK(conv.weight().shape() == Shape{4, 3, 3, 3});
    const Tensor y = conv(Var(x)).value();
    const double scale = c.options.parameterization == Parameterization::ntk ? 1.4 / std::sqrt(27.0) : 1.0;
    const double bias_scale = c.options.parameterization == Parameterization::ntk ? 0.3 : 1.0;
    const Tensor want = reference_conv(x, conv.weight().value(), c.options.bias ? conv.bias().value() : Tensor(),
                                       c.options.stride, c.options.padding, c.options.dilation,
                                       c.options.padding_mode == Padding::circular, scale, bias_scale);
    REQUIRE(y.shape() == want.shape());
    CHECK(allclose(y, want, 1e-12, 1e-13));
  }
}

TEST_CASE("Conv2d initialisation: PyTorch's uniform bound in standard, N(0, 1) in NTK parameterisation",
          "[nn][conv]") {
  Rng rng(3);
  Conv2d standard(8, 16, 3, rng);
  const double bound = 1.0 / std::sqrt(72.0);
  CHECK(max(abs(standard.weight().value())).item() <= bound);
  CHECK(max(abs(standard.bias().value())).item() <= bound);
  // Uniform(-b, b) has variance b^2 / 3: 1152 draws put the sample variance within 10%.
  CHECK(mean(square(standard.weight().value())).item() == Approx(bound * bound / 3).epsilon(0.1));
  Conv2d ntk(8, 16, 3, rng, {.parameterization = Parameterization::ntk});
  CHECK(mean(square(ntk.weight().value())).item() == Approx(1.0).epsilon(0.1));
  CHECK(ntk.weight_scale() == Approx(1.0 / std::sqrt(72.0)));
}

TEST_CASE("a CNN's parameter gradients and Hessian-vector products agree with finite differences", "[nn][conv]") {
  Rng rng(11);
  auto net = cnn({.image = {2, 5, 5}, .channels = {3, 4}, .out_features = 2, .activation = ActivationKind::tanh}, rng);
  const Tensor x = rng.normal({3, 50});
  const std::vector<Var> params = net->parameters();
  std::vector<Tensor> values;
  for (const Var& p : params) values.push_back(p.value().clone());
  // The loss as a function of the parameters: the layers replayed with the given tensors.
  const theta::testing::GradFunction loss = [&](const std::vector<Var>& p) {
    Var h = Var(x);
    std::size_t next = 0;
    for (std::size_t layer = 0; layer < net->size(); ++layer) {
      Module& mod = net->at(layer);
      if (auto* conv = dynamic_cast<Conv2d*>(&mod)) {
        h = autograd::conv2d(h, p[next], conv->geometry()) + autograd::reshape(p[next + 1], {conv->out_channels(), 1, 1});
        next += 2;
      } else if (dynamic_cast<Linear*>(&mod) != nullptr) {
        h = autograd::linear(h, p[next]) + p[next + 1];
        next += 2;
      } else {
        h = mod(h);
      }
    }
    return autograd::sum(autograd::square(h));
  };
  // The hand-written replay is the model itself:
  std::vector<Var> leaves;
  for (const Tensor& v : values) leaves.push_back(Var(v));
  CHECK(loss(leaves).value().item() == Approx(autograd::sum(autograd::square((*net)(Var(x)))).value().item()).epsilon(1e-13));
  const auto first = theta::testing::gradcheck(loss, values);
  INFO(first.message);
  CHECK(first.ok);
  const auto second = theta::testing::gradgradcheck(loss, values);
  INFO(second.message);
  CHECK(second.ok);
}

TEST_CASE("AvgPool2d, GlobalAvgPool2d and Unflatten", "[nn][conv]") {
  Rng rng(5);
  const Tensor x = rng.normal({2, 3, 4, 6});
  AvgPool2d pool(2);
  const Tensor y = pool(Var(x)).value();
  REQUIRE(y.shape() == Shape{2, 3, 2, 3});
  CHECK(y.at({1, 2, 1, 2}) == Approx((x.at({1, 2, 2, 4}) + x.at({1, 2, 2, 5}) + x.at({1, 2, 3, 4}) + x.at({1, 2, 3, 5})) / 4));
  const Tensor g = GlobalAvgPool2d()(Var(x)).value();
  REQUIRE(g.shape() == Shape{2, 3});
  CHECK(allclose(g, mean(x, {2, 3}), 1e-14, 1e-15));
  Unflatten unflatten({3, 4, 6});
  CHECK(to_vector(unflatten(Var(x.reshape({2, 72}))).value()) == to_vector(x));
  CHECK_THROWS_WITH(unflatten(Var(x.reshape({2, 71 + 1, 1}))), Contains("expected input [n, 72]"));
  CHECK_THROWS_WITH(AvgPool2d(2, 0, 2), Contains("padding"));
  CHECK_THROWS_WITH(pool(Var(x.reshape({2, 72}))), Contains("[n, C, H, W]"));
}

TEST_CASE("BatchNorm2d: per-channel batch statistics over batch and pixels, running statistics, eval",
          "[nn][conv]") {
  Rng rng(9);
  const Tensor x = rng.normal({4, 3, 2, 5}) * 2.0 + 1.0;
  BatchNorm2d bn(3, {.eps = 0.0});
  const Tensor y = bn(Var(x)).value();
  CHECK(max(abs(mean(y, {0, 2, 3}))).item() < 1e-14);
  CHECK(max(abs(mean(square(y), {0, 2, 3}) - 1.0)).item() < 1e-13);
  // Running statistics: 0.9 * initial + 0.1 * batch statistics, the variance unbiased (40 values).
  const auto state = bn.named_buffers();
  const Tensor mu = mean(x, {0, 2, 3});
  const Tensor var_unbiased = sum(square(x - mu.reshape({1, 3, 1, 1})), {0, 2, 3}) / 39.0;
  REQUIRE(state.size() == 2);
  REQUIRE((state[0].first == "running_mean" && state[1].first == "running_var"));
  CHECK(allclose(state[0].second, mu * 0.1, 1e-13, 1e-15));
  CHECK(allclose(state[1].second, var_unbiased * 0.1 + 0.9, 1e-13, 1e-15));
  // eps = 0: scaling the input leaves the output unchanged (the scale symmetry is exact).
  CHECK(allclose(bn(Var(x * 3.7)).value(), y, 1e-13, 1e-14));
  bn.eval();
  const Tensor rm = bn.named_buffers()[0].second, rv = bn.named_buffers()[1].second;
  const Tensor want = (x - rm.reshape({1, 3, 1, 1})) / sqrt(rv.reshape({1, 3, 1, 1}));
  CHECK(allclose(bn(Var(x)).value(), want, 1e-13, 1e-14));
  CHECK_THROWS_WITH(bn(Var(rng.normal({4, 2, 2, 5}))), Contains("expected input [n, 3, H, W], got [4, 2, 2, 5]"));
}

TEST_CASE("residual_conv_block keeps the shape and adds its body to the input; cnn builds the named layers",
          "[nn][conv]") {
  Rng rng(13);
  auto block = residual_conv_block(4, 3, rng, {.padding_mode = Padding::circular});
  const Tensor x = rng.normal({2, 4, 5, 5});
  const Tensor y = (*block)(Var(x)).value();
  REQUIRE(y.shape() == x.shape());
  CHECK(allclose(y - x, block->body()(Var(x)).value(), 1e-14, 1e-15));
  CHECK_THROWS_WITH(residual_conv_block(4, 2, rng), Contains("odd"));

  auto net = cnn({.image = {1, 8, 8}, .channels = {3, 5}, .out_features = 10}, rng);
  CHECK(net->describe().find("Conv2d(1 -> 3, kernel 3, padding 1, bias)") != std::string::npos);
  const auto names = net->named_parameters();
  REQUIRE(names.size() == 6);
  CHECK(names[0].first == "layers.1.weight");
  CHECK(names[2].first == "layers.3.weight");
  CHECK(names[4].first == "layers.6.weight");
  CHECK((*net)(Var(rng.normal({7, 64}))).shape() == Shape{7, 10});
  auto flat = cnn({.image = {1, 8, 8}, .channels = {3}, .out_features = 2, .readout = CnnReadout::flatten}, rng);
  CHECK(flat->named_parameters()[2].second.shape() == Shape{2, 192});
}

TEST_CASE("Conv2d errors name the layer and the shapes", "[nn][conv]") {
  Rng rng(1);
  Conv2d conv(3, 4, 3, rng);
  CHECK_THROWS_AS(conv(Var(rng.normal({2, 2, 5, 5}))), ShapeError);
  CHECK_THROWS_WITH(conv(Var(rng.normal({2, 2, 5, 5}))),
                    Contains("Conv2d(3 -> 4, kernel 3, bias): expected input [n, 3, H, W], got [2, 2, 5, 5]"));
  CHECK_THROWS_WITH(conv(Var(rng.normal({2, 3, 2, 2}))), Contains("kernel"));
  CHECK_THROWS_AS(conv(Var(rng.normal({2, 3, 5, 5}).to(DType::f32))), DTypeError);
  CHECK_THROWS_WITH(Conv2d(3, 0, 3, rng), Contains("positive"));
  CHECK_THROWS_WITH(Conv2d(3, 4, 3, rng, {.stride = 0}), Contains("stride"));
  // Sizes whose products would overflow are refused, not wrapped around.
  const std::int64_t huge = std::int64_t{1} << 40;
  CHECK_THROWS_WITH(Unflatten({huge, huge, huge}), Contains("below 2^63"));
  CHECK_THROWS_WITH(theta::avg_pool2d(ones({1, 1, 4, 4}), {std::int64_t{1} << 32, 4}, {1, 1}, {std::int64_t{1} << 31, 0}),
                    Contains("below 2^31"));
  CHECK_THROWS_WITH(theta::conv2d(ones({1, 1, 4, 4}), ones({1, 1, 3, 3}), {.padding = {std::int64_t{1} << 62, 0}}),
                    Contains("below 2^31"));
  CHECK_THROWS_WITH(BatchNorm2d(3, {.momentum = 2.0}), Contains("momentum must be in [0, 1]"));
}
