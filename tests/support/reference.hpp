#pragma once
// Test support for the tensor layer: naive reference loops and input-layout generators.
//
// Everything here reads tensors straight from their storage through shape, strides and offset,
// and computes expected results with plain loops over std::vector<double>, so a test compares
// theta against independent truth and never against theta's own ops.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/rng.hpp"
#include "tensor/tensor.hpp"

namespace theta::ref {

/// Product of the sizes (1 for a 0-d shape).
inline std::int64_t count(const Shape& shape) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

/// Row-major multi-index of `linear` in `shape`.
inline std::vector<std::int64_t> unravel(std::int64_t linear, const Shape& shape) {
  std::vector<std::int64_t> index(shape.size(), 0);
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = linear % shape[d];
    linear /= shape[d];
  }
  return index;
}

/// Row-major linear position of a multi-index.
inline std::int64_t ravel(const std::vector<std::int64_t>& index, const Shape& shape) {
  std::int64_t linear = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) linear = linear * shape[d] + index[d];
  return linear;
}

/// "[2, 3]", written independently of theta::shape_str.
inline std::string str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

/// Storage offset (in elements, from the storage start) of every element, row-major.
inline std::vector<std::int64_t> element_offsets(const Tensor& t) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(count(t.shape())));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto index = unravel(static_cast<std::int64_t>(i), t.shape());
    std::int64_t off = t.offset();
    for (std::size_t d = 0; d < index.size(); ++d) off += index[d] * t.strides()[d];
    out[i] = off;
  }
  return out;
}

/// The logical elements of `t`, row-major, read from its storage (any dtype, any layout).
inline std::vector<double> read(const Tensor& t) {
  const auto offsets = element_offsets(t);
  std::vector<double> out(offsets.size());
  const void* base = t.storage()->data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    switch (t.dtype()) {
      case DType::f32: out[i] = static_cast<const float*>(base)[offsets[i]]; break;
      case DType::f64: out[i] = static_cast<const double*>(base)[offsets[i]]; break;
      case DType::i64:
        out[i] = static_cast<double>(static_cast<const std::int64_t*>(base)[offsets[i]]);
        break;
    }
  }
  return out;
}

/// The logical elements of an int64 tensor, exactly.
inline std::vector<std::int64_t> read_i64(const Tensor& t) {
  REQUIRE(t.dtype() == DType::i64);
  const auto offsets = element_offsets(t);
  std::vector<std::int64_t> out(offsets.size());
  const auto* base = static_cast<const std::int64_t*>(t.storage()->data());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = base[offsets[i]];
  return out;
}

/// `v` rounded to the precision of `dtype` (what storing it in such a tensor gives).
inline double round_to(double v, DType dtype) {
  if (dtype == DType::f32) return static_cast<double>(static_cast<float>(v));
  if (dtype == DType::i64) return static_cast<double>(static_cast<std::int64_t>(v));
  return v;
}

// ---- comparisons ------------------------------------------------------------------------------

/// Relative and absolute tolerance of a comparison.
struct Tol {
  double rtol;
  double atol;
};

/// Elementwise-op tolerance: float32 is checked loosely, float64 tightly.
inline Tol tol_for(DType dtype) { return dtype == DType::f32 ? Tol{2e-6, 1e-6} : Tol{1e-13, 1e-14}; }

/// True when got matches want: NaN only equals NaN, infinities must be equal, and finite values
/// must agree within atol + rtol * |want|.
inline bool close(double got, double want, Tol tol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= tol.atol + tol.rtol * std::abs(want);
}

/// Checks every element of got against want (same length), reporting the first mismatch.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want, Tol tol) {
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0;
  std::ostringstream first;
  first.precision(17);
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (close(got[i], want[i], tol)) continue;
    if (bad == 0) first << "element " << i << ": got " << got[i] << ", want " << want[i];
    ++bad;
  }
  INFO(first.str() << " (" << bad << " of " << got.size() << " elements differ)");
  CHECK(bad == 0);
}

