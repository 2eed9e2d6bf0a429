// The pieces of the structured NTK's cotangent pullback (Note [Cotangent pullback]): each rule's
// input_cotangents against autograd's vector-Jacobian products, and add_feature_gram against a
// plain loop. The whole kernel with and without chains is checked against Jacobian contraction
// in test_ntk_conv.cpp and test_ntk.cpp.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/conv.hpp"
#include "nn/layer_support.hpp"
#include "nn/layers.hpp"
#include "nn/structured.hpp"
#include "tensor/ops.hpp"
#include "tests/support/kernel_compare.hpp"
#include "tests/support/thread_count.hpp"

using namespace theta;
using theta::autograd::Var;
using theta::test::max_abs_diff;

namespace {

// The input cotangents of every slot d[:, a] by one backward pass of the layer each: [n, m, ...].
Tensor vjp_per_slot(nn::Module& layer, const Tensor& a, const Tensor& d) {
  std::vector<Tensor> slots;
  for (std::int64_t s = 0; s < d.size(1); ++s) {
    const Var x(a, true);
    const Var y = layer(x);
    slots.push_back(autograd::grad({y}, {x}, {Var(d.select(1, s).contiguous())})[0].value().unsqueeze(1));
  }
  return concat(slots, 1);
}

// Cotangents [n, m, C, H, W] that factor by channel, d[i, a, c] = U[a, c] V[i, c] with a 0/1 mask in
// V (as an activation followed by pooling and a linear readout make them), or random ones.
Tensor cotangents(Rng& rng, const Shape& out_shape, std::int64_t m, bool factored) {
  const std::int64_t n = out_shape[0], c = out_shape[1], h = out_shape[2], w = out_shape[3];
  if (!factored) return rng.normal({n, m, c, h, w});
  const Tensor z = rng.normal({n, 1, c, h, w});
  return rng.normal({n, 1, c, h, w}) * gt(z, zeros(z.shape())) * rng.normal({1, m, c, 1, 1});
}

}  // namespace

TEST_CASE("Conv2d's input_cotangents equal one backward pass per cotangent slot", "[theory][ntk][conv]") {
  Rng rng(41);
  struct Config {
    nn::ConvOptions options;
    std::int64_t kernel;
    const char* name;
  };
  const Config configs[] = {
      {{.padding = 1}, 3, "same size, zero padding"},
      {{.padding = 1, .padding_mode = Padding::circular}, 3, "same size, circular"},
      {{.padding = 2, .dilation = 2}, 3, "dilated, same size"},
      {{}, 3, "no padding (smaller output)"},
      {{.padding = 1, .parameterization = nn::Parameterization::ntk, .sigma_w = 1.7}, 3, "ntk parameterisation"},
      {{.stride = 2, .padding = 1}, 3, "stride 2"},
      {{.padding = 1, .padding_mode = Padding::circular}, 4, "circular, even kernel (smaller output)"},
      {{.bias = false}, 2, "even kernel, no bias"},
  };
  for (const Config& config : configs)
    for (const bool factored : {true, false})
      for (const auto route : {nn::ConvNtkRoute::automatic, nn::ConvNtkRoute::weight_gradients}) {
        INFO(config.name << (factored ? ", factored" : ", random") << " cotangents, route "
                         << (route == nn::ConvNtkRoute::automatic ? "automatic" : "plain"));
        nn::Conv2d conv(3, 5, config.kernel, rng, config.options);
        conv.ntk_route = route;
        const Tensor a = rng.normal({4, 3, 7, 6});
        const Var y = conv(Var(a));
        const Tensor d = cotangents(rng, y.shape(), 3, factored);
        const Tensor want = vjp_per_slot(conv, a, d);
        const Tensor got = conv.input_cotangents(a, d);
        REQUIRE(got.shape() == want.shape());
        CHECK(max_abs_diff(got, want) <= 1e-12 * max(abs(want)).item());
      }
}

