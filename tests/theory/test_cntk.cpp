// analytic_cntk against independent truths: the fully connected analytic kernels (1 x 1 images,
// 1 x 1 filters), a plain loop implementation of the recursion, shift invariance under circular
// padding, and the mean over random wide convolutional networks.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/parallel.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/cntk.hpp"
#include "theory/ntk.hpp"
#include "tests/support/kernel_compare.hpp"
#include "tests/theory/cntk_reference.hpp"

using namespace theta;
using theory::CntkOptions;
using theory::CntkReadout;
using theta::test::max_rel_diff;
using theta::test::NaiveCntk;

namespace {

// The images x:[n, C, H, W] as channel vectors, one row per (image, pixel): [n H W, C].
Tensor pixel_rows(const Tensor& x) {
  return x.permute({0, 2, 3, 1}).reshape_copy({x.size(0) * x.size(2) * x.size(3), x.size(1)});
}

// x rolled by (s1, s2) pixels: out[n, c, i, j] = x[n, c, i - s1, j - s2] (indices modulo H, W).
Tensor roll(const Tensor& x, std::int64_t s1, std::int64_t s2) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const std::vector<double> v = to_vector(x);
  std::vector<double> out(v.size());
  for (std::int64_t p = 0; p < planes; ++p)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < w; ++j)
        out[static_cast<std::size_t>((p * h + (i + s1) % h) * w + (j + s2) % w)] =
            v[static_cast<std::size_t>((p * h + i) * w + j)];
  return from_vector(out, x.shape());
}

int interrupt_polls = 0;

// Asks to stop at the third poll.
void stop_at_third_poll() {
  if (++interrupt_polls == 3) throw std::runtime_error("interrupted");
}

}  // namespace

TEST_CASE("analytic_cntk on 1x1 images is the fully connected ReLU kernel", "[cntk]") {
  Rng rng(3);
  const Tensor x1 = rng.normal({5, 6, 1, 1}), x2 = rng.normal({4, 6, 1, 1});
  const Tensor f1 = x1.reshape({5, 6}), f2 = x2.reshape({4, 6});
  for (const std::int64_t layers : {1, 2, 4})
    for (const double sigma_b : {0.0, 0.7}) {
      // k = 1; and k = 3 with circular padding, where all nine taps wrap onto the one pixel.
      for (const auto& [k, padding] :
           {std::pair{std::int64_t{1}, Padding::zeros}, std::pair{std::int64_t{3}, Padding::circular}})
        for (const CntkReadout readout : {CntkReadout::global_average, CntkReadout::flatten}) {
          CAPTURE(layers, sigma_b, k, readout == CntkReadout::flatten);
          const CntkOptions o{.conv_layers = layers,
                              .kernel_size = k,
                              .padding = padding,
                              .readout = readout,
                              .sigma_w = 1.3,
                              .sigma_b = sigma_b};
          const theory::AnalyticKernels fc =
              theory::analytic_ntk(f1, f2, layers + 1, nn::ActivationKind::relu, 1.3, sigma_b);
          const theory::AnalyticKernels cntk = theory::analytic_cntk(x1, x2, o);
          CHECK(max_rel_diff(cntk.nngp, fc.nngp) < 1e-14);
          CHECK(max_rel_diff(cntk.ntk, fc.ntk) < 1e-14);
          // And the kernel of the images with themselves, diagonal included.
          const theory::AnalyticKernels fc_self =
              theory::analytic_ntk(f1, f1, layers + 1, nn::ActivationKind::relu, 1.3, sigma_b);
          const theory::AnalyticKernels self = theory::analytic_cntk(x1, x1, o);
          CHECK(max_rel_diff(self.nngp, fc_self.nngp) < 1e-14);
          CHECK(max_rel_diff(self.ntk, fc_self.ntk) < 1e-14);
        }
    }
}

