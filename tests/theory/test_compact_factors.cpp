// Compact factors (Note [Compact factors] in theory/ntk_compact_factors.cpp): cotangents of
// blocks of samples merged over one u, Conv2d's features against its own routes, and the kernel
// from factors formed a block of rows at a time against the whole batch's factors and Jacobian
// contraction.

#include <catch2/catch.hpp>

#include <vector>

#include "nn/conv.hpp"
#include "nn/cotangents.hpp"
#include "tensor/ops.hpp"
#include "tensor/storage.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_blocks.hpp"
#include "tests/support/kernel_compare.hpp"

using namespace theta;
using theta::test::max_abs_diff;

namespace {

nn::CnnOptions small_cnn(std::int64_t c1, std::int64_t c2) {
  return {.image = {1, 8, 8},
          .channels = {c1, c2},
          .kernel_size = 3,
          .out_features = 4,
          .parameterization = nn::Parameterization::ntk,
          .dtype = DType::f64};
}

}  // namespace

namespace {
// Blocks of rows 0..3 and 4..5 through CotangentRows.
nn::Cotangents written(const nn::Cotangents& b1, const nn::Cotangents& b2) {
  nn::CotangentRows rows(6);
  rows.put(4, b2);  // blocks may come in any order
  rows.put(0, b1);
  return rows.take();
}
}  // namespace

TEST_CASE("CotangentRows brings factored blocks to one u", "[cotangents][ntk]") {
  Rng rng(31);
  const Tensor u = rng.normal({3, 5});
  const Tensor v1 = rng.normal({4, 5, 6}), v2 = rng.normal({2, 5, 6});
  const Tensor want = concat({nn::Cotangents::by_channel(u, v1).dense(), nn::Cotangents::by_channel(u, v2).dense()}, 0);

  SECTION("blocks normalised differently, one of them zero in a channel") {
    // Block 2's u is block 1's scaled per channel (as if normalised at another output); channel 0
    // of block 1 is zero, so block 2's column is the reference there.
    const Tensor scale = from_vector(std::vector<double>{2.0, -0.5, 3.0, 1.0, 0.25}, {1, 5});
    Tensor u1 = u.clone();
    u1.select(1, 0).fill_(0.0);
    const Tensor z1 = v1.clone();
    z1.select(1, 0).fill_(0.0);
    const nn::Cotangents b1 = nn::Cotangents::by_channel(u1, v1);
    const nn::Cotangents b2 = nn::Cotangents::by_channel(u * scale, v2 / scale.reshape({1, 5, 1}));
    const nn::Cotangents merged = written(b1, b2);
    REQUIRE(merged.factored());
    const Tensor expect = concat({nn::Cotangents::by_channel(u, z1).dense(), nn::Cotangents::by_channel(u, v2).dense()}, 0);
    CHECK(max_abs_diff(merged.dense(), expect) < 1e-14);
  }
  SECTION("columns that are not proportional give the dense concatenation") {
    Tensor u2 = u.clone();
    u2.select(1, 2).select(0, 1).fill_(u.select(1, 2).select(0, 1).item() + 1.0);
    const nn::Cotangents b1 = nn::Cotangents::by_channel(u, v1), b2 = nn::Cotangents::by_channel(u2, v2);
    CHECK_FALSE(nn::Cotangents::common_u({b1, b2}).has_value());
    const nn::Cotangents merged = written(b1, b2);
    CHECK_FALSE(merged.factored());
    CHECK(max_abs_diff(merged.dense(), concat({b1.dense(), b2.dense()}, 0)) == 0.0);
  }
  SECTION("a dense block, after or before a factored one, gives the dense concatenation") {
    const nn::Cotangents b1 = nn::Cotangents::by_channel(u, v1), b2 = nn::Cotangents::by_channel(u, v2);
    for (const nn::Cotangents& merged : {written(b1, b2.dense()), written(b1.dense(), b2)}) {
      CHECK_FALSE(merged.factored());
      CHECK(max_abs_diff(merged.dense(), want) < 1e-15);
    }
  }
  SECTION("blocks that do not make one batch are refused with their shapes") {
    nn::CotangentRows rows(6);
    rows.put(0, nn::Cotangents::by_channel(u, v1));
    CHECK_THROWS_AS(rows.put(4, nn::Cotangents::by_channel(rng.normal({3, 4}), rng.normal({2, 4, 6}))), ShapeError);
    CHECK_THROWS_AS(rows.put(4, nn::Cotangents::by_channel(u, rng.normal({2, 5, 7}))), ShapeError);
    CHECK_THROWS_AS(rows.put(5, nn::Cotangents::by_channel(u, v2)), ShapeError);  // rows 5..6 of 6
  }
}

