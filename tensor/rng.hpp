#pragma once
// Rng: an explicit, seeded random number generator (xoshiro256**). There is no global random
// state in theta. The same seed gives the same numbers on every machine and standard library:
// normals use the Marsaglia polar method on top of our own uniform bits, never
// std::normal_distribution.

#include <array>
#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta {

class Rng {
 public:
  /// A generator whose whole stream is determined by `seed`.
  explicit Rng(std::uint64_t seed = 0);

  /// 64 uniform random bits.
  std::uint64_t next_u64();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform01();
  /// Standard normal.
  double normal01();
  /// Uniform integer in [0, n) without modulo bias (n >= 1).
  std::uint64_t below(std::uint64_t n);
  /// An independent generator derived from this one's stream (advances this generator).
  Rng split();

  /// Normal(mean, std) samples of `shape`.
  Tensor normal(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = DType::f64);
  /// Uniform samples in [lo, hi).
  Tensor uniform(const Shape& shape, double lo = 0.0, double hi = 1.0, DType dtype = DType::f64);
  /// int64 samples uniform in [lo, hi).
  Tensor integers(const Shape& shape, std::int64_t lo, std::int64_t hi);
  /// A random permutation of 0..n-1 (int64, Fisher-Yates).
  Tensor permutation(std::int64_t n);
  /// +1 or -1 with equal probability (Rademacher probes).
  Tensor rademacher(const Shape& shape, DType dtype = DType::f64);

 private:
  std::array<std::uint64_t, 4> s_{};
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace theta
