// Rng: the exact stream (pinned against xoshiro256** and splitmix64 written out here), seeding,
// and the statistics of every sampler.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"

using namespace theta;

TEST_CASE("the test's splitmix64 matches its published test vector", "[tensor][rng]") {
  // Outputs for state 1234567, as published with the generator's reference implementations.
  std::uint64_t state = 1234567;
  CHECK(ref::splitmix64(state) == 6457827717110365317ull);
  CHECK(ref::splitmix64(state) == 3203168211198807973ull);
  CHECK(ref::splitmix64(state) == 9817491932198370423ull);
  CHECK(ref::splitmix64(state) == 4593380528125082431ull);
  CHECK(ref::splitmix64(state) == 16408922859458223821ull);
}

TEST_CASE("Rng(42) produces the pinned xoshiro256** stream", "[tensor][rng]") {
  // Pinned so the stream cannot change silently across machines and releases.
  Rng rng(42);
  CHECK(rng.next_u64() == 0x15780b2e0c2ec716ull);
  CHECK(rng.next_u64() == 0x6104d9866d113a7eull);
  CHECK(rng.next_u64() == 0xae17533239e499a1ull);
  CHECK(rng.next_u64() == 0xecb8ad4703b360a1ull);
  // And the rest of the stream follows the definition.
  for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xFFFFFFFFFFFFFFFFull}) {
    Rng r(seed);
    ref::Xoshiro256ss want(seed);
    int mismatches = 0;
    for (int i = 0; i < 1000; ++i) mismatches += r.next_u64() != want.next();
    CHECK(mismatches == 0);
  }
}

TEST_CASE("uniform01 uses the top 53 bits of the stream", "[tensor][rng]") {
  Rng rng(7);
  ref::Xoshiro256ss want(7);
  for (int i = 0; i < 100; ++i)
    CHECK(rng.uniform01() == std::ldexp(static_cast<double>(want.next() >> 11), -53));
}

TEST_CASE("normal01 is the Marsaglia polar method on uniform01", "[tensor][rng]") {
  Rng rng(42);
  ref::Xoshiro256ss bits(42);
  auto uniform = [&] { return std::ldexp(static_cast<double>(bits.next() >> 11), -53); };
  for (int pair = 0; pair < 50; ++pair) {
    // Draw points in the square until one lands strictly inside the unit disc (and not at 0).
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = std::sqrt(-2.0 * std::log(s) / s);
    CHECK(rng.normal01() == u * f);
    CHECK(rng.normal01() == v * f);
  }
}

TEST_CASE("same seed, same stream; different seeds differ", "[tensor][rng]") {
  Rng a(123), b(123), c(124);
  const Tensor xa = a.normal({1000}), xb = b.normal({1000}), xc = c.normal({1000});
  CHECK(ref::read(xa) == ref::read(xb));
  const auto va = ref::read(xa), vc = ref::read(xc);
  int same = 0;
  for (std::size_t i = 0; i < va.size(); ++i) same += va[i] == vc[i];
  CHECK(same == 0);
  // Every sampler is reproducible, including interleaved use.
  Rng d(5), e(5);
  CHECK(ref::read(d.uniform({50}, -1, 1, DType::f32)) == ref::read(e.uniform({50}, -1, 1, DType::f32)));
  CHECK(ref::read(d.integers({50}, 0, 9)) == ref::read(e.integers({50}, 0, 9)));
  CHECK(ref::read(d.permutation(30)) == ref::read(e.permutation(30)));
  CHECK(ref::read(d.rademacher({50})) == ref::read(e.rademacher({50})));
  CHECK(d.next_u64() == e.next_u64());
  // split derives a generator whose stream differs from its parent's.
  Rng parent(9);
  Rng child = parent.split();
  CHECK(child.next_u64() != parent.next_u64());
}

TEST_CASE("normal samples have mean 0 and variance 1", "[tensor][rng][stats]") {
  // n = 100000 standard normals: the sample mean has standard error 1/sqrt(n) ~ 0.0032 and the
  // sample variance sqrt(2/(n-1)) ~ 0.0045. Five standard errors: a false alarm has
  // probability ~6e-7 per check.
  const double n = 100000;
  for (DType dtype : {DType::f32, DType::f64}) {
    Rng rng(2024);
    const auto v = ref::read(rng.normal({100000}, 0.0, 1.0, dtype));
    long double s = 0, s2 = 0;
    for (double x : v) s += x;
    const double mean = static_cast<double>(s) / n;
    for (double x : v) s2 += (x - mean) * (x - mean);
    const double variance = static_cast<double>(s2) / (n - 1);
    CHECK(std::abs(mean) < 5 / std::sqrt(n));
    CHECK(std::abs(variance - 1) < 5 * std::sqrt(2 / (n - 1)));
    // The fraction within one standard deviation: p = 0.6827, standard error sqrt(p(1-p)/n).
    double inside = 0;
    for (double x : v) inside += std::abs(x) < 1;
    CHECK(std::abs(inside / n - 0.682689) < 5 * std::sqrt(0.682689 * 0.317311 / n));
  }
  // Shifted and scaled.
  Rng rng(77);
  const auto v = ref::read(rng.normal({100000}, 3.0, 0.5));
  double s = 0;
  for (double x : v) s += x;
  CHECK(std::abs(s / n - 3.0) < 5 * 0.5 / std::sqrt(n));
  CHECK_THROWS_AS(rng.normal({2}, 0, -1), std::invalid_argument);
  CHECK_THROWS_AS(rng.normal({2}, 0, 1, DType::i64), DTypeError);
}

