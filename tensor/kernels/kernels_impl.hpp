// Internal: the SIMD kernels, included once per architecture (Note [Kernel dispatch]).
// The including file defines THETA_KERNEL_NS (a namespace name) and THETA_KERNEL_ARCH (an xsimd
// architecture type) and compiles with that architecture's flags.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "tensor/kernels/kernels.hpp"

namespace theta::detail::THETA_KERNEL_NS {

using Arch = THETA_KERNEL_ARCH;
template <class T> using Vec = xsimd::batch<T, Arch>;

// IEEE a != b, true when either operand is NaN. xsimd 8.1's operator!= uses the ordered
// predicate _CMP_NEQ_OQ on AVX and AVX-512, which is false for NaN, so it is never used here.
template <class V> auto ieee_ne(const V& a, const V& b) { return !(a == b); }

// NaN-propagating max/min: IEEE max instructions return the second operand when one is NaN.
template <class V> V nan_max(const V& a, const V& b) { return xsimd::select((a > b) | xsimd::isnan(a), a, b); }
template <class V> V nan_min(const V& a, const V& b) { return xsimd::select((a < b) | xsimd::isnan(a), a, b); }

// Note [Fused multiply-add]
// xsimd 8.1 has no AVX-512 fma: its generic x * y + z is two vector instructions, fused only when
// the compiler contracts them (GCC does in the Release build, not under the sanitizers, where the
// few-row kernel then rounded twice per term). fused_multiply_add issues the fused instruction
// itself on AVX-512, and is xsimd::fma elsewhere (a true FMA on AVX2 + FMA3; on SSE2, which has
// none, a multiply and an add).
template <class V> V fused_multiply_add(const V& x, const V& y, const V& z) {
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    if constexpr (std::is_same_v<typename V::value_type, double>)
      return V(_mm512_fmadd_pd(x, y, z));
    else
      return V(_mm512_fmadd_ps(x, y, z));
  } else {
    return xsimd::fma(x, y, z);
  }
}

// Note [Exponent range]
// xsimd 8.1's exp (and tanh, expm1, erf built on it) converts round(x / ln 2) to an integer in
// every lane; for NaN or |x| beyond ~6e18 that conversion is undefined behaviour (Clang's UBSan
// reports it). The exp family therefore sees its argument clamped to [-750, 750], with NaN lanes
// replaced by 0 and put back afterwards. No result changes: exp saturates to 0 and inf well inside
// that range in float32 and float64 (|x| > 745), tanh and erf to -1 and 1. (xsimd's float32
// sin/cos and its pow convert likewise; GCC's UBSan, used by the sanitizer build, does not check
// float-to-int conversions, so those are not guarded here.)
template <class V, class F> V exp_family(const V& x, const F& f) {
  const auto nan = xsimd::isnan(x);
  const V bounded = xsimd::select(nan, V(0), xsimd::min(xsimd::max(x, V(-750)), V(750)));
  return xsimd::select(nan, x, f(bounded));
}

// x^p for an integer p by repeated squaring (exact sign for negative bases).
template <class V> V pow_int(V x, std::int64_t p) {
  const bool invert = p < 0;
  std::uint64_t e = static_cast<std::uint64_t>(invert ? -p : p);
  V result(1);
  while (e) {
    if (e & 1u) result *= x;
    x *= x;
    e >>= 1u;
  }
  return invert ? V(1) / result : result;
}

template <class T, class F> void map_unary(const F& f, const T* x, T* y, std::int64_t n) {
  constexpr std::int64_t W = Vec<T>::size;
  std::int64_t i = 0;
  for (; i + W <= n; i += W) f(Vec<T>::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) {
    alignas(64) T buf[W] = {};
    std::memcpy(buf, x + i, static_cast<std::size_t>(n - i) * sizeof(T));
    f(Vec<T>::load_aligned(buf)).store_aligned(buf);
    std::memcpy(y + i, buf, static_cast<std::size_t>(n - i) * sizeof(T));
  }
}

