// In-place ops whose source shares memory with their destination (Note [Overlapping in-place
// operands] in tensor/overlap.cpp), against a reference computed on a snapshot of the storage.

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using Catch::Contains;

namespace {

// Storage offset of the element of `src` that lands on each element of `dst` (row-major over
// dst's shape) when src is broadcast to dst's shape by NumPy rules.
std::vector<std::int64_t> broadcast_offsets(const Tensor& src, const Shape& shape) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(ref::count(shape)));
  const std::size_t lead = shape.size() - src.shape().size();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto index = ref::unravel(static_cast<std::int64_t>(i), shape);
    std::int64_t off = src.offset();
    for (std::size_t d = 0; d < src.shape().size(); ++d)
      if (src.shape()[d] != 1) off += index[lead + d] * src.strides()[d];
    out[i] = off;
  }
  return out;
}

// The storage of `base` (contiguous, offset 0) after dst = dst * keep + alpha * src, computed on a
// snapshot taken before the write, so every read sees the old values.
std::vector<double> expected_storage(const Tensor& base, const Tensor& dst, const Tensor& src, double keep,
                                     double alpha) {
  const std::vector<double> before = ref::read(base);
  std::vector<double> after = before;
  const auto d = ref::element_offsets(dst);
  const auto s = broadcast_offsets(src, dst.shape());
  for (std::size_t i = 0; i < d.size(); ++i) {
    const auto di = static_cast<std::size_t>(d[i]), si = static_cast<std::size_t>(s[i]);
    after[di] = keep * before[di] + alpha * before[si];
  }
  return after;
}

// Integer-valued elements 0, 1, 2, ... (exact in every dtype and under the alphas used below).
Tensor iota(const Shape& shape, DType dtype) {
  return arange(0, static_cast<double>(ref::count(shape)), 1, dtype).reshape(shape);
}

struct OverlapCase {
  std::string name;
  Shape base_shape;
  std::function<Tensor(const Tensor&)> dst;
  std::function<Tensor(const Tensor&)> src;
};

std::vector<OverlapCase> overlap_cases() {
  return {
      {"shifted forward by one (a running sum if read after writing)", {9},
       [](const Tensor& b) { return b.slice(0, 1, 9); }, [](const Tensor& b) { return b.slice(0, 0, 8); }},
      {"shifted backward by one", {9}, [](const Tensor& b) { return b.slice(0, 0, 8); },
       [](const Tensor& b) { return b.slice(0, 1, 9); }},
      {"a matrix and its own transpose", {3, 3}, [](const Tensor& b) { return b; },
       [](const Tensor& b) { return b.t(); }},
      {"a transposed destination and its base", {4, 4}, [](const Tensor& b) { return b.t(); },
       [](const Tensor& b) { return b; }},
      {"overlapping blocks, one transposed", {6, 6},
       [](const Tensor& b) { return b.slice(0, 0, 4).slice(1, 0, 4); },
       [](const Tensor& b) { return b.slice(0, 1, 5).slice(1, 2, 6).t(); }},
      {"every other element from the ones between", {17}, [](const Tensor& b) { return b.slice(0, 0, 16, 2); },
       [](const Tensor& b) { return b.slice(0, 1, 17, 2); }},
      {"rows shifted down, strided columns", {5, 8},
       [](const Tensor& b) { return b.slice(0, 1, 5).slice(1, 0, 8, 2); },
       [](const Tensor& b) { return b.slice(0, 0, 4).slice(1, 1, 8, 2); }},
      {"a broadcast column of the destination read as a row", {4, 4}, [](const Tensor& b) { return b; },
       [](const Tensor& b) { return b.select(1, 0).unsqueeze(0); }},
      {"a broadcast row of the destination", {4, 5}, [](const Tensor& b) { return b.slice(0, 1, 4); },
       [](const Tensor& b) { return b.select(0, 2); }},
      {"large: shifted by one past the parallel grain", {3 * kElementwiseGrain + 7},
       [](const Tensor& b) { return b.slice(0, 1, 3 * kElementwiseGrain + 7); },
       [](const Tensor& b) { return b.slice(0, 0, 3 * kElementwiseGrain + 6); }},
      {"large: a matrix and its own transpose", {512, 512}, [](const Tensor& b) { return b; },
       [](const Tensor& b) { return b.t(); }},
  };
}

}  // namespace