TEST_CASE("Conv2d's cotangent features give its weight-gradient block", "[conv][ntk]") {
  Rng rng(32);
  nn::Conv2d conv(3, 5, 3, rng, {.padding = 1, .parameterization = nn::Parameterization::ntk});
  const Tensor a = rng.normal({6, 3, 6, 6});
  const Tensor d = rng.normal({6, 4, 5, 6, 6});  // dense, not factored by channel
  // 28 taps < 36 pixels: features are fewer numbers than the cotangents.
  CHECK(conv.prefers_features(a, d));
  const Tensor phi = conv.cotangent_features(a, d);
  REQUIRE(phi.shape() == Shape{6, 4, 5 * 28});
  // <phi[i, a], phi[j, b]> against the rule's block by pixel pairs (a second algorithm).
  conv.ntk_route = nn::ConvNtkRoute::pixel_pairs;
  const Tensor want = conv.cotangent_kernel(a, d, a, d, true, false, 1 << 30);
  const Tensor got = matmul(phi.reshape({24, 140}), phi.reshape({24, 140}).t()).reshape({6, 4, 6, 4}).permute({0, 2, 1, 3});
  CHECK(max_abs_diff(got, want) <= 1e-12 * max(abs(want)).item());
  CHECK_FALSE(conv.prefers_features(a, d));  // the pixel-pair route was forced
  conv.ntk_route = nn::ConvNtkRoute::automatic;
  // Factored cotangents keep the channel route; more taps than pixels keep the cotangents.
  CHECK_FALSE(conv.prefers_features(a, nn::Cotangents::by_channel(rng.normal({4, 5}), rng.normal({6, 5, 6, 6}))));
  nn::Conv2d wide(8, 5, 3, rng, {.padding = 1});
  CHECK_FALSE(wide.prefers_features(rng.normal({6, 8, 6, 6}), d));
}

TEST_CASE("Compact factors give the whole batch's kernel with less memory", "[ntk][conv]") {
  Rng rng(33);
  const std::int64_t n = 70, outputs = 4, c1 = 6;
  auto net = nn::cnn(small_cnn(c1, 16), rng);
  const Tensor x = Rng(34).uniform({n, 64});
  const Tensor x2 = Rng(35).uniform({9, 64});
  // A budget of 1 MiB: blocks of 32, 32 and 6 rows.
  const std::int64_t budget = 1 << 20;
  using namespace theory::detail;
  const auto whole_kernel = [&](KernelForm form, std::int64_t output) {
    BlockFactors f = block_factors(*net, x, "test");
    return structured_block_kernel(*net, f, f, true, form, budget, output, FactorUse::consume);
  };
  const auto compact_kernel = [&](KernelForm form, std::int64_t output) {
    BlockFactors f = compact_block_factors(*net, x, "test", budget);
    return structured_block_kernel(*net, f, f, true, form, budget, output, FactorUse::consume);
  };
  {
    // The first convolution keeps features, the second its factored cotangents.
    const BlockFactors f = compact_block_factors(*net, x, "test", budget);
    REQUIRE(f.features.size() == 3);
    CHECK(f.features[0].shape() == Shape{n, outputs, c1 * 10});
    CHECK_FALSE(f.output_grads[0].defined());
    CHECK(f.output_grads[1].factored());
    CHECK(f.output_grads[1].rows() == n);
    CHECK_FALSE(f.features[1].defined());
  }
  for (const KernelForm form : {KernelForm::full, KernelForm::trace, KernelForm::output}) {
    const Tensor want = whole_kernel(form, 2), got = compact_kernel(form, 2);
    INFO("form " << static_cast<int>(form));
    CHECK(max_abs_diff(got, want) <= 1e-12 * max(abs(want)).item());
  }
  // Through the public calls: against Jacobian contraction, with itself and against other inputs
  // (one side compact, the other paired with it).
  const theory::NtkOptions small{.max_bytes = budget};
  const theory::NtkOptions contraction{.method = theory::NtkMethod::contraction};
  const Tensor k = theory::empirical_ntk(*net, x, x, small);
  const double scale = max(abs(k)).item();
  CHECK(max_abs_diff(k, theory::empirical_ntk(*net, x, x, contraction)) <= 1e-10 * scale);
  CHECK(max_abs_diff(k, k.permute({1, 0, 3, 2})) == 0.0);
  CHECK(max_abs_diff(theory::empirical_ntk(*net, x, x2, small), theory::empirical_ntk(*net, x, x2, contraction)) <=
        1e-10 * scale);
  CHECK(max_abs_diff(theory::empirical_ntk_trace(*net, x2, x, small),
                     theory::empirical_ntk_trace(*net, x2, x, contraction)) <= 1e-10 * scale);

  // Memory: the factors' peak over the live bytes at the start, whole batch against compact.
  const auto peak_of = [&](auto&& run) {
    const std::int64_t before = allocator_stats().live_bytes;
    reset_peak_live_bytes();
    const Tensor kernel = run();
    return allocator_stats().peak_live_bytes - before - static_cast<std::int64_t>(kernel.numel() * 8);
  };
  const std::int64_t whole = peak_of([&] { return whole_kernel(KernelForm::full, 0); });
  const std::int64_t compact = peak_of([&] { return compact_kernel(KernelForm::full, 0); });
  // The whole batch holds the first convolution's dense cotangents [n, O, C1, 8, 8] at once.
  const std::int64_t first_cotangents = n * outputs * c1 * 64 * 8;
  INFO("peak besides the kernel: whole batch " << whole << " bytes, compact " << compact << " bytes");
  CHECK(compact <= whole - first_cotangents / 2);
}
