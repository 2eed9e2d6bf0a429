#include "tensor/rng.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace theta {

namespace {
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

template <class Fill> Tensor generate(const Shape& shape, DType dtype, const char* op, Fill&& fill) {
  shape_numel(shape, op);
  Tensor out = Tensor::empty(shape, dtype);
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0, n = out.numel(); i < n; ++i) p[i] = static_cast<T>(fill());
  });
  return out;
}
}  // namespace

Rng::Rng(std::uint64_t seed) {
  std::uint64_t state = seed;
  for (auto& word : s_) word = splitmix64(state);
}

std::uint64_t Rng::next_u64() {
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

double Rng::uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal01() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = 2.0 * uniform01() - 1.0;
    v = 2.0 * uniform01() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double factor = std::sqrt(-2.0 * std::log(s) / s);
  spare_ = v * factor;
  has_spare_ = true;
  return u * factor;
}

std::uint64_t Rng::below(std::uint64_t n) {
  THETA_CHECK(n >= 1, std::invalid_argument, "Rng::below: empty range");
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // accept [0, limit)
  std::uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

Rng Rng::split() { return Rng(next_u64()); }

Tensor Rng::normal(const Shape& shape, double mean, double std, DType dtype) {
  THETA_CHECK(is_floating(dtype), DTypeError, "Rng::normal: dtype must be floating, got ", dtype_name(dtype));
  THETA_CHECK(std >= 0, std::invalid_argument, "Rng::normal: negative std ", std);
  return generate(shape, dtype, "Rng::normal", [&] { return mean + std * normal01(); });
}

Tensor Rng::uniform(const Shape& shape, double lo, double hi, DType dtype) {
  THETA_CHECK(is_floating(dtype), DTypeError, "Rng::uniform: dtype must be floating, got ", dtype_name(dtype));
  THETA_CHECK(lo <= hi, std::invalid_argument, "Rng::uniform: lo ", lo, " > hi ", hi);
  Tensor out = generate(shape, dtype, "Rng::uniform", [&] { return lo + (hi - lo) * uniform01(); });
  if (!(lo < hi)) return out;
  // Rounding lo + (hi - lo) * u to the dtype can reach hi; such draws become the largest value
  // of the dtype below hi, so every sample stays in [lo, hi).
  visit_float_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T top = static_cast<T>(hi);
    while (static_cast<double>(top) >= hi) top = std::nextafter(top, -std::numeric_limits<T>::infinity());
    top = std::max(top, static_cast<T>(lo));
    T* p = out.data<T>();
    for (std::int64_t i = 0, n = out.numel(); i < n; ++i) p[i] = std::min(p[i], top);
  });
  return out;
}

Tensor Rng::integers(const Shape& shape, std::int64_t lo, std::int64_t hi) {
  THETA_CHECK(lo < hi, std::invalid_argument, "Rng::integers: empty range [", lo, ", ", hi, ")");
  const auto range = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  return generate(shape, DType::i64, "Rng::integers", [&] {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + below(range));
  });
}

Tensor Rng::permutation(std::int64_t n) {
  THETA_CHECK(n >= 0, std::invalid_argument, "Rng::permutation: negative size ", n);
  Tensor out = arange(0, static_cast<double>(n), 1, DType::i64);
  auto* p = out.data<std::int64_t>();
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(p[i], p[below(static_cast<std::uint64_t>(i) + 1)]);
  return out;
}

Tensor Rng::rademacher(const Shape& shape, DType dtype) {
  THETA_CHECK(is_floating(dtype), DTypeError, "Rng::rademacher: dtype must be floating");
  return generate(shape, dtype, "Rng::rademacher", [&] { return (next_u64() >> 63) ? 1.0 : -1.0; });
}

}  // namespace theta