// With 1 x 1 filters every pixel pair (p, q) runs the fully connected recursion on the channel
// vectors x_p and x'_q on its own, and the readout averages: the global average over all pairs,
// flatten over same-position pairs.
TEST_CASE("analytic_cntk with 1x1 filters averages the fully connected kernel over pixel pairs", "[cntk]") {
  Rng rng(5);
  const std::int64_t n1 = 3, n2 = 2, c = 4, h = 3, w = 4, P = h * w, layers = 3;
  const Tensor x1 = rng.normal({n1, c, h, w}), x2 = rng.normal({n2, c, h, w});
  const theory::AnalyticKernels fc =
      theory::analytic_ntk(pixel_rows(x1), pixel_rows(x2), layers + 1, nn::ActivationKind::relu, 0.9, 0.4);
  const std::vector<double> fc_nngp = to_vector(fc.nngp), fc_ntk = to_vector(fc.ntk);
  for (const CntkReadout readout : {CntkReadout::global_average, CntkReadout::flatten}) {
    const bool flatten = readout == CntkReadout::flatten;
    std::vector<double> nngp, ntk;
    for (std::int64_t i = 0; i < n1; ++i)
      for (std::int64_t j = 0; j < n2; ++j) {
        double g = 0.0, t = 0.0, count = 0.0;
        for (std::int64_t p = 0; p < P; ++p)
          for (std::int64_t q = 0; q < P; ++q) {
            if (flatten && p != q) continue;
            const auto at = static_cast<std::size_t>((i * P + p) * (n2 * P) + j * P + q);
            g += fc_nngp[at], t += fc_ntk[at], count += 1.0;
          }
        nngp.push_back(g / count), ntk.push_back(t / count);
      }
    const theory::AnalyticKernels cntk = theory::analytic_cntk(
        x1, x2, {.conv_layers = layers, .kernel_size = 1, .readout = readout, .sigma_w = 0.9, .sigma_b = 0.4});
    CAPTURE(flatten);
    CHECK(max_rel_diff(cntk.nngp, from_vector(nngp, {n1, n2})) < 1e-13);
    CHECK(max_rel_diff(cntk.ntk, from_vector(ntk, {n1, n2})) < 1e-13);
  }
}

// Two image sizes: 4 x 5, covered by one run of vectors from the first pixel to the last, and
// 3 x 8, where each pixel row is a run of its own (Note [Padded pixel grid] in theory/cntk.cpp).
TEST_CASE("analytic_cntk matches a plain loop implementation of the recursion", "[cntk]") {
  Rng rng(7);
  for (const auto& [h, w] : {std::pair<std::int64_t, std::int64_t>{4, 5}, {3, 8}}) {
    Tensor x1 = rng.normal({3, 2, h, w});
    const Tensor x2 = rng.normal({2, 2, h, w});
    // One image black but for its lower right corner: all-zero patches (Sigma = 0 without bias).
    std::vector<double> v = to_vector(x1);
    for (std::int64_t c = 0; c < 2; ++c)
      for (std::int64_t i = 0; i < h; ++i)
        for (std::int64_t j = 0; j < w; ++j)
          if (i < h / 2 || j < w / 2) v[static_cast<std::size_t>(((2 * 2 + c) * h + i) * w + j)] = 0.0;
    x1 = from_vector(v, x1.shape());
    for (const std::int64_t k : {1, 3, 5})
      for (const Padding padding : {Padding::zeros, Padding::circular})
        for (const CntkReadout readout : {CntkReadout::global_average, CntkReadout::flatten})
          for (const double sigma_b : {0.0, 0.3}) {
            const CntkOptions o{.conv_layers = 3,
                                .kernel_size = k,
                                .padding = padding,
                                .readout = readout,
                                .sigma_w = 1.4,
                                .sigma_b = sigma_b};
            CAPTURE(h, w, k, padding == Padding::circular, readout == CntkReadout::flatten, sigma_b);
            NaiveCntk naive{o};
            const theory::AnalyticKernels want = naive.kernels(x1, x2), got = theory::analytic_cntk(x1, x2, o);
            CHECK(max_rel_diff(got.nngp, want.nngp) < 1e-13);
            CHECK(max_rel_diff(got.ntk, want.ntk) < 1e-13);
            const theory::AnalyticKernels want_self = naive.kernels(x1, x1),
                                          got_self = theory::analytic_cntk(x1, x1, o);
            CHECK(max_rel_diff(got_self.nngp, want_self.nngp) < 1e-13);
            CHECK(max_rel_diff(got_self.ntk, want_self.ntk) < 1e-13);
          }
  }
}

