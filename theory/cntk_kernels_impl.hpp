// Internal: the loops of cntk_kernels.hpp, included once per instruction set. The including
// file defines THETA_CNTK_NS (a namespace name) and THETA_CNTK_ARCH (an xsimd architecture type)
// and is compiled with that architecture's flags and -ffp-contract=off (theory/CMakeLists.txt).

#include <cstdint>
#include <numbers>
#include <xsimd/xsimd.hpp>

#include "theory/cntk_kernels.hpp"

namespace theta::theory::detail::THETA_CNTK_NS {

namespace {

using Arch = THETA_CNTK_ARCH;
using Vec = xsimd::batch<double, Arch>;
constexpr std::int64_t kWidth = static_cast<std::int64_t>(Vec::size);

void tap_sum(const double* in, const std::int64_t* offsets, std::int64_t taps, double coef, const double* add,
             double bias, double* out, std::int64_t n) {
  const Vec c(coef), b(bias);
  for (std::int64_t i = 0; i < n; i += kWidth) {
    Vec acc(0.0);
    for (std::int64_t t = 0; t < taps; ++t) acc = acc + Vec::load_unaligned(in + i + offsets[t]);
    const Vec shift = add ? Vec::load_unaligned(add + i) : b;
    (acc * c + shift).store_unaligned(out + i);
  }
}

void gram(const double* a, std::int64_t a_stride, const double* b, std::int64_t b_stride, std::int64_t channels,
          bool diagonal, double* out, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += kWidth) {
    Vec acc(0.0);
    for (std::int64_t c = 0; c < channels; ++c) {
      const Vec left = diagonal ? Vec::load_unaligned(a + c * b_stride + j) : Vec(a[c * a_stride]);
      acc = acc + left * Vec::load_unaligned(b + c * b_stride + j);
    }
    acc.store_unaligned(out + j);
  }
}

// E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) centred Gaussian with covariance
// [[sx, s], [s, sy]] (Note [CNTK recursion] in cntk.cpp): with r = sqrt(sx sy), c = s / r and
// angle = acos(c), K = r (sin(angle) + (pi - angle) c) / (2 pi) and Kdot = (pi - angle) / (2 pi);
// sin(angle) = sqrt((1 - c)(1 + c)), exact in 1 - c. Lanes with r = 0 give 0 for both.
struct ReluPair {
  Vec k;
  Vec theta_kdot;
};

inline ReluPair relu_pair(const Vec& s, const Vec& theta, const Vec& sx, const Vec& sy) {
  constexpr double kPi = std::numbers::pi, kInv2Pi = 0.5 / std::numbers::pi;
  const Vec r = xsimd::sqrt(sx * sy);
  const auto live = r > Vec(0.0);
  const Vec c = xsimd::select(live, xsimd::min(xsimd::max(s / r, Vec(-1.0)), Vec(1.0)), Vec(0.0));
  const Vec rest = Vec(kPi) - xsimd::acos(c);
  const Vec sine = xsimd::sqrt((Vec(1.0) - c) * (Vec(1.0) + c));
  const Vec k = r * (sine + rest * c) * Vec(kInv2Pi);
  return {xsimd::select(live, k, Vec(0.0)), xsimd::select(live, theta * (rest * Vec(kInv2Pi)), Vec(0.0))};
}

void relu_step(const double* s, const double* theta, const double* sx, std::int64_t sx_step, const double* sy,
               double* k, double* theta_kdot, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += kWidth) {
    const Vec x = sx_step == 0 ? Vec(sx[0]) : Vec::load_unaligned(sx + i);
    const ReluPair p =
        relu_pair(Vec::load_unaligned(s + i), Vec::load_unaligned(theta + i), x, Vec::load_unaligned(sy + i));
    p.k.store_unaligned(k + i);
    p.theta_kdot.store_unaligned(theta_kdot + i);
  }
}

void relu_sums(const double* s, const double* theta, const double* sx, std::int64_t sx_step, const double* sy,
               double* sums, std::int64_t n) {
  Vec sum_k(0.0), sum_theta_kdot(0.0);
  for (std::int64_t i = 0; i < n; i += kWidth) {
    const Vec x = sx_step == 0 ? Vec(sx[0]) : Vec::load_unaligned(sx + i);
    const ReluPair p =
        relu_pair(Vec::load_unaligned(s + i), Vec::load_unaligned(theta + i), x, Vec::load_unaligned(sy + i));
    sum_k = sum_k + p.k;
    sum_theta_kdot = sum_theta_kdot + p.theta_kdot;
  }
  sums[0] += xsimd::hadd(sum_k);
  sums[1] += xsimd::hadd(sum_theta_kdot);
}

}  // namespace

const CntkKernelTable& cntk_table() {
  static const CntkKernelTable table{Arch::name(), kWidth, &tap_sum, &gram, &relu_step, &relu_sums};
  return table;
}

}  // namespace theta::theory::detail::THETA_CNTK_NS