/// Like check_close, with a tolerance per element: |got - want| <= rtol * scale[i] + atol.
/// Used for sums and products, whose rounding error grows with the sum of magnitudes.
inline void check_close_scaled(const std::vector<double>& got, const std::vector<double>& want,
                               const std::vector<double>& scale, Tol tol) {
  REQUIRE(got.size() == want.size());
  REQUIRE(scale.size() == want.size());
  std::size_t bad = 0;
  std::ostringstream first;
  first.precision(17);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isnan(want[i]) || std::isinf(want[i])
                        ? close(got[i], want[i], tol)
                        : std::abs(got[i] - want[i]) <= tol.atol + tol.rtol * scale[i];
    if (ok) continue;
    if (bad == 0) first << "element " << i << ": got " << got[i] << ", want " << want[i];
    ++bad;
  }
  INFO(first.str() << " (" << bad << " of " << got.size() << " elements differ)");
  CHECK(bad == 0);
}

/// Exact (bitwise for non-NaN values, NaN matching NaN) comparison.
inline void check_equal(const std::vector<double>& got, const std::vector<double>& want) {
  check_close(got, want, Tol{0.0, 0.0});
}

// ---- inputs -----------------------------------------------------------------------------------

/// How an input tensor is laid out in memory. Its logical shape and values do not depend on it.
enum class Layout {
  contiguous,  // row-major, offset 0
  transposed,  // a permuted view (axes reversed) of a contiguous tensor; 0-d/1-d: strided picks
  sliced,      // every other element (step 2, starting at 1) along every axis
  broadcast,   // an expand of a tensor whose even-numbered axes have size 1 (stride 0)
  offset,      // row-major, but starting 3 elements into its storage
};

inline constexpr Layout kLayouts[] = {Layout::contiguous, Layout::transposed, Layout::sliced,
                                      Layout::broadcast, Layout::offset};

inline const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::sliced: return "sliced";
    case Layout::broadcast: return "broadcast";
    case Layout::offset: return "offset";
  }
  return "?";
}

/// Where input values are drawn from.
struct Domain {
  double lo = -2.0;
  double hi = 2.0;
  bool avoid_zero = false;  // keep |x| >= 0.25 (for 1/x and friends)
  bool integers = false;    // round to integers (ties for comparisons, exact products)

  double draw(Rng& rng) const {
    double v = lo + (hi - lo) * rng.uniform01();
    if (integers) v = std::floor(v);
    if (avoid_zero && std::abs(v) < 0.25) v += v < 0 ? -0.5 : 0.5;
    if (integers && avoid_zero && v == 0) v = 1;
    return v;
  }
};

/// A contiguous tensor of `shape` filled with draws from `domain`.
inline Tensor random_contiguous(const Shape& shape, DType dtype, Rng& rng, const Domain& domain) {
  std::vector<double> values(static_cast<std::size_t>(count(shape)));
  for (auto& v : values) v = domain.draw(rng);
  return from_vector(values, shape, dtype);
}

/// A tensor of logical `shape` with random values from `domain`, laid out as `layout`.
inline Tensor make_input(const Shape& shape, Layout layout, DType dtype, Rng& rng,
                         const Domain& domain = {}) {
  const std::size_t nd = shape.size();
  switch (layout) {
    case Layout::contiguous: return random_contiguous(shape, dtype, rng, domain);
    case Layout::transposed: {
      if (nd == 0) return random_contiguous({3}, dtype, rng, domain).select(0, 2);
      if (nd == 1) return random_contiguous({3, shape[0]}, dtype, rng, domain).t().select(1, 1);
      Shape reversed;
      std::vector<std::int64_t> perm;
      for (std::size_t d = nd; d-- > 0;) {
        reversed.push_back(shape[d]);
        perm.push_back(static_cast<std::int64_t>(d));
      }
      return random_contiguous(reversed, dtype, rng, domain).permute(perm);
    }
    case Layout::sliced: {
      if (nd == 0) return random_contiguous({4}, dtype, rng, domain).slice(0, 1, 4, 2).select(0, 1);
      Shape base(nd);
      for (std::size_t d = 0; d < nd; ++d) base[d] = 2 * shape[d] + 1;
      Tensor t = random_contiguous(base, dtype, rng, domain);
      for (std::size_t d = 0; d < nd; ++d) t = t.slice(static_cast<std::int64_t>(d), 1, 1 + 2 * shape[d], 2);
      return t;
    }
    case Layout::broadcast: {
      if (nd == 0) return random_contiguous({1}, dtype, rng, domain).expand({5}).select(0, 3);
      Shape base = shape;
      for (std::size_t d = 0; d < nd; d += 2) base[d] = 1;
      return random_contiguous(base, dtype, rng, domain).expand(shape);
    }
    case Layout::offset: {
      const std::int64_t n = count(shape);
      return random_contiguous({n + 3}, dtype, rng, domain).slice(0, 3, n + 3).reshape(shape);
    }
  }
  return {};
}