TEST_CASE("analytic_cntk with circular padding and global averaging is shift invariant", "[cntk]") {
  Rng rng(11);
  const Tensor x1 = rng.normal({2, 2, 5, 5}), x2 = rng.normal({3, 2, 5, 5});
  CntkOptions o{.conv_layers = 3, .kernel_size = 3, .padding = Padding::circular, .sigma_w = 1.2, .sigma_b = 0.2};
  const theory::AnalyticKernels base = theory::analytic_cntk(x1, x2, o);
  o.readout = CntkReadout::flatten;
  const theory::AnalyticKernels flat = theory::analytic_cntk(x1, x2, o);
  double flatten_change = 0.0;
  for (std::int64_t s1 = 0; s1 < 5; ++s1)
    for (std::int64_t s2 = 0; s2 < 5; ++s2) {
      CAPTURE(s1, s2);
      const Tensor moved = roll(x1, s1, s2);
      o.readout = CntkReadout::global_average;
      const theory::AnalyticKernels gap = theory::analytic_cntk(moved, x2, o);
      CHECK(max_rel_diff(gap.nngp, base.nngp) < 1e-12);
      CHECK(max_rel_diff(gap.ntk, base.ntk) < 1e-12);
      o.readout = CntkReadout::flatten;
      flatten_change = std::max(flatten_change, max_rel_diff(theory::analytic_cntk(moved, x2, o).ntk, flat.ntk));
    }
  CHECK(flatten_change > 1e-3);  // flatten keeps positions: no invariance
}

// The NNGP is E[f(x) f(x')] over the random initialisation of the network of CntkOptions. Given
// the last ReLU features z:[C, H, W], the readout's weights are Gaussian, so the expectation over
// them is taken exactly: sigma_w^2 <m(x), m(x')> / fan_in + sigma_b^2, with m the pixel mean
// (fan_in = C) or the flattened features (fan_in = C H W). What remains is the mean over random
// convolution layers, whose error is measured by its standard error over the networks; at width
// C the finite-width bias is O(1 / C) relative.
TEST_CASE("analytic_cntk NNGP is the mean over random wide convolutional networks", "[cntk]") {
  Rng data_rng(13);
  const std::int64_t n = 3, width = 128, networks = 24;
  const Tensor x = data_rng.normal({n, 2, 4, 4});
  const double sigma_w = 1.3, sigma_b = 0.3;
  Conv2dOptions conv{.padding = {1, 1}};
  std::vector<std::vector<double>> samples[2];
  Rng rng(17);
  for (std::int64_t s = 0; s < networks; ++s) {
    Tensor h = x;
    for (std::int64_t layer = 0; layer < 2; ++layer) {
      const std::int64_t in = h.size(1);
      const Tensor weight = rng.normal({width, in, 3, 3}), bias = rng.normal({width, 1, 1});
      h = relu(conv2d(h, weight, conv) * (sigma_w / std::sqrt(static_cast<double>(in * 9))) + bias * sigma_b);
    }
    const Tensor pooled = mean(h, {2, 3}), flat = h.reshape({n, width * 16});
    samples[0].push_back(to_vector(matmul(pooled, pooled.t()) * (sigma_w * sigma_w / width) + sigma_b * sigma_b));
    samples[1].push_back(
        to_vector(matmul(flat, flat.t()) * (sigma_w * sigma_w / static_cast<double>(width * 16)) + sigma_b * sigma_b));
  }
  for (const CntkReadout readout : {CntkReadout::global_average, CntkReadout::flatten}) {
    const bool flatten = readout == CntkReadout::flatten;
    const std::vector<double> exact = to_vector(
        theory::analytic_cntk(x, x, {.conv_layers = 2, .readout = readout, .sigma_w = sigma_w, .sigma_b = sigma_b})
            .nngp);
    const auto& est = samples[flatten ? 1 : 0];
    for (std::size_t e = 0; e < exact.size(); ++e) {
      double m = 0.0, m2 = 0.0;
      for (const auto& sample : est) m += sample[e], m2 += sample[e] * sample[e];
      m /= networks, m2 /= networks;
      const double standard_error = std::sqrt(std::max(m2 - m * m, 0.0) / (networks - 1));
      CAPTURE(flatten, e, m, exact[e], standard_error);
      CHECK(std::abs(m - exact[e]) < 4 * standard_error + 2.0 / width * std::abs(exact[e]));
    }
  }
}