TEST_CASE("uniform samples lie in [lo, hi) and fill it evenly", "[tensor][rng][stats]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Rng rng(99);
    const auto v = ref::read(rng.uniform({100000}, -2.0, 3.0, dtype));
    double s = 0;
    int outside = 0;
    for (double x : v) {
      outside += !(x >= -2.0 && x < 3.0);
      s += x;
    }
    CHECK(outside == 0);
    // Mean 0.5, standard deviation 5/sqrt(12) per sample.
    CHECK(std::abs(s / 100000 - 0.5) < 5 * (5 / std::sqrt(12.0)) / std::sqrt(100000.0));
  }
  // [1, next value after 1): lo + (hi - lo) * u rounds up to hi for half the draws; the only
  // value of the dtype in the range is 1.
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const double hi =
        dtype == DType::f32 ? static_cast<double>(std::nextafter(1.0f, 2.0f)) : std::nextafter(1.0, 2.0);
    Rng narrow(3);
    int not_one = 0;
    for (double x : ref::read(narrow.uniform({1000}, 1.0, hi, dtype))) not_one += x != 1.0;
    CHECK(not_one == 0);
  }
  Rng rng(1);
  CHECK(ref::read(rng.uniform({3}, 2.0, 2.0)) == std::vector<double>(3, 2.0));
  CHECK_THROWS_AS(rng.uniform({2}, 1.0, 0.0), std::invalid_argument);
}

TEST_CASE("integers lie in [lo, hi) and hit every value", "[tensor][rng][stats]") {
  Rng rng(5);
  const Tensor t = rng.integers({7000}, -3, 4);
  CHECK(t.dtype() == DType::i64);
  std::vector<int> hits(7, 0);
  for (std::int64_t v : ref::read_i64(t)) {
    REQUIRE((v >= -3 && v < 4));
    ++hits[static_cast<std::size_t>(v + 3)];
  }
  // Each value expects 1000 hits with standard deviation ~29.
  for (int h : hits) CHECK(std::abs(h - 1000) < 5 * 29);
  CHECK(ref::read_i64(rng.integers({5}, 8, 9)) == std::vector<std::int64_t>(5, 8));
  // The widest range, 2^64 - 1 values: both halves appear.
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                     hi = std::numeric_limits<std::int64_t>::max();
  int negative = 0;
  for (std::int64_t v : ref::read_i64(rng.integers({100}, lo, hi))) {
    CHECK(v < hi);
    negative += v < 0;
  }
  CHECK((negative > 20 && negative < 80));
  CHECK_THROWS_AS(rng.integers({2}, 3, 3), std::invalid_argument);
  for (int i = 0; i < 1000; ++i) CHECK(rng.below(3) < 3);
  CHECK(rng.below(1) == 0);
}

TEST_CASE("permutation is a permutation", "[tensor][rng]") {
  Rng rng(8);
  for (std::int64_t n : {0, 1, 2, 10, 1000}) {
    const auto p = ref::read_i64(rng.permutation(n));
    REQUIRE(static_cast<std::int64_t>(p.size()) == n);
    auto sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (std::int64_t i = 0; i < n; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
  }
  // Not the identity (a shuffle of 1000 is the identity with probability 1/1000!).
  const auto p = ref::read_i64(rng.permutation(1000));
  int fixed = 0;
  for (std::size_t i = 0; i < p.size(); ++i) fixed += p[i] == static_cast<std::int64_t>(i);
  CHECK(fixed < 10);
  CHECK_THROWS_AS(rng.permutation(-1), std::invalid_argument);
}

TEST_CASE("rademacher samples are +-1 with equal probability", "[tensor][rng][stats]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Rng rng(13);
    const auto v = ref::read(rng.rademacher({100000}, dtype));
    double s = 0;
    for (double x : v) {
      REQUIRE((x == 1.0 || x == -1.0));
      s += x;
    }
    // The sum has standard deviation sqrt(n).
    CHECK(std::abs(s) < 5 * std::sqrt(100000.0));
  }
}