// ---- broadcasting and reductions --------------------------------------------------------------

/// NumPy broadcasting of two shapes, or false when they are incompatible.
inline bool broadcast(const Shape& a, const Shape& b, Shape& out) {
  const std::size_t nd = a.size() > b.size() ? a.size() : b.size();
  out.assign(nd, 1);
  for (std::size_t i = 0; i < nd; ++i) {
    // i counts from the right.
    const std::int64_t sa = i < a.size() ? a[a.size() - 1 - i] : 1;
    const std::int64_t sb = i < b.size() ? b[b.size() - 1 - i] : 1;
    std::int64_t s;
    if (sa == sb)
      s = sa;
    else if (sa == 1)
      s = sb;
    else if (sb == 1)
      s = sa;
    else
      return false;
    out[nd - 1 - i] = s;
  }
  return true;
}

/// Row-major position in `in_shape` of the element that broadcasting maps to position `linear`
/// of `out_shape`.
inline std::int64_t broadcast_source(std::int64_t linear, const Shape& out_shape, const Shape& in_shape) {
  const auto index = unravel(linear, out_shape);
  const std::size_t lead = out_shape.size() - in_shape.size();
  std::vector<std::int64_t> in_index(in_shape.size());
  for (std::size_t d = 0; d < in_shape.size(); ++d) in_index[d] = in_shape[d] == 1 ? 0 : index[lead + d];
  return ravel(in_index, in_shape);
}

/// A tensor's values and shape, as plain data.
struct Dense {
  Shape shape;
  std::vector<double> values;
};

inline Dense dense(const Tensor& t) { return {t.shape(), read(t)}; }

/// f(a, b) elementwise under NumPy broadcasting. The shapes must be compatible.
inline Dense binary(const Dense& a, const Dense& b, const std::function<double(double, double)>& f) {
  Dense out;
  REQUIRE(broadcast(a.shape, b.shape, out.shape));
  out.values.resize(static_cast<std::size_t>(count(out.shape)));
  for (std::size_t i = 0; i < out.values.size(); ++i) {
    const auto li = static_cast<std::int64_t>(i);
    out.values[i] = f(a.values[static_cast<std::size_t>(broadcast_source(li, out.shape, a.shape))],
                      b.values[static_cast<std::size_t>(broadcast_source(li, out.shape, b.shape))]);
  }
  return out;
}

/// Axes as a membership mask over `ndim` axes (negative counts from the end, empty = all).
inline std::vector<bool> axis_mask(const std::vector<std::int64_t>& axes, std::size_t ndim) {
  std::vector<bool> mask(ndim, axes.empty());
  for (auto a : axes) mask[static_cast<std::size_t>(a < 0 ? a + static_cast<std::int64_t>(ndim) : a)] = true;
  return mask;
}

/// The groups of a reduction: for every output position (row-major over the kept axes), the
/// input values reduced into it, in row-major input order; out_shape honours keepdim.
struct Groups {
  Shape out_shape;
  std::vector<std::vector<double>> members;
};

inline Groups group(const Dense& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  const auto mask = axis_mask(axes, x.shape.size());
  Groups g;
  Shape kept;
  for (std::size_t d = 0; d < x.shape.size(); ++d) {
    if (!mask[d]) kept.push_back(x.shape[d]);
    if (!mask[d])
      g.out_shape.push_back(x.shape[d]);
    else if (keepdim)
      g.out_shape.push_back(1);
  }
  g.members.resize(static_cast<std::size_t>(count(kept)));
  for (std::size_t i = 0; i < x.values.size(); ++i) {
    const auto index = unravel(static_cast<std::int64_t>(i), x.shape);
    std::vector<std::int64_t> kept_index;
    for (std::size_t d = 0; d < index.size(); ++d)
      if (!mask[d]) kept_index.push_back(index[d]);
    g.members[static_cast<std::size_t>(ravel(kept_index, kept))].push_back(x.values[i]);
  }
  return g;
}

