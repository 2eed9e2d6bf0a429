#pragma once
// Test support: the analytic CNTK recursion as plain scalar loops over pixel pairs (Note [CNTK
// recursion] in theory/cntk.cpp), the independent reference of tests/theory/test_cntk.cpp.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/tensor.hpp"
#include "theory/cntk.hpp"
#include "theory/ntk.hpp"

namespace theta::test {

using theory::CntkOptions;
using theory::CntkReadout;

/// One image as plain numbers.
struct Image {
  std::int64_t c = 0, h = 0, w = 0;
  std::vector<double> v;
};

/// x:[n, C, H, W] as n Images.
inline std::vector<Image> images_of(const Tensor& x) {
  const std::vector<double> v = to_vector(x);
  const std::int64_t size = x.size(1) * x.size(2) * x.size(3);
  std::vector<Image> out;
  for (std::int64_t n = 0; n < x.size(0); ++n)
    out.push_back(
        {x.size(1), x.size(2), x.size(3), std::vector<double>(v.begin() + n * size, v.begin() + (n + 1) * size)});
  return out;
}

/// The recursion for options `o`, by loops: NaiveCntk{o}.kernels(x1, x2) -> {nngp, ntk}.
struct NaiveCntk {
  CntkOptions o;
  std::int64_t h = 0, w = 0;

  // Reads a pixel (or pixel-pair) coordinate through the padding: false when it is outside a
  // zero-padded image.
  bool fetch(std::int64_t& i, std::int64_t& j) const {
    if (o.padding == Padding::circular) {
      i = (i % h + h) % h, j = (j % w + w) % w;
      return true;
    }
    return i >= 0 && i < h && j >= 0 && j < w;
  }
  std::int64_t pixels() const { return h * w; }

  // The ReLU expectations at one entry.
  static void relu(double s, double sx, double sy, double& k, double& kdot) {
    const double r = std::sqrt(sx * sy);
    if (r == 0.0) {
      k = kdot = 0.0;
      return;
    }
    const double c = std::clamp(s / r, -1.0, 1.0), angle = std::acos(c), pi = std::numbers::pi;
    k = r * (std::sin(angle) + (pi - angle) * c) / (2 * pi);
    kdot = (pi - angle) / (2 * pi);
  }

  // Per layer, the pixel-pair covariances Sigma^h[p][q] (p, q flattened); with `self` the
  // self-covariances are the diagonal of the run itself (x = y).
  struct Run {
    std::vector<std::vector<double>> sigma, theta;
  };
  Run run(const Image& x, const Image& y, const Run* self_x, const Run* self_y) const {
    const std::int64_t r = o.kernel_size / 2, P = pixels();
    const double k2 = static_cast<double>(o.kernel_size * o.kernel_size), w2 = o.sigma_w * o.sigma_w,
                 b2 = o.sigma_b * o.sigma_b;
    Run out;
    std::vector<double> s(static_cast<std::size_t>(P * P));
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t q = 0; q < P; ++q) {
        double acc = 0.0;
        for (std::int64_t di = -r; di <= r; ++di)
          for (std::int64_t dj = -r; dj <= r; ++dj) {
            std::int64_t pi = p / w + di, pj = p % w + dj, qi = q / w + di, qj = q % w + dj;
            if (!fetch(pi, pj) || !fetch(qi, qj)) continue;
            for (std::int64_t c = 0; c < x.c; ++c)
              acc += x.v[static_cast<std::size_t>((c * h + pi) * w + pj)] *
                     y.v[static_cast<std::size_t>((c * h + qi) * w + qj)];
          }
        s[static_cast<std::size_t>(p * P + q)] = w2 / (static_cast<double>(x.c) * k2) * acc + b2;
      }
    out.sigma.push_back(s);
    out.theta.push_back(s);
    for (std::int64_t layer = 1; layer < o.conv_layers; ++layer) {
      const std::vector<double>&sig = out.sigma.back(), &th = out.theta.back();
      const std::vector<double>& dx = self_x ? self_x->sigma[static_cast<std::size_t>(layer - 1)] : sig;
      const std::vector<double>& dy = self_y ? self_y->sigma[static_cast<std::size_t>(layer - 1)] : sig;
      std::vector<double> k(sig.size()), tk(sig.size());
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < P; ++q) {
          const auto pq = static_cast<std::size_t>(p * P + q);
          double kdot = 0.0;
          relu(sig[pq], dx[static_cast<std::size_t>(p * P + p)], dy[static_cast<std::size_t>(q * P + q)], k[pq], kdot);
          tk[pq] = th[pq] * kdot;
        }
      std::vector<double> ns(sig.size()), nt(sig.size());
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < P; ++q) {
          double ak = 0.0, at = 0.0;
          for (std::int64_t di = -r; di <= r; ++di)
            for (std::int64_t dj = -r; dj <= r; ++dj) {
              std::int64_t pi = p / w + di, pj = p % w + dj, qi = q / w + di, qj = q % w + dj;
              if (!fetch(pi, pj) || !fetch(qi, qj)) continue;
              const auto at_pq = static_cast<std::size_t>((pi * w + pj) * P + qi * w + qj);
              ak += k[at_pq], at += tk[at_pq];
            }
          const auto pq = static_cast<std::size_t>(p * P + q);
          ns[pq] = w2 / k2 * ak + b2;
          nt[pq] = w2 / k2 * at + ns[pq];
        }
      out.sigma.push_back(ns);
      out.theta.push_back(nt);
    }
    return out;
  }

  // {nngp, ntk} of one pair from its run and the two self runs.
  std::pair<double, double> readout(const Run& pair, const Run& sx, const Run& sy) const {
    const std::int64_t P = pixels();
    const std::vector<double>&sig = pair.sigma.back(), &th = pair.theta.back(), &dx = sx.sigma.back(),
          &dy = sy.sigma.back();
    double sum_k = 0.0, sum_tk = 0.0, count = 0.0;
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t q = 0; q < P; ++q) {
        if (o.readout == CntkReadout::flatten && p != q) continue;
        const auto pq = static_cast<std::size_t>(p * P + q);
        double k = 0.0, kdot = 0.0;
        relu(sig[pq], dx[static_cast<std::size_t>(p * P + p)], dy[static_cast<std::size_t>(q * P + q)], k, kdot);
        sum_k += k, sum_tk += th[pq] * kdot, count += 1.0;
      }
    const double w2 = o.sigma_w * o.sigma_w, nngp = w2 * sum_k / count + o.sigma_b * o.sigma_b;
    return {nngp, nngp + w2 * sum_tk / count};
  }

  theory::AnalyticKernels kernels(const Tensor& x1, const Tensor& x2) {
    h = x1.size(2), w = x1.size(3);
    const std::vector<Image> a = images_of(x1), b = images_of(x2);
    std::vector<Run> self_a, self_b;
    for (const Image& im : a) self_a.push_back(run(im, im, nullptr, nullptr));
    for (const Image& im : b) self_b.push_back(run(im, im, nullptr, nullptr));
    std::vector<double> nngp, ntk;
    for (std::size_t i = 0; i < a.size(); ++i)
      for (std::size_t j = 0; j < b.size(); ++j) {
        const auto [g, t] = readout(run(a[i], b[j], &self_a[i], &self_b[j]), self_a[i], self_b[j]);
        nngp.push_back(g), ntk.push_back(t);
      }
    const Shape shape{x1.size(0), x2.size(0)};
    return {from_vector(nngp, shape), from_vector(ntk, shape)};
  }
};

}  // namespace theta::test