// The switch sits outside the loops: each case instantiates its own loop.
template <class T>
void unary(UnaryOp op, const T* x, T* y, std::int64_t n, UnaryParams params) {
  using V = Vec<T>;
  const T a = static_cast<T>(params.a), b = static_cast<T>(params.b);
  switch (op) {
    case UnaryOp::neg: return map_unary([](V v) { return -v; }, x, y, n);
    case UnaryOp::abs: return map_unary([](V v) { return xsimd::abs(v); }, x, y, n);
    case UnaryOp::exp:
      return map_unary([](V v) { return exp_family(v, [](V u) { return xsimd::exp(u); }); }, x, y, n);
    case UnaryOp::log: return map_unary([](V v) { return xsimd::log(v); }, x, y, n);
    case UnaryOp::log1p: return map_unary([](V v) { return xsimd::log1p(v); }, x, y, n);
    case UnaryOp::expm1:
      return map_unary([](V v) { return exp_family(v, [](V u) { return xsimd::expm1(u); }); }, x, y, n);
    case UnaryOp::sqrt: return map_unary([](V v) { return xsimd::sqrt(v); }, x, y, n);
    case UnaryOp::rsqrt: return map_unary([](V v) { return V(1) / xsimd::sqrt(v); }, x, y, n);
    case UnaryOp::tanh:
      return map_unary([](V v) { return exp_family(v, [](V u) { return xsimd::tanh(u); }); }, x, y, n);
    case UnaryOp::sigmoid:
      return map_unary([](V v) { return exp_family(v, [](V u) { return V(1) / (V(1) + xsimd::exp(-u)); }); }, x,
                       y, n);
    case UnaryOp::relu: return map_unary([](V v) { return xsimd::select(v < V(0), V(0), v); }, x, y, n);
    case UnaryOp::sin: return map_unary([](V v) { return xsimd::sin(v); }, x, y, n);
    case UnaryOp::cos: return map_unary([](V v) { return xsimd::cos(v); }, x, y, n);
    case UnaryOp::square: return map_unary([](V v) { return v * v; }, x, y, n);
    case UnaryOp::sign:
      return map_unary(
          [](V v) { return xsimd::select(v > V(0), V(1), xsimd::select(v < V(0), V(-1), v)); }, x, y, n);
    case UnaryOp::erf:
      return map_unary([](V v) { return exp_family(v, [](V u) { return xsimd::erf(u); }); }, x, y, n);
    case UnaryOp::reciprocal: return map_unary([](V v) { return V(1) / v; }, x, y, n);
    case UnaryOp::pow_scalar: {
      const bool integral = params.a == static_cast<double>(static_cast<std::int64_t>(params.a)) &&
                            params.a >= -64 && params.a <= 64;
      if (integral) {
        const auto p = static_cast<std::int64_t>(params.a);
        if (p == 1) return map_unary([](V v) { return v; }, x, y, n);
        if (p == 2) return map_unary([](V v) { return v * v; }, x, y, n);
        return map_unary([p](V v) { return pow_int(v, p); }, x, y, n);
      }
      if (params.a == 0.5) return map_unary([](V v) { return xsimd::sqrt(v); }, x, y, n);
      return map_unary([a](V v) { return xsimd::pow(v, V(a)); }, x, y, n);
    }
    case UnaryOp::clamp:
      return map_unary([a, b](V v) { return nan_min(nan_max(v, V(a)), V(b)); }, x, y, n);
  }
}

// Loads W elements at p, or broadcasts *p when the operand's stride is 0.
template <class T> Vec<T> load_operand(const T* p, std::int64_t stride, std::int64_t i) {
  return stride ? Vec<T>::load_unaligned(p + i) : Vec<T>(*p);
}

template <class T> void fill_tail(T* buf, const T* p, std::int64_t stride, std::int64_t i, std::int64_t len) {
  for (std::int64_t k = 0; k < len; ++k) buf[k] = stride ? p[i + k] : *p;
}

template <class T, class F>
void map_binary(const F& f, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y,
                std::int64_t n) {
  constexpr std::int64_t W = Vec<T>::size;
  std::int64_t i = 0;
  if (sa && sb) {
    for (; i + W <= n; i += W)
      f(Vec<T>::load_unaligned(a + i), Vec<T>::load_unaligned(b + i)).store_unaligned(y + i);
  } else {
    for (; i + W <= n; i += W) f(load_operand(a, sa, i), load_operand(b, sb, i)).store_unaligned(y + i);
  }
  if (i < n) {
    alignas(64) T ba[W] = {};
    alignas(64) T bb[W] = {};
    fill_tail(ba, a, sa, i, n - i);
    fill_tail(bb, b, sb, i, n - i);
    f(Vec<T>::load_aligned(ba), Vec<T>::load_aligned(bb)).store_aligned(ba);
    std::memcpy(y + i, ba, static_cast<std::size_t>(n - i) * sizeof(T));
  }
}