TEST_CASE("Linear's input_cotangents equal one backward pass per cotangent slot", "[theory][ntk]") {
  Rng rng(43);
  for (const auto p : {nn::Parameterization::standard, nn::Parameterization::ntk}) {
    nn::Linear linear(6, 4, rng, {.parameterization = p, .sigma_w = 1.4, .sigma_b = 0.3});
    const Tensor a = rng.normal({5, 6}), d = rng.normal({5, 3, 4});
    const Tensor want = vjp_per_slot(linear, a, d);
    CHECK(max_abs_diff(linear.input_cotangents(a, d), want) <= 1e-13 * max(abs(want)).item());
  }
}

TEST_CASE("Linear's NTK block with cotangents every sample shares equals the per-sample gradients' products",
          "[theory][ntk]") {
  // K[i, j, a, b] = <J_i^T d1[i, a], J_j^T d2[j, b]>, summed over the parameters' per-sample
  // gradients. Shared cotangents (the outputs' own, a general D with zeros, one output) take the
  // product of the shared cotangents (Note [Shared cotangents]); cotangents that differ in one
  // entry of one sample, and a non-finite input, take the feature Gram.
  Rng rng(61);
  const int threads = GENERATE(1, 2);
  const test::ThreadCount thread_count(threads);
  nn::Linear linear(6, 4, rng, {.parameterization = nn::Parameterization::ntk, .sigma_w = 1.3, .sigma_b = 0.4});
  const Tensor a1 = rng.normal({5, 6}), a2 = rng.normal({3, 6});
  const auto broadcast = [](const Tensor& d, std::int64_t n) {
    return d.unsqueeze(0).expand({n, d.size(0), d.size(1)}).contiguous();
  };
  Tensor general = rng.normal({3, 4});
  general.select(0, 1).select(0, 2).fill_(0.0);
  Tensor one_differs = broadcast(eye(4), 5);
  one_differs.select(0, 3).select(0, 1).select(0, 2).fill_(0.25);
  struct Case {
    const char* name;
    Tensor d1, d2;
  };
  const std::vector<Case> cases = {
      {"the outputs' own cotangents", broadcast(eye(4), 5), broadcast(eye(4), 3)},
      {"a shared D with zeros", broadcast(general, 5), broadcast(general * 2.0, 3)},
      {"one output", broadcast(general.slice(0, 0, 1), 5), broadcast(general.slice(0, 2, 3), 3)},
      {"one sample differs", one_differs, broadcast(eye(4), 3)},
  };
  // The per-sample gradients of every slot: [n, m, P].
  const auto gradients = [&](const Tensor& a, const Tensor& d) {
    std::vector<Tensor> slots;
    for (std::int64_t s = 0; s < d.size(1); ++s) {
      std::vector<Tensor> flat;
      for (const Tensor& g : linear.per_sample_gradients(a, d.select(1, s).contiguous()))
        flat.push_back(g.reshape({a.size(0), -1}));
      slots.push_back(concat(flat, 1).unsqueeze(1));
    }
    return concat(slots, 1);
  };
  for (const Case& c : cases)
    for (const bool same : {true, false})
      for (const bool trace : {false, true}) {
        INFO(c.name << ", same " << same << ", trace " << trace << ", " << threads << " thread(s)");
        const Tensor& b = same ? a1 : a2;
        const Tensor& d2 = same ? c.d1 : c.d2;
        const Tensor g1 = gradients(a1, c.d1), g2 = gradients(b, d2);  // [n, m, P]
        const std::int64_t n1 = g1.size(0), n2 = g2.size(0), m = g1.size(1);
        const Tensor full = matmul(g1.reshape({n1 * m, -1}), g2.reshape({n2 * m, -1}).t())
                                .reshape({n1, m, n2, m})
                                .permute({0, 2, 1, 3});
        Tensor want = full;
        if (trace) {
          want = zeros({n1, n2});
          for (std::int64_t a = 0; a < m; ++a) want = want + full.select(3, a).select(2, a);
        }
        const Tensor got = linear.cotangent_kernel(a1, c.d1, b, d2, same, trace, 1 << 30);
        CHECK(max_abs_diff(got, want) <= 1e-13 * max(abs(want)).item());
      }
  // An infinite input of sample 2 makes its per-sample gradients NaN or infinite: every entry of
  // its blocks must be non-finite, off the diagonal too (skipping G's zeros would leave them 0).
  Tensor a_inf = a1.clone();
  a_inf.select(0, 2).select(0, 0).fill_(std::numeric_limits<double>::infinity());
  const Tensor k_inf =
      linear.cotangent_kernel(a_inf, broadcast(eye(4), 5), a2, broadcast(eye(4), 3), false, false, 1 << 30).contiguous();
  const Tensor row = k_inf.select(0, 2).contiguous();
  for (std::int64_t e = 0; e < row.numel(); ++e) {
    INFO("entry " << e);
    CHECK(!std::isfinite(row.data<double>()[e]));
  }
  CHECK(all_finite(k_inf.select(0, 1)));
}