TEST_CASE("analytic_cntk is exactly symmetric, accepts float32 and rejects bad arguments", "[cntk]") {
  Rng rng(19);
  const Tensor x = rng.normal({4, 2, 3, 3}), y = rng.normal({2, 2, 3, 3});
  const CntkOptions o{.conv_layers = 2, .sigma_b = 0.1};
  const theory::AnalyticKernels self = theory::analytic_cntk(x, x, o);
  CHECK(self.nngp.dtype() == DType::f64);
  CHECK(to_vector(self.nngp) == to_vector(self.nngp.t().contiguous()));
  CHECK(to_vector(self.ntk) == to_vector(self.ntk.t().contiguous()));
  // A copy of x is another view: every pair is computed, to the same values.
  const theory::AnalyticKernels copy = theory::analytic_cntk(x, x.clone(), o);
  CHECK(max_rel_diff(copy.ntk, self.ntk) < 1e-14);
  const Tensor x32 = x.to(DType::f32);
  const theory::AnalyticKernels k32 = theory::analytic_cntk(x32, y, o);
  CHECK(k32.ntk.dtype() == DType::f64);
  CHECK(to_vector(k32.ntk) == to_vector(theory::analytic_cntk(x32.to(DType::f64), y, o).ntk));
  CHECK(theory::analytic_cntk(x.slice(0, 0, 0), y, o).ntk.shape() == Shape{0, 2});

  CHECK_THROWS_WITH(theory::analytic_cntk(x.reshape({4, 2, 9}), y, o),
                    Catch::Contains("analytic_cntk") && Catch::Contains("[4, 2, 9]"));
  CHECK_THROWS_AS(theory::analytic_cntk(x.reshape({4, 2, 9}), y, o), ShapeError);
  CHECK_THROWS_AS(theory::analytic_cntk(x, rng.normal({2, 3, 3, 3}), o), ShapeError);
  CHECK_THROWS_WITH(theory::analytic_cntk(x, rng.normal({2, 2, 3, 4}), o),
                    Catch::Contains("[4, 2, 3, 3]") && Catch::Contains("[2, 2, 3, 4]"));
  CHECK_THROWS_WITH(theory::analytic_cntk(x, y, {.kernel_size = 2}), Catch::Contains("kernel_size must be odd"));
  CHECK_THROWS_AS(theory::analytic_cntk(x, y, {.kernel_size = -1}), std::invalid_argument);
  CHECK_THROWS_WITH(theory::analytic_cntk(x, y, {.conv_layers = 0}), Catch::Contains("conv_layers must be >= 1"));
  CHECK_THROWS_WITH(theory::analytic_cntk(x, y, {.sigma_w = std::numeric_limits<double>::infinity()}),
                    Catch::Contains("sigma_w"));
  std::vector<double> bad = to_vector(y);
  bad[3] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(theory::analytic_cntk(x, from_vector(bad, y.shape()), o),
                    Catch::Contains("analytic_cntk") && Catch::Contains("x2"));
}

TEST_CASE("analytic_cntk polls for interrupts between rows and stops", "[cntk]") {
  Rng rng(23);
  const Tensor x = rng.normal({6, 1, 4, 4});
  const int threads = get_num_threads();
  const InterruptHook previous = set_interrupt_hook(&stop_at_third_poll);
  set_num_threads(1);  // one thread polls before each of rows 0, 1, 2
  interrupt_polls = 0;
  CHECK_THROWS_WITH(theory::analytic_cntk(x, x), "interrupted");
  CHECK(interrupt_polls == 3);
  set_num_threads(2);  // the calling thread polls before its first row at the latest
  interrupt_polls = 2;
  CHECK_THROWS_WITH(theory::analytic_cntk(x, x), "interrupted");
  set_interrupt_hook(previous);
  set_num_threads(threads);
  CHECK(theory::analytic_cntk(x, x).ntk.shape() == Shape{6, 6});
}