template <class T>
void binary(BinaryOp op, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y,
            std::int64_t n) {
  using V = Vec<T>;
  switch (op) {
    case BinaryOp::add: return map_binary([](V p, V q) { return p + q; }, a, sa, b, sb, y, n);
    case BinaryOp::sub: return map_binary([](V p, V q) { return p - q; }, a, sa, b, sb, y, n);
    case BinaryOp::mul: return map_binary([](V p, V q) { return p * q; }, a, sa, b, sb, y, n);
    case BinaryOp::div: return map_binary([](V p, V q) { return p / q; }, a, sa, b, sb, y, n);
    case BinaryOp::pow: return map_binary([](V p, V q) { return xsimd::pow(p, q); }, a, sa, b, sb, y, n);
    case BinaryOp::maximum: return map_binary([](V p, V q) { return nan_max(p, q); }, a, sa, b, sb, y, n);
    case BinaryOp::minimum: return map_binary([](V p, V q) { return nan_min(p, q); }, a, sa, b, sb, y, n);
    case BinaryOp::eq:
      return map_binary([](V p, V q) { return xsimd::select(p == q, V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::ne:
      return map_binary([](V p, V q) { return xsimd::select(ieee_ne(p, q), V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::lt:
      return map_binary([](V p, V q) { return xsimd::select(p < q, V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::le:
      return map_binary([](V p, V q) { return xsimd::select(p <= q, V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::gt:
      return map_binary([](V p, V q) { return xsimd::select(p > q, V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::ge:
      return map_binary([](V p, V q) { return xsimd::select(p >= q, V(1), V(0)); }, a, sa, b, sb, y, n);
    case BinaryOp::relu_grad:
      return map_binary([](V p, V q) { return xsimd::select(q > V(0), p, V(0)); }, a, sa, b, sb, y, n);
  }
}

template <class T>
void where(const T* m, std::int64_t sm, const T* a, std::int64_t sa, const T* b, std::int64_t sb,
           T* y, std::int64_t n) {
  constexpr std::int64_t W = Vec<T>::size;
  auto pick = [](const Vec<T>& mv, const Vec<T>& av, const Vec<T>& bv) {
    return xsimd::select(ieee_ne(mv, Vec<T>(0)), av, bv);
  };
  std::int64_t i = 0;
  for (; i + W <= n; i += W)
    pick(load_operand(m, sm, i), load_operand(a, sa, i), load_operand(b, sb, i)).store_unaligned(y + i);
  if (i < n) {
    alignas(64) T bm[W] = {};
    alignas(64) T ba[W] = {};
    alignas(64) T bb[W] = {};
    fill_tail(bm, m, sm, i, n - i);
    fill_tail(ba, a, sa, i, n - i);
    fill_tail(bb, b, sb, i, n - i);
    pick(Vec<T>::load_aligned(bm), Vec<T>::load_aligned(ba), Vec<T>::load_aligned(bb)).store_aligned(ba);
    std::memcpy(y + i, ba, static_cast<std::size_t>(n - i) * sizeof(T));
  }
}

// Four independent accumulators hide the add latency; the tail is padded with the identity.
template <class T, class Combine, class CombineScalar>
T fold(const T* x, std::int64_t n, T identity, const Combine& combine,
       const CombineScalar& combine_scalar) {
  using V = Vec<T>;
  constexpr std::int64_t W = V::size;
  V acc0(identity), acc1(identity), acc2(identity), acc3(identity);
  std::int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    acc0 = combine(acc0, V::load_unaligned(x + i));
    acc1 = combine(acc1, V::load_unaligned(x + i + W));
    acc2 = combine(acc2, V::load_unaligned(x + i + 2 * W));
    acc3 = combine(acc3, V::load_unaligned(x + i + 3 * W));
  }
  for (; i + W <= n; i += W) acc0 = combine(acc0, V::load_unaligned(x + i));
  if (i < n) {
    alignas(64) T buf[W];
    for (std::int64_t k = 0; k < W; ++k) buf[k] = identity;
    std::memcpy(buf, x + i, static_cast<std::size_t>(n - i) * sizeof(T));
    acc1 = combine(acc1, V::load_aligned(buf));
  }
  const V acc = combine(combine(acc0, acc1), combine(acc2, acc3));
  alignas(64) T lanes[W];
  acc.store_aligned(lanes);
  // Pairwise over lanes, in a fixed order.
  for (std::int64_t width = W / 2; width >= 1; width /= 2)
    for (std::int64_t k = 0; k < width; ++k) lanes[k] = combine_scalar(lanes[k], lanes[k + width]);
  return lanes[0];
}

template <class T> T reduce(ReduceOp op, const T* x, std::int64_t n) {
  switch (op) {
    case ReduceOp::sum:
      return fold(
          x, n, T(0), [](const Vec<T>& a, const Vec<T>& b) { return a + b; },
          [](T a, T b) { return a + b; });
    case ReduceOp::max:
      return fold(
          x, n, -std::numeric_limits<T>::infinity(),
          [](const Vec<T>& a, const Vec<T>& b) { return nan_max(a, b); },
          [](T a, T b) { return (a > b || a != a) ? a : b; });
    case ReduceOp::min:
      return fold(
          x, n, std::numeric_limits<T>::infinity(),
          [](const Vec<T>& a, const Vec<T>& b) { return nan_min(a, b); },
          [](T a, T b) { return (a < b || a != a) ? a : b; });
  }
  return T(0);
}

// Each run of up to W output pixels of a row loads its kh kw input vectors once and reuses them
// for every filter. A short run at the end of a row reads and writes through zero-padded buffers,
// so it goes through the same vector arithmetic as the rest.
template <class T>
void correlate(const T* in, std::int64_t in_row, const T* w, std::int64_t count, std::int64_t kh, std::int64_t kw,
               std::int64_t dh, std::int64_t dw, T* out, std::int64_t h, std::int64_t width) {
  using V = Vec<T>;
  constexpr std::int64_t W = V::size;
  const std::int64_t taps = kh * kw, plane = h * width;
  // The loaded input vectors: on the stack for kernels up to 7 x 7 (this runs once per channel
  // plane, so a heap buffer would be an allocation per plane), on the heap beyond.
  constexpr std::int64_t kStackTaps = 49;
  V stack_window[kStackTaps];
  std::vector<V> heap_window(static_cast<std::size_t>(taps > kStackTaps ? taps : 0));
  V* window = taps > kStackTaps ? heap_window.data() : stack_window;
  alignas(64) T buf[W];
  for (std::int64_t y = 0; y < h; ++y)
    for (std::int64_t x = 0; x < width; x += W) {
      const std::int64_t run = std::min(W, width - x);
      for (std::int64_t i = 0; i < kh; ++i)
        for (std::int64_t j = 0; j < kw; ++j) {
          const T* src = in + (y + i * dh) * in_row + x + j * dw;
          V& v = window[i * kw + j];
          if (run == W) {
            v = V::load_unaligned(src);
          } else {
            std::fill(buf, buf + W, T(0));
            std::memcpy(buf, src, static_cast<std::size_t>(run) * sizeof(T));
            v = V::load_aligned(buf);
          }
        }
      T* dst = out + y * width + x;
      const auto store = [&](const V& acc, T* to) {
        if (run == W) {
          acc.store_unaligned(to);
        } else {
          acc.store_aligned(buf);
          std::memcpy(to, buf, static_cast<std::size_t>(run) * sizeof(T));
        }
      };
      std::int64_t f = 0;
      // kBlock filters at a time: independent chains of fused multiply-adds sharing each input load.
      constexpr std::int64_t kBlock = 8;
      for (; f + kBlock <= count; f += kBlock) {
        const T* wf = w + f * taps;
        V acc[kBlock];
        for (std::int64_t b = 0; b < kBlock; ++b) acc[b] = V(T(0));
        for (std::int64_t t = 0; t < taps; ++t) {
          const V& in_t = window[t];
          for (std::int64_t b = 0; b < kBlock; ++b) acc[b] = fused_multiply_add(V(wf[b * taps + t]), in_t, acc[b]);
        }
        for (std::int64_t b = 0; b < kBlock; ++b) store(acc[b], dst + (f + b) * plane);
      }
      for (; f < count; ++f) {
        const T* wf = w + f * taps;
        V acc(T(0));
        for (std::int64_t t = 0; t < taps; ++t) acc = fused_multiply_add(V(wf[t]), window[t], acc);
        store(acc, dst + f * plane);
      }
    }
}

#include "tensor/kernels/combine_runs_impl.hpp"
#include "tensor/kernels/few_rows_impl.hpp"

const KernelTable& table() {
  static const KernelTable t{
      Arch::name(),
      {&unary<float>, &binary<float>, &where<float>, &reduce<float>, &correlate<float>, &combine_runs<float>,
       &few_rows_product<float>, 2 * kGroupRows<float>},
      {&unary<double>, &binary<double>, &where<double>, &reduce<double>, &correlate<double>, &combine_runs<double>,
       &few_rows_product<double>, 2 * kGroupRows<double>},
  };
  return t;
}

}  // namespace theta::detail::THETA_KERNEL_NS