TEST_CASE("input_cotangents reject cotangents that do not match the layer's output", "[theory][ntk][conv]") {
  Rng rng(47);
  nn::Conv2d conv(2, 3, 3, rng, {.padding = 1});
  CHECK_THROWS_AS(conv.input_cotangents(rng.normal({2, 2, 5, 5}), zeros({2, 1, 3, 5, 4})), ShapeError);
  CHECK_THROWS_AS(conv.input_cotangents(rng.normal({2, 2, 5, 5}), zeros({3, 1, 3, 5, 5})), ShapeError);
  nn::Linear linear(4, 2, rng);
  CHECK_THROWS_AS(linear.input_cotangents(rng.normal({3, 4}), zeros({3, 2, 3})), ShapeError);
}

TEST_CASE("balanced_block_rows makes as many blocks as the threads split evenly", "[theory][ntk]") {
  using nn::detail::balanced_block_rows;
  for (const int threads : {1, 2, 3}) {
    const test::ThreadCount thread_count(threads);
    for (const bool paired : {false, true})
      for (const std::int64_t n : {1, 2, 5, 9, 13, 200, 256, 1797})
        for (const std::int64_t max_rows : {1, 2, 3, 16, 20, 64, 5000}) {
          INFO(threads << " thread(s), paired " << paired << ", n " << n << ", max_rows " << max_rows);
          const std::int64_t rows = balanced_block_rows(n, max_rows, paired);
          const std::int64_t blocks = (n + rows - 1) / rows, unit = (paired ? 2 : 1) * threads;
          const std::int64_t needed = (n + max_rows - 1) / max_rows;  // blocks of max_rows
          const std::int64_t even = (needed + unit - 1) / unit * unit;
          CHECK(rows >= 1);
          CHECK(rows <= max_rows);   // never larger blocks than asked
          CHECK(blocks >= needed);
          CHECK(blocks <= std::max(even, needed));
          if (even <= n && n % even == 0) CHECK(blocks == even);  // then exactly a multiple of the unit
        }
  }
  // The digits CNN's first convolution: 20-row panels of 256 rows, paired.
  {
    const test::ThreadCount two(2);
    CHECK(balanced_block_rows(256, 20, true) == 16);  // 16 panels, 4 pairs per thread
  }
  {
    const test::ThreadCount one(1);
    CHECK(balanced_block_rows(256, 20, true) == 19);  // 14 panels
  }
}