/// Applies `fold` to every group of a reduction.
inline Dense reduce(const Dense& x, const std::vector<std::int64_t>& axes, bool keepdim,
                    const std::function<double(const std::vector<double>&)>& fold) {
  const Groups g = group(x, axes, keepdim);
  Dense out{g.out_shape, {}};
  for (const auto& m : g.members) out.values.push_back(fold(m));
  return out;
}

// Folds for reductions, accumulated in long double.
inline double sum_of(const std::vector<double>& v) {
  long double s = 0;
  for (double x : v) s += x;
  return static_cast<double>(s);
}
inline double abs_sum_of(const std::vector<double>& v) {
  long double s = 0;
  for (double x : v) s += std::abs(x);
  return static_cast<double>(s);
}
inline double max_of(const std::vector<double>& v) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : v) {
    if (std::isnan(x)) return x;
    if (x > m) m = x;
  }
  return m;
}
inline double min_of(const std::vector<double>& v) {
  double m = std::numeric_limits<double>::infinity();
  for (double x : v) {
    if (std::isnan(x)) return x;
    if (x < m) m = x;
  }
  return m;
}

// ---- matmul -----------------------------------------------------------------------------------

/// NumPy matmul by the triple loop; `scale` receives sum_k |a_ik b_kj| per output (the size of
/// the rounding error a correct implementation may make).
inline Dense matmul(const Dense& a_in, const Dense& b_in, std::vector<double>* scale = nullptr) {
  Dense a = a_in, b = b_in;
  if (a.shape.size() == 1) a.shape.insert(a.shape.begin(), 1);
  if (b.shape.size() == 1) b.shape.push_back(1);
  const std::int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
  REQUIRE(b.shape[b.shape.size() - 2] == k);
  const Shape batch_a(a.shape.begin(), a.shape.end() - 2), batch_b(b.shape.begin(), b.shape.end() - 2);
  Shape batch;
  REQUIRE(broadcast(batch_a, batch_b, batch));
  Dense out;
  out.shape = batch;
  out.shape.push_back(m);
  out.shape.push_back(n);
  out.values.assign(static_cast<std::size_t>(count(out.shape)), 0.0);
  if (scale) scale->assign(out.values.size(), 0.0);
  for (std::int64_t p = 0; p < count(batch); ++p) {
    const std::int64_t pa = broadcast_source(p, batch, batch_a), pb = broadcast_source(p, batch, batch_b);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        long double acc = 0, mag = 0;
        for (std::int64_t q = 0; q < k; ++q) {
          const double x = a.values[static_cast<std::size_t>((pa * m + i) * k + q)];
          const double y = b.values[static_cast<std::size_t>((pb * k + q) * n + j)];
          acc += static_cast<long double>(x) * y;
          mag += std::abs(static_cast<long double>(x) * y);
        }
        const auto o = static_cast<std::size_t>((p * m + i) * n + j);
        out.values[o] = static_cast<double>(acc);
        if (scale) (*scale)[o] = static_cast<double>(mag);
      }
  }
  if (a_in.shape.size() == 1) out.shape.erase(out.shape.end() - 2);
  if (b_in.shape.size() == 1) out.shape.pop_back();
  return out;
}

// ---- the generator behind theta::Rng ----------------------------------------------------------

/// splitmix64 (Steele, Lea, Flood 2014), advancing `state`.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// xoshiro256** (Blackman, Vigna 2018) seeded by four splitmix64 outputs.
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(std::uint64_t seed) {
    std::uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64(sm);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4] = {};
};

// ---- misc -------------------------------------------------------------------------------------

/// Bit pattern of a double (for bitwise determinism checks).
inline std::uint64_t bits(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

inline const char* dtype_label(DType dtype) {
  return dtype == DType::f32 ? "f32" : dtype == DType::f64 ? "f64" : "i64";
}

}  // namespace theta::ref
