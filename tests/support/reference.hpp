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
