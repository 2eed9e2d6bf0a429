// Determinism: reductions are bitwise identical for any thread count and from run to run
// (Note [Deterministic reductions]), and accurate.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"
#include "tests/support/thread_count.hpp"

using namespace theta;
using test::ThreadCount;

namespace {

// Bit patterns of every element.
std::vector<std::uint64_t> bit_patterns(const Tensor& t) {
  std::vector<std::uint64_t> out;
  for (double v : ref::read(t)) out.push_back(ref::bits(v));
  return out;
}

}  // namespace

TEST_CASE("sum of 10^6 floats is bitwise identical at 1 and 2 threads and run to run",
          "[tensor][determinism]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    Rng rng(1234);
    const Tensor x = rng.uniform({1000000}, -1.0, 1.0, dtype);
    std::uint64_t one, two, again;
    {
      ThreadCount threads(1);
      one = ref::bits(sum(x).item());
    }
    {
      ThreadCount threads(2);
      two = ref::bits(sum(x).item());
      again = ref::bits(sum(x).item());
    }
    CHECK(one == two);
    CHECK(two == again);
    // And accurate: within n * eps * sum|x| of the exact sum, far tighter in practice.
    const auto v = ref::read(x);
    const double got = sum(x).item();
    const double tol = dtype == DType::f32 ? 1e-5 : 1e-14;
    CHECK(std::abs(got - ref::sum_of(v)) <= tol * ref::abs_sum_of(v));
    // mean, var and the norms are built on sum and inherit its determinism.
    std::vector<std::uint64_t> composed_one, composed_two;
    {
      ThreadCount threads(1);
      for (const Tensor& r : {mean(x), var(x), norm(x), logsumexp(x), max(x)})
        composed_one.push_back(ref::bits(r.item()));
    }
    {
      ThreadCount threads(2);
      for (const Tensor& r : {mean(x), var(x), norm(x), logsumexp(x), max(x)})
        composed_two.push_back(ref::bits(r.item()));
    }
    CHECK(composed_one == composed_two);
  }
}

TEST_CASE("axis reductions are bitwise identical at 1 and 2 threads", "[tensor][determinism]") {
  Rng rng(4321);
  const Tensor x = rng.uniform({1000, 1000}, -1.0, 1.0, DType::f32);
  // Across rows (reduced axis leading), along rows, and along a transposed view.
  for (const std::vector<std::int64_t>& axes : {std::vector<std::int64_t>{0}, {1}}) {
    for (const Tensor& input : {x, x.t()}) {
      std::vector<std::uint64_t> one, two;
      {
        ThreadCount threads(1);
        one = bit_patterns(sum(input, axes));
      }
      {
        ThreadCount threads(2);
        two = bit_patterns(sum(input, axes));
      }
      CHECK(one == two);
    }
  }
  // Elementwise results do not depend on the thread count either.
  const Tensor big = rng.uniform({300000}, -3.0, 3.0);
  std::vector<std::uint64_t> one, two;
  {
    ThreadCount threads(1);
    one = bit_patterns(tanh(big) * big + 1.0);
  }
  {
    ThreadCount threads(2);
    two = bit_patterns(tanh(big) * big + 1.0);
  }
  CHECK(one == two);
}

TEST_CASE("parallel elementwise ops over strided and broadcast inputs match the reference",
          "[tensor][determinism][parallel]") {
  // Big enough to be split across threads (kElementwiseGrain elements per chunk at least), so
  // chunks start in the middle of strided rows.
  ThreadCount threads(2);
  Rng rng(555);
  const Tensor x = rng.uniform({601, 300}, -2.0, 2.0).t();  // [300, 601], strides [1, 300]
  const Tensor row = rng.uniform({601}, -2.0, 2.0);
  const Tensor col = rng.uniform({300, 1}, 0.5, 2.0);
  const auto xv = ref::read(x), rv = ref::read(row), cv = ref::read(col);
  const auto e = ref::read(exp(x));
  const auto s = ref::read(x * row + col);
  const auto w = ref::read(where(gt(x, row), x, col));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const std::size_t r = i / 601, c = i % 601;
    bad += !ref::close(e[i], std::exp(xv[i]), ref::tol_for(DType::f64));
    bad += s[i] != xv[i] * rv[c] + cv[r];
    bad += w[i] != (xv[i] > rv[c] ? xv[i] : cv[r]);
  }
  CHECK(bad == 0);
  // A strided copy (contiguous) split across threads.
  CHECK(ref::read(x.contiguous()) == xv);
}

// Note [Spinning before sleeping] in parallel.cpp: workers and caller poll before they sleep. These
// regions exercise each hand-off: back to back (a polling worker takes the next region), after a
// pause longer than the polling (the worker sleeps and is woken), with the workers finishing last
// (the caller stops polling and sleeps), and with more indices than workers.
TEST_CASE("parallel_for hands regions to its workers whether they poll or sleep", "[tensor][parallel]") {
  for (int threads : {2, 3}) {
    ThreadCount use(threads);
    const std::int64_t n = 6000;
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    const auto region = [&](bool slow_workers) {
      parallel_for(n, 1, [&](std::int64_t begin, std::int64_t end) {
        if (slow_workers && begin > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        for (std::int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
      });
    };
    int regions = 0;
    for (int r = 0; r < 500; ++r, ++regions) region(false);
    for (int r = 0; r < 5; ++r, ++regions) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      region(false);
    }
    for (int r = 0; r < 5; ++r, ++regions) region(true);
    int wrong = 0;
    for (int h : hits) wrong += h != regions;
    CHECK(wrong == 0);
  }
}

TEST_CASE("parallel_for covers the range exactly once", "[tensor][determinism][parallel]") {
  for (int threads : {1, 2, 3}) {
    ThreadCount use(threads);
    CHECK(get_num_threads() == threads);
    for (std::int64_t n : {0, 1, 5, 1000, 100000}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      parallel_for(n, 100, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) ++hits[static_cast<std::size_t>(i)];
      });
      int wrong = 0;
      for (int h : hits) wrong += h != 1;
      CHECK(wrong == 0);
    }
  }
  CHECK_THROWS_AS(set_num_threads(0), std::invalid_argument);
  // An exception thrown in a worker reaches the caller.
  ThreadCount use(2);
  CHECK_THROWS_AS(parallel_for(1000, 1,
                               [](std::int64_t begin, std::int64_t) {
                                 if (begin > 0) throw std::runtime_error("worker failed");
                               }),
                  std::runtime_error);
}
