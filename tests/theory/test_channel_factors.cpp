// Channel-factored cotangents (nn::Cotangents): the dense form against a plain loop, finding the
// factors, Conv2d's rule given factors directly, and the structured NTK of CNNs whose segments
// between layers do or do not act on each channel alone, against Jacobian contraction.

#include <catch2/catch.hpp>

#include <limits>
#include <memory>
#include <string>

#include "autograd/ops.hpp"
#include "nn/conv.hpp"
#include "nn/cotangents.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "theory/ntk.hpp"
#include "tests/support/kernel_compare.hpp"

using namespace theta;
using theta::test::max_abs_diff;

namespace {

// Swaps the rows and columns of square feature maps: a segment whose backward pass only moves
// entries (its gradient may be a view of its cotangent).
class SwapRowsColumns : public nn::Cloneable<SwapRowsColumns> {
 public:
  autograd::Var forward(const autograd::Var& x) override { return autograd::transpose(x, 2, 3); }
  std::string describe() const override { return "SwapRowsColumns"; }
};

// v [n, C, H, W] with a 0/1 mask, as a ReLU makes it.
Tensor masked(Rng& rng, const Shape& shape) {
  const Tensor z = rng.normal(shape);
  return rng.normal(shape) * gt(z, zeros(shape)).to(DType::f64);
}

// d[i, a, c, p] = u[a, c] v[i, c, p] by a plain loop over every index.
Tensor outer_by_loop(const Tensor& u, const Tensor& v) {
  const std::int64_t n = v.size(0), m = u.size(0), c = u.size(1), l = v.numel() / (n * c);
  Tensor d = Tensor::empty({n, m, c, l});
  const Tensor uc = u.contiguous(), vc = v.contiguous();
  const double *pu = uc.data<double>(), *pv = vc.data<double>();
  double* pd = d.data<double>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < m; ++a)
      for (std::int64_t k = 0; k < c; ++k)
        for (std::int64_t p = 0; p < l; ++p) pd[((i * m + a) * c + k) * l + p] = pu[a * c + k] * pv[(i * c + k) * l + p];
  Shape shape{n, m};
  shape.insert(shape.end(), v.shape().begin() + 1, v.shape().end());
  return d.reshape(shape);
}

// The structured NTK of net equals Jacobian contraction to 1e-10: x1 with itself, x1 against x2,
// and the trace.
void check_structured_equals_contraction(nn::Module& net, const Tensor& x1, const Tensor& x2) {
  const theory::NtkOptions contraction{.method = theory::NtkMethod::contraction};
  const theory::NtkOptions structured{.method = theory::NtkMethod::structured};
  const Tensor want11 = theory::empirical_ntk(net, x1, x1, contraction);
  const double scale = max(abs(want11)).item();
  CHECK(max_abs_diff(theory::empirical_ntk(net, x1, x1, structured), want11) <= 1e-10 * scale);
  CHECK(max_abs_diff(theory::empirical_ntk(net, x1, x2, structured), theory::empirical_ntk(net, x1, x2, contraction)) <=
        1e-10 * scale);
  CHECK(max_abs_diff(theory::empirical_ntk_trace(net, x1, x2, structured),
                     theory::empirical_ntk_trace(net, x1, x2, contraction)) <= 1e-10 * scale);
}

}  // namespace

TEST_CASE("Cotangents: the dense form of channel factors, slots and errors", "[theory][ntk][conv]") {
  Rng rng(61);
  const Tensor u = rng.normal({3, 4}), v = rng.normal({2, 4, 3, 5});
  const nn::Cotangents c = nn::Cotangents::by_channel(u, v);
  CHECK(c.factored());
  CHECK(c.shape() == Shape{2, 3, 4, 3, 5});
  const Tensor want = outer_by_loop(u, v);
  CHECK(max_abs_diff(c.dense(), want) == 0.0);
  CHECK(max_abs_diff(c.slots(1, 3).dense(), want.slice(1, 1, 3)) == 0.0);
  const nn::Cotangents dense = want;
  CHECK_FALSE(dense.factored());
  CHECK(max_abs_diff(dense.slots(0, 1).dense(), want.slice(1, 0, 1)) == 0.0);
  CHECK_THROWS_AS(nn::Cotangents::by_channel(rng.normal({3, 5}), v), ShapeError);
  CHECK_THROWS_AS(nn::Cotangents::by_channel(u.to(DType::f32), v), DTypeError);
}