TEST_CASE("add_feature_gram adds scaled feature products block by block, in panels", "[theory][ntk]") {
  Rng rng(53);
  // m = 16 and n = 200 make several panels of rows, so their seams are crossed; on two threads the
  // panels are shared out.
  const int threads = GENERATE(1, 2);
  const test::ThreadCount thread_count(threads);
  INFO(threads << " thread(s)");
  const std::int64_t n1 = 200, n2 = 37, m = 16, w = 3;
  const Tensor f1 = rng.normal({n1 * m, w}), f2 = rng.normal({n2 * m, w});
  const Tensor scale11 = rng.normal({n1, n1}), scale12 = rng.normal({n1, n2});
  const auto reference = [&](const Tensor& a, const Tensor& b, const Tensor& s, std::int64_t rows, std::int64_t cols) {
    const Tensor prod = matmul(a, b.t()).reshape({rows, m, cols, m}).permute({0, 2, 1, 3});
    return prod * s.reshape({rows, cols, 1, 1});
  };
  SECTION("two blocks: every pair") {
    const Tensor k = full({n1, n2, m, m}, 0.5);
    nn::add_feature_gram(k, f1, f2, scale12, false);
    CHECK(max_abs_diff(k, reference(f1, f2, scale12, n1, n2) + 0.5) <= 1e-12);
  }
  SECTION("one block with itself: the blocks on and below the diagonal, nothing above") {
    const Tensor k = zeros({n1, n1, m, m});
    nn::add_feature_gram(k, f1, f1, scale11, true);
    const Tensor want = reference(f1, f1, scale11, n1, n1);
    for (std::int64_t i = 0; i < n1; i += 13)
      for (std::int64_t j = 0; j < n1; j += 7) {
        INFO("block " << i << ", " << j);
        if (j <= i)
          CHECK(max_abs_diff(k.select(0, i).select(0, j), want.select(0, i).select(0, j)) <= 1e-12);
        else
          CHECK(max(abs(k.select(0, i).select(0, j))).item() == 0.0);
      }
  }
  SECTION("a view of a larger kernel, without a scale") {
    const Tensor big = zeros({n1 + 3, n2 + 2, m, m});
    nn::add_feature_gram(big.slice(0, 3, n1 + 3).slice(1, 1, n2 + 1), f1, f2, Tensor(), false);
    CHECK(max_abs_diff(big.slice(0, 3, n1 + 3).slice(1, 1, n2 + 1), reference(f1, f2, ones({n1, n2}), n1, n2)) <= 1e-12);
    CHECK(max(abs(big.slice(0, 0, 3))).item() == 0.0);
    CHECK(max(abs(big.slice(1, 0, 1))).item() == 0.0);
  }
  CHECK_THROWS_AS(nn::add_feature_gram(zeros({n1, n2, m, m}), f1, f1, Tensor(), false), ShapeError);
}

TEST_CASE("mirror_lower_blocks completes a kernel from its lower half", "[theory][ntk]") {
  // Odd and even n (rows are paired n - 1 - q with q over the threads), m = 1 and m = 3.
  Rng rng(59);
  const int threads = GENERATE(1, 2);
  const test::ThreadCount thread_count(threads);
  for (const std::int64_t n : {1, 4, 7})
    for (const std::int64_t m : {1, 3}) {
      INFO(threads << " thread(s), n " << n << ", m " << m);
      const Tensor k = rng.normal({n, n, m, m});
      const Tensor before = k.clone();
      nn::mirror_lower_blocks(k);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          const Tensor got = k.select(0, i).select(0, j);
          if (j < i) {
            CHECK(max_abs_diff(got, before.select(0, i).select(0, j)) == 0.0);
          } else if (j > i) {
            CHECK(max_abs_diff(got, before.select(0, j).select(0, i).t()) == 0.0);
          } else {
            const Tensor own = before.select(0, i).select(0, i);
            CHECK(max_abs_diff(got, (own + own.t()) / 2.0) == 0.0);
          }
        }
    }
  CHECK_THROWS_AS(nn::mirror_lower_blocks(zeros({3, 2, 1, 1})), ShapeError);
}
