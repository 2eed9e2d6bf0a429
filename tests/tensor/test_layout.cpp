// In-place addition and the memory layout of elementwise results (Note [Output layout] in
// tensor/ops_elementwise.cpp), against reference loops.

#include <catch2/catch.hpp>

#include <vector>

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/rng.hpp"
#include "tests/support/reference.hpp"

using namespace theta;

TEST_CASE("add_ adds a scaled tensor in place on every layout", "[tensor][views][add_]") {
  Rng rng(11);
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ref::dtype_label(dtype));
    const double tol = dtype == DType::f32 ? 1e-6 : 1e-15;
    const Tensor other = rng.normal({5, 7}, 0, 1, dtype);
    const auto expect = [&](const Tensor& before, const Tensor& src, double alpha) {
      std::vector<double> out = ref::read(before);
      const std::vector<double> s = ref::read(src.expand(before.shape()));
      for (std::size_t i = 0; i < out.size(); ++i) out[i] += alpha * s[i];
      return out;
    };
    // Contiguous, same shape (the optimizer's fused path).
    Tensor dst = rng.normal({5, 7}, 0, 1, dtype);
    std::vector<double> want = expect(dst, other, -0.3);
    const auto version = dst.storage()->version();
    dst.add_(other, -0.3);
    CHECK_THAT(ref::read(dst), Catch::Matchers::Approx(want).margin(tol));
    CHECK(dst.storage()->version() > version);
    // A transposed source, a broadcast row and a strided destination take the general path.
    Tensor dst_t = rng.normal({7, 5}, 0, 1, dtype);
    want = expect(dst_t, other.t(), 2.0);
    dst_t.add_(other.t(), 2.0);
    CHECK_THAT(ref::read(dst_t), Catch::Matchers::Approx(want).margin(tol));
    const Tensor row = rng.normal({1, 7}, 0, 1, dtype);
    want = expect(dst, row, 1.0);
    dst.add_(row);
    CHECK_THAT(ref::read(dst), Catch::Matchers::Approx(want).margin(tol));
    Tensor base = zeros({5, 14}, dtype);
    Tensor every_other = base.slice(1, 0, 14, 2);
    want = expect(every_other, other, 0.5);
    every_other.add_(other, 0.5);
    CHECK_THAT(ref::read(every_other), Catch::Matchers::Approx(want).margin(tol));
    CHECK(ref::read(base.slice(1, 1, 14, 2)) == std::vector<double>(35, 0.0));
    // Adding a tensor to itself doubles it.
    Tensor self = other.clone();
    self.add_(self);
    CHECK_THAT(ref::read(self), Catch::Matchers::Approx(expect(other, other, 1.0)).margin(tol));
    CHECK_THROWS_AS(dst.add_(rng.normal({7}, 0, 1, dtype == DType::f32 ? DType::f64 : DType::f32)), DTypeError);
    CHECK_THROWS_AS(row.clone().add_(dst), ShapeError);
  }
}

TEST_CASE("add_'s fused path splits a long tensor over threads correctly", "[tensor][add_]") {
  // Long enough for several parallel ranges, and a length that does not divide evenly; inside a
  // parallel region the whole pass runs inline.
  Rng rng(12);
  const int saved = get_num_threads();
  for (const int threads : {1, 3})
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO(threads << " thread(s), " << ref::dtype_label(dtype));
      set_num_threads(threads);
      const std::int64_t n = 5 * kElementwiseGrain + 37;
      const Tensor dst = rng.normal({n}, 0, 1, dtype), src = rng.normal({n}, 0, 1, dtype);
      std::vector<double> want = ref::read(dst);
      const std::vector<double> s = ref::read(src);
      for (std::size_t i = 0; i < want.size(); ++i) want[i] += 0.75 * s[i];
      dst.add_(src, 0.75);
      ref::check_close(ref::read(dst), want, ref::tol_for(dtype));
    }
  const Tensor inner = zeros({3 * kElementwiseGrain}), ones_src = full({3 * kElementwiseGrain}, 1.0);
  parallel_for(2, 1, [&](std::int64_t begin, std::int64_t) {
    if (begin == 0) inner.add_(ones_src, 2.0);
  });
  set_num_threads(saved);
  CHECK(sum(inner).item() == 6.0 * kElementwiseGrain);
}

TEST_CASE("is_dense, empty_like and the layout of elementwise results", "[tensor][views][layout]") {
  Rng rng(12);
  const Tensor a = rng.normal({5, 7}), b = rng.normal({5, 7});
  const Tensor cube = rng.normal({2, 3, 4});
  CHECK(a.is_dense());
  CHECK(a.t().is_dense());
  CHECK(cube.permute({2, 0, 1}).is_dense());
  CHECK(rng.normal({3, 1, 4}).transpose(0, 2).is_dense());
  CHECK_FALSE(a.slice(1, 0, 7, 2).is_dense());
  CHECK(a.slice(0, 1, 4).t().is_dense());  // whole rows: a dense block at an offset
  CHECK_FALSE(a.slice(1, 1, 5).t().is_dense());
  CHECK_FALSE(rng.normal({1, 7}).expand({5, 7}).is_dense());
  CHECK(Tensor::empty_like(a.t()).strides() == a.t().strides());
  CHECK(Tensor::empty_like(a.slice(1, 0, 7, 2)).is_contiguous());

  // Operands sharing a dense layout give a result in that layout, with the right values.
  const Tensor at = a.t(), bt = b.t();
  for (const Tensor& y : {add(at, bt), at * 2.0, 3.0 - at, exp(at), maximum(at, bt)}) {
    CHECK(y.strides() == at.strides());
    CHECK(y.shape() == at.shape());
  }
  CHECK(ref::read(add(at, bt)) == ref::read(add(at.contiguous(), bt.contiguous())));
  CHECK(ref::read(exp(at)) == ref::read(exp(at.contiguous())));
  // Mixed layouts give a contiguous result.
  CHECK(add(at, bt.contiguous()).is_contiguous());
  // In place on a transposed tensor with a transposed operand.
  Tensor dst = at.clone().t().contiguous().t();  // a transposed layout of its own
  REQUIRE(dst.strides() == at.strides());
  const std::vector<double> want = [&] {
    std::vector<double> d = ref::read(dst), o = ref::read(bt);
    for (std::size_t i = 0; i < d.size(); ++i) d[i] += -0.5 * o[i];
    return d;
  }();
  dst.add_(bt, -0.5);
  CHECK_THAT(ref::read(dst), Catch::Matchers::Approx(want).margin(1e-15));
}