TEST_CASE("find_channel_factors recovers the factors and rejects cotangents that do not factor",
          "[theory][ntk][conv]") {
  Rng rng(62);
  Tensor u = rng.normal({4, 3});
  u.select(1, 1).fill_(0.0);  // a channel that is zero for every output
  Tensor v = masked(rng, {5, 3, 2, 4});
  v.select(0, 0).select(0, 2).fill_(0.0);  // channel 2 starts at the second sample
  const Tensor d = outer_by_loop(u, v);
  const auto found = nn::Cotangents::find_channel_factors(d);
  REQUIRE(found.has_value());
  CHECK(max_abs_diff(found->dense(), d) <= 1e-15 * max(abs(d)).item());
  CHECK(max(abs(found->u().select(1, 1))).item() == 0.0);
  for (const std::int64_t c : {0, 2}) CHECK(max(abs(found->u().select(1, c))).item() == 1.0);  // normalised
  // A deviation at the very last entry, far past rounding, and one slightly above it.
  for (const double size : {1e-3, 1e-11}) {
    Tensor bent = d.clone();
    const Tensor last = bent.select(0, 4).select(0, 3).select(0, 2);
    last.select(0, 1).select(0, 3).add_(full({}, size * max(abs(d)).item()));
    INFO("deviation " << size);
    CHECK_FALSE(nn::Cotangents::find_channel_factors(bent).has_value());
  }
  // A non-finite entry outside the row that fixes v is refused, not skipped.
  for (const double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    Tensor poisoned = d.clone();
    poisoned.select(0, 3).select(0, 1).select(0, 0).select(0, 0).select(0, 2).fill_(bad);
    INFO("entry " << bad);
    CHECK_FALSE(nn::Cotangents::find_channel_factors(poisoned).has_value());
  }
  CHECK_FALSE(nn::Cotangents::find_channel_factors(d + rng.normal(d.shape()) * 1e-6).has_value());
  CHECK_FALSE(nn::Cotangents::find_channel_factors(d.slice(1, 0, 1)).has_value());  // one slot
  CHECK_FALSE(nn::Cotangents::find_channel_factors(rng.normal({3, 4})).has_value());
}

TEST_CASE("Conv2d's rule given channel factors matches the dense cotangents, however each block normalises them",
          "[theory][ntk][conv]") {
  Rng rng(63);
  nn::Conv2d conv(2, 3, 3, rng, {.padding = 1});
  const Tensor a1 = rng.normal({9, 2, 5, 5}), a2 = rng.normal({7, 2, 5, 5});
  const Tensor u = rng.normal({4, 3});
  Tensor v1 = masked(rng, {9, 3, 5, 5});
  v1.select(1, 0).fill_(0.0);  // block 1 is zero in channel 0
  const Tensor v2 = masked(rng, {7, 3, 5, 5});
  // Block 2 normalised differently: u2 = u lambda, v2 / lambda per channel; block 1 with u = 0 in
  // its zero channel.
  const Tensor lambda = from_vector({2.0, -0.5, 4.0}, {1, 3});
  Tensor u1 = u.clone();
  u1.select(1, 0).fill_(0.0);
  const nn::Cotangents f1 = nn::Cotangents::by_channel(u1, v1);
  const nn::Cotangents f2 = nn::Cotangents::by_channel(u * lambda, v2 / lambda.reshape({1, 3, 1, 1}));
  const Tensor d1 = outer_by_loop(u, v1), d2 = outer_by_loop(u, v2);
  const int threads = get_num_threads();
  // The channel mixing splits blocks of rows over threads. A budget of 200 bytes takes one channel
  // at a time and blocks of 2 (same: five blocks, the middle one paired with itself,
  // the last one short) or 3 rows.
  for (const int t : {1, 2})
    for (const std::int64_t max_bytes : {std::int64_t{1} << 30, std::int64_t{200}}) {
      set_num_threads(t);
      for (const bool trace : {false, true})
        for (const bool same : {true, false}) {
          INFO("threads " << t << ", max_bytes " << max_bytes << ", trace " << trace << ", same " << same);
          conv.ntk_route = nn::ConvNtkRoute::weight_gradients;
          const Tensor want = conv.cotangent_kernel(a1, d1, same ? a1 : a2, same ? d1 : d2, same, trace, 1 << 30);
          conv.ntk_route = nn::ConvNtkRoute::automatic;
          const Tensor got = conv.cotangent_kernel(a1, f1, same ? a1 : a2, same ? f1 : f2, same, trace, max_bytes);
          const double scale = max(abs(want)).item();
          CHECK(max_abs_diff(got, want) <= 1e-12 * scale);
          // Factors that share no U fall back to the dense cotangents.
          const nn::Cotangents other = nn::Cotangents::by_channel(rng.normal({4, 3}), v2);
          if (!same) {
            conv.ntk_route = nn::ConvNtkRoute::weight_gradients;
            const Tensor plain = conv.cotangent_kernel(a1, d1, a2, other.dense(), false, trace, 1 << 30);
            conv.ntk_route = nn::ConvNtkRoute::automatic;
            const Tensor mixed = conv.cotangent_kernel(a1, f1, a2, other, false, trace, 1 << 30);
            CHECK(max_abs_diff(mixed, plain) <= 1e-12 * scale);
          }
        }
    }
  set_num_threads(threads);
  // The pullback from factors equals the pullback of the dense cotangents by transposed convolutions.
  conv.ntk_route = nn::ConvNtkRoute::weight_gradients;  // a forced route takes the plain pullback
  const Tensor plain = conv.input_cotangents(a1, d1);
  conv.ntk_route = nn::ConvNtkRoute::automatic;
  CHECK(max_abs_diff(conv.input_cotangents(a1, f1), plain) <= 1e-13 * max(abs(plain)).item());
}

