#pragma once
// Reference computations for the tensor-layer tests: broadcasting, reductions, matmul and the
// random generator behind theta::Rng, all as plain loops over std::vector<double> (see
// reference.hpp for how tensors are read).

#include <cstdint>
#include <functional>
#include <vector>

#include "tests/support/reference.hpp"

namespace theta::ref {

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

}  // namespace theta::ref