TEST_CASE("add_ on overlapping memory: the reproducers", "[tensor][add_][overlap]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    Tensor x = arange(0, 9, 1, dtype);
    x.slice(0, 1, 9).add_(x.slice(0, 0, 8));
    CHECK(ref::read(x) == std::vector<double>{0, 1, 3, 5, 7, 9, 11, 13, 15});

    Tensor y = iota({3, 3}, dtype);
    y.add_(y.t());
    CHECK(ref::read(y) == std::vector<double>{0, 4, 8, 4, 8, 12, 8, 12, 16});
  }
}

TEST_CASE("add_ and copy_ read the source as it was before the write", "[tensor][add_][copy_][overlap]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& c : overlap_cases()) {
      for (double alpha : {1.0, -0.5, 2.0}) {
        INFO(ref::dtype_label(dtype) << ", " << c.name << ", alpha " << alpha);
        const Tensor base = iota(c.base_shape, dtype);
        const Tensor dst = c.dst(base), src = c.src(base);
        const std::vector<double> want = expected_storage(base, dst, src, 1.0, alpha);
        dst.add_(src, alpha);
        ref::check_equal(ref::read(base), want);
      }
      INFO(ref::dtype_label(dtype) << ", " << c.name << ", copy_");
      const Tensor base = iota(c.base_shape, dtype);
      const Tensor dst = c.dst(base), src = c.src(base);
      const std::vector<double> want = expected_storage(base, dst, src, 0.0, 1.0);
      const auto version = base.storage()->version();
      dst.copy_(src);
      ref::check_equal(ref::read(base), want);
      CHECK(base.storage()->version() > version);
    }
  }
}

TEST_CASE("copy_ between overlapping int64 views", "[tensor][copy_][overlap][int64]") {
  for (const auto& c : overlap_cases()) {
    INFO(c.name);
    const Tensor base = iota(c.base_shape, DType::i64);
    const Tensor dst = c.dst(base), src = c.src(base);
    const std::vector<double> want = expected_storage(base, dst, src, 0.0, 1.0);
    dst.copy_(src);
    ref::check_equal(ref::read(base), want);
  }
}

TEST_CASE("in-place ops on the very same elements stay elementwise", "[tensor][add_][copy_][overlap]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor base = iota({4, 6}, dtype);
    const Tensor view = base.t().slice(0, 1, 6, 2);
    std::vector<double> want = expected_storage(base, view, view, 1.0, 3.0);
    view.add_(view, 3.0);
    ref::check_equal(ref::read(base), want);
    want = expected_storage(base, view, view, 0.0, 1.0);
    const auto version = base.storage()->version();
    view.copy_(base.t().slice(0, 1, 6, 2));
    ref::check_equal(ref::read(base), want);
    CHECK(base.storage()->version() > version);
  }
}

TEST_CASE("a destination whose elements share memory is refused", "[tensor][add_][copy_][overlap][errors]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor base = zeros({2, 1}, dtype);
    const Tensor expanded = base.expand({2, 3});
    const auto version = base.storage()->version();
    CHECK_THROWS_AS(expanded.add_(ones({2, 3}, dtype)), ShapeError);
    CHECK_THROWS_WITH(expanded.add_(ones({2, 3}, dtype)),
                      Contains("add_") && Contains("[2, 3]") && Contains("strides [1, 0]"));
    CHECK_THROWS_AS(expanded.copy_(ones({3}, dtype)), ShapeError);
    CHECK_THROWS_WITH(expanded.copy_(ones({3}, dtype)), Contains("copy_") && Contains("[2, 3]"));
    CHECK(ref::read(base) == std::vector<double>{0, 0});
    CHECK(base.storage()->version() == version);
    // Filling writes one value to every element, so shared elements are unambiguous.
    expanded.fill_(5);
    CHECK(ref::read(base) == std::vector<double>{5, 5});
    // Expanding an axis of size 1 to size 1 shares nothing.
    const Tensor single = base.expand({2, 1});
    single.add_(ones({2, 1}, dtype));
    CHECK(ref::read(base) == std::vector<double>{6, 6});
  }
}