TEST_CASE("the structured NTK stays exact when the segment between two layers mixes channels",
          "[theory][ntk][conv]") {
  // Conv -> ReLU -> X -> tanh -> X -> global pooling -> Linear, with X one 1x1 convolution used twice
  // (so not a structured layer of its own): the readout's input cotangents factor by channel, but
  // X mixes the channels on the way back to the first convolution. Without X the same net's
  // segment acts on each channel alone.
  Rng rng(64);
  const auto shared = std::make_shared<nn::Conv2d>(3, 3, 1, rng);
  for (const bool mixing : {true, false}) {
    INFO((mixing ? "mixing segment" : "channel-wise segment"));
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 5, 5}));
    net->add(std::make_shared<nn::Conv2d>(1, 3, 3, rng, nn::ConvOptions{.padding = 1}));
    net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
    if (mixing) net->add(shared);
    net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
    if (mixing) net->add(shared);
    net->add(std::make_shared<nn::GlobalAvgPool2d>());
    net->add(std::make_shared<nn::Linear>(3, 4, rng));
    const Tensor x1 = rng.normal({5, 25}), x2 = rng.normal({3, 25});
    check_structured_equals_contraction(*net, x1, x2);
  }
}

TEST_CASE("the structured NTK stays exact whatever the segment between two convolutions does",
          "[theory][ntk][conv]") {
  // Conv -> segment -> Conv -> global pooling -> Linear. The second convolution's pullback gives
  // dense cotangents at its input; the segment carries them back to the first convolution's
  // output. An activation acts on each element alone; a stride-1 average pooling keeps the shape
  // but mixes positions within a channel; a shared 1x1 convolution (not a structured layer: it is
  // used twice) mixes the channels; swapping rows and columns keeps the shape and moves every
  // entry. Each must give the contraction's kernel.
  Rng rng(65);
  const auto shared = std::make_shared<nn::Conv2d>(3, 3, 1, rng);
  for (const std::string segment : {"tanh", "relu then tanh", "average pooling", "channel mixing", "swap"}) {
    INFO("segment: " << segment);
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 5, 5}));
    net->add(std::make_shared<nn::Conv2d>(1, 3, 3, rng, nn::ConvOptions{.padding = 1}));
    if (segment == "tanh") net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
    if (segment == "relu then tanh") {
      net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
      net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
    }
    if (segment == "average pooling") net->add(std::make_shared<nn::AvgPool2d>(3, 1, 1));
    if (segment == "swap") net->add(std::make_shared<SwapRowsColumns>());
    if (segment == "channel mixing") {
      net->add(shared);
      net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
      net->add(shared);
    }
    net->add(std::make_shared<nn::Conv2d>(3, 4, 3, rng, nn::ConvOptions{.padding = 1}));
    net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
    net->add(std::make_shared<nn::GlobalAvgPool2d>());
    net->add(std::make_shared<nn::Linear>(4, 3, rng));
    const Tensor x1 = rng.normal({5, 25}), x2 = rng.normal({4, 25});
    check_structured_equals_contraction(*net, x1, x2);
  }
}
