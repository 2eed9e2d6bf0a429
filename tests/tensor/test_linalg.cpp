// matmul, outer and dot against the naive triple loop.

#include <catch2/catch.hpp>

#include <limits>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"
#include "tests/support/thread_count.hpp"

using namespace theta;

namespace {

// Operand layouts for matmul: the shared ones plus a view whose last two axes are swapped,
// which matmul must hand to BLAS as a transposed operand.
enum class MatLayout { contiguous, last_two_swapped, transposed, sliced, broadcast, offset };

constexpr MatLayout kMatLayouts[] = {MatLayout::contiguous, MatLayout::last_two_swapped,
                                     MatLayout::transposed, MatLayout::sliced,
                                     MatLayout::broadcast,  MatLayout::offset};

const char* mat_layout_name(MatLayout l) {
  switch (l) {
    case MatLayout::contiguous: return "contiguous";
    case MatLayout::last_two_swapped: return "last two axes swapped";
    case MatLayout::transposed: return "transposed";
    case MatLayout::sliced: return "sliced";
    case MatLayout::broadcast: return "broadcast";
    case MatLayout::offset: return "offset";
  }
  return "?";
}

Tensor make_operand(const Shape& shape, MatLayout layout, DType dtype, Rng& rng, const ref::Domain& d) {
  switch (layout) {
    case MatLayout::contiguous: return ref::make_input(shape, ref::Layout::contiguous, dtype, rng, d);
    case MatLayout::transposed: return ref::make_input(shape, ref::Layout::transposed, dtype, rng, d);
    case MatLayout::sliced: return ref::make_input(shape, ref::Layout::sliced, dtype, rng, d);
    case MatLayout::broadcast: return ref::make_input(shape, ref::Layout::broadcast, dtype, rng, d);
    case MatLayout::offset: return ref::make_input(shape, ref::Layout::offset, dtype, rng, d);
    case MatLayout::last_two_swapped: {
      if (shape.size() < 2) return ref::make_input(shape, ref::Layout::transposed, dtype, rng, d);
      Shape swapped = shape;
      std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
      return ref::random_contiguous(swapped, dtype, rng, d).transpose(-1, -2);
    }
  }
  return {};
}

struct MatmulShapes {
  Shape a, b;
};

const std::vector<MatmulShapes> kMatmulShapes = {
    {{5}, {5}},
    {{3, 5}, {5}},
    {{5}, {5, 4}},
    {{3, 5}, {5, 4}},
    {{1, 5}, {5, 1}},
    {{4, 1}, {1, 3}},
    {{2, 1, 3, 4}, {5, 4, 2}},
    {{3, 4}, {2, 4, 5}},
    {{2, 3, 4}, {4}},
    {{4}, {2, 4, 5}},
    {{1, 3, 4}, {6, 4, 2}},
    {{2, 3, 4}, {2, 4, 3}},
    {{0, 3}, {3, 2}},
    {{3, 0}, {0, 2}},
    {{0}, {0}},
    {{2, 3, 0}, {0, 4}},
    {{2, 0, 3}, {3, 4}},
    {{17, 9}, {9, 33}},
    {{4, 3, 5}, {5, 6}},  // a contiguous stack times one matrix: a single gemm over the stack's rows
    {{2, 2, 3, 5}, {5, 6}},
    {{3, 1, 7}, {7, 1}},
};

}  // namespace

TEST_CASE("matmul equals the naive product for every operand layout", "[tensor][matmul]") {
  Rng rng(51);
  // Small integers: every product and partial sum is exact in both dtypes, so any correct
  // summation order gives exactly the naive result.
  const ref::Domain ints{-3.0, 4.0, false, true};
  for (DType dtype : {DType::f32, DType::f64})
    for (const auto& [sa, sb] : kMatmulShapes)
      for (MatLayout la : kMatLayouts)
        for (MatLayout lb : kMatLayouts) {
          INFO(ref::dtype_label(dtype) << " " << ref::str(sa) << " " << mat_layout_name(la) << " @ "
                                       << ref::str(sb) << " " << mat_layout_name(lb));
          const Tensor a = make_operand(sa, la, dtype, rng, ints);
          const Tensor b = make_operand(sb, lb, dtype, rng, ints);
          const Tensor c = matmul(a, b);
          const ref::Dense want = ref::matmul(ref::dense(a), ref::dense(b));
          REQUIRE(c.shape() == want.shape);
          REQUIRE(c.dtype() == dtype);
          ref::check_equal(ref::read(c), want.values);
        }
}

TEST_CASE("a batch of small products is split over threads and equals the products one by one",
          "[tensor][matmul]") {
  // Products of 40 x 64 x 64 multiply-adds are small enough for the batch to be split over
  // theta's threads (Note [Batched gemm threads]); the batch axes broadcast (a's second, b's first)
  // and b is read transposed. Small integers make every result exact.
  Rng rng(57);
  const ref::Domain ints{-3.0, 4.0, false, true};
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor a = ref::make_input({5, 1, 40, 64}, ref::Layout::contiguous, dtype, rng, ints);
    const Tensor b = ref::random_contiguous({3, 64, 64}, dtype, rng, ints).transpose(-1, -2);
    for (const int t : {1, 2}) {
      const test::ThreadCount thread_count(t);
      INFO(ref::dtype_label(dtype) << ", threads " << t);
      const Tensor c = matmul(a, b);
      REQUIRE(c.shape() == Shape{5, 3, 40, 64});
      for (std::int64_t i = 0; i < 5; ++i)
        for (std::int64_t j = 0; j < 3; ++j)
          ref::check_equal(ref::read(c.select(0, i).select(0, j)),
                           ref::matmul(ref::dense(a.select(0, i).select(0, 0)), ref::dense(b.select(0, j))).values);
    }
  }
}

TEST_CASE("matmul of real values is within the rounding bound of the naive product", "[tensor][matmul]") {
  Rng rng(53);
  const std::vector<MatmulShapes> shapes = {{{33, 70}, {70, 21}}, {{3, 8, 65}, {65, 9}}, {{200}, {200}}};
  for (DType dtype : {DType::f32, DType::f64})
    for (const auto& [sa, sb] : shapes)
      for (MatLayout la :
           {MatLayout::contiguous, MatLayout::last_two_swapped, MatLayout::sliced, MatLayout::offset})
        for (MatLayout lb : {MatLayout::contiguous, MatLayout::last_two_swapped, MatLayout::transposed}) {
          INFO(ref::dtype_label(dtype) << " " << ref::str(sa) << " " << mat_layout_name(la) << " @ "
                                       << ref::str(sb) << " " << mat_layout_name(lb));
          const Tensor a = make_operand(sa, la, dtype, rng, {});
          const Tensor b = make_operand(sb, lb, dtype, rng, {});
          std::vector<double> scale;
          const ref::Dense want = ref::matmul(ref::dense(a), ref::dense(b), &scale);
          const Tensor c = matmul(a, b);
          REQUIRE(c.shape() == want.shape);
          // |error| <= k * eps * sum_k |a b| for any summation order; k <= 200 here.
          const ref::Tol tol = dtype == DType::f32 ? ref::Tol{200 * 6e-8, 0} : ref::Tol{200 * 1.2e-16, 0};
          ref::check_close_scaled(ref::read(c), want.values, scale, tol);
        }
}

TEST_CASE("matmul with k = 0 gives zeros", "[tensor][matmul]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor c = matmul(Tensor::empty({3, 0}, dtype), Tensor::empty({0, 2}, dtype));
    REQUIRE(c.shape() == Shape{3, 2});
    CHECK(ref::read(c) == std::vector<double>(6, 0.0));
    const Tensor d = dot(Tensor::empty({0}, dtype), Tensor::empty({0}, dtype));
    CHECK(d.shape() == Shape{});
    CHECK(d.item() == 0.0);
    const Tensor batched = matmul(Tensor::empty({2, 1, 1, 0}, dtype), Tensor::empty({3, 0, 4}, dtype));
    CHECK(batched.shape() == Shape{2, 3, 1, 4});
    CHECK(ref::read(batched) == std::vector<double>(24, 0.0));
  }
}

TEST_CASE("outer and dot", "[tensor][matmul][outer][dot]") {
  Rng rng(57);
  for (DType dtype : {DType::f32, DType::f64})
    for (std::int64_t m : {0, 1, 6})
      for (std::int64_t n : {0, 1, 5})
        for (ref::Layout layout : ref::kLayouts) {
          INFO(ref::dtype_label(dtype) << " m=" << m << " n=" << n << " " << ref::layout_name(layout));
          const Tensor a = ref::make_input({m}, layout, dtype, rng);
          const Tensor b = ref::make_input({n}, ref::Layout::sliced, dtype, rng);
          const Tensor o = outer(a, b);
          REQUIRE(o.shape() == Shape{m, n});
          const auto av = ref::read(a), bv = ref::read(b);
          std::vector<double> want;
          for (double x : av)
            for (double y : bv) want.push_back(ref::round_to(x * y, dtype));
          ref::check_equal(ref::read(o), want);
          if (m == n) {
            const Tensor d = dot(a, b);
            REQUIRE(d.shape() == Shape{});
            long double s = 0, mag = 0;
            for (std::size_t i = 0; i < av.size(); ++i) {
              s += static_cast<long double>(av[i]) * bv[i];
              mag += std::abs(static_cast<long double>(av[i]) * bv[i]);
            }
            CHECK(std::abs(d.item() - static_cast<double>(s)) <= 1e-6 * static_cast<double>(mag));
          }
        }
  CHECK_THROWS_AS(dot(zeros({3}), zeros({4})), ShapeError);
  CHECK_THROWS_AS(dot(zeros({3, 1}), zeros({3})), ShapeError);
  CHECK_THROWS_AS(outer(zeros({3, 1}), zeros({3})), ShapeError);
}

TEST_CASE("matmul leaves its operands untouched and returns a fresh tensor", "[tensor][matmul]") {
  const Tensor a = arange(0, 6).reshape({2, 3});
  const Tensor b = arange(0, 6).reshape({3, 2});
  const auto av = ref::read(a), bv = ref::read(b);
  const Tensor c = matmul(a, b);
  CHECK(ref::read(a) == av);
  CHECK(ref::read(b) == bv);
  CHECK(c.storage() != a.storage());
  CHECK(c.storage() != b.storage());
  CHECK(c.is_contiguous());
}

TEST_CASE("matmul rejects int64, 0-d and mismatched operands", "[tensor][matmul][errors]") {
  CHECK_THROWS_AS(matmul(zeros({2, 2}, DType::i64), zeros({2, 2}, DType::i64)), DTypeError);
  CHECK_THROWS_AS(matmul(zeros({2, 2}, DType::f32), zeros({2, 2}, DType::f64)), DTypeError);
  CHECK_THROWS_AS(matmul(zeros({}), zeros({2})), ShapeError);
  CHECK_THROWS_AS(matmul(zeros({2, 3, 4}), zeros({3, 4, 2})), ShapeError);  // batch 2 vs 3
  CHECK_THROWS_WITH(matmul(zeros({2, 3}), zeros({4, 5})),
                    Catch::Contains("matmul: inner dimensions differ: [2, 3] @ [4, 5]"));
}

TEST_CASE("gram is a a^T, exactly symmetric", "[tensor][matmul][gram]") {
  Rng rng(59);
  const ref::Domain ints{-3.0, 4.0, false, true};
  for (DType dtype : {DType::f32, DType::f64})
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {3, 5}, {5, 3}, {17, 40}, {0, 4}, {4, 0}})
      for (ref::Layout layout : ref::kLayouts)
        for (bool integers : {true, false}) {
          INFO(ref::dtype_label(dtype) << " " << ref::str(shape) << " " << ref::layout_name(layout)
                                       << (integers ? " integers" : " reals"));
          const Tensor a = ref::make_input(shape, layout, dtype, rng, integers ? ints : ref::Domain{});
          const Tensor g = gram(a);
          const ref::Dense ad = ref::dense(a);
          const ref::Dense at = ref::dense(a.t());
          std::vector<double> scale;
          const ref::Dense want = ref::matmul(ad, at, &scale);
          REQUIRE(g.shape() == Shape{shape[0], shape[0]});
          REQUIRE(g.dtype() == dtype);
          const auto got = ref::read(g);
          if (integers) {
            ref::check_equal(got, want.values);
          } else {
            const ref::Tol tol = dtype == DType::f32 ? ref::Tol{40 * 6e-8, 0} : ref::Tol{40 * 1.2e-16, 0};
            ref::check_close_scaled(got, want.values, scale, tol);
          }
          const std::int64_t m = shape[0];
          int asymmetric = 0;
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < m; ++j)
              asymmetric += ref::bits(got[static_cast<std::size_t>(i * m + j)]) !=
                            ref::bits(got[static_cast<std::size_t>(j * m + i)]);
          CHECK(asymmetric == 0);
        }
  CHECK_THROWS_AS(gram(zeros({3})), ShapeError);
  CHECK_THROWS_AS(gram(zeros({2, 3, 4})), ShapeError);
  CHECK_THROWS_AS(gram(zeros({2, 3}, DType::i64)), DTypeError);
}

TEST_CASE("add_gram_ adds a a^T to the lower triangle of a strided destination", "[tensor][matmul][gram]") {
  Rng rng(58);
  const ref::Domain ints{-3.0, 4.0, false, true};
  for (DType dtype : {DType::f32, DType::f64})
    for (const Shape& shape : std::vector<Shape>{{1, 1}, {3, 5}, {5, 3}, {17, 40}})
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " " << ref::str(shape) << " " << ref::layout_name(layout));
        const std::int64_t m = shape[0];
        const Tensor a = ref::make_input(shape, layout, dtype, rng, ints);
        // The destination is channel 1 of a [m, 3, m] layout: row stride 3 m, unit column stride.
        const Tensor wide = ref::random_contiguous({m, 3, m}, dtype, rng, ints);
        const Tensor out = wide.select(1, 1);
        const ref::Dense product = ref::matmul(ref::dense(a), ref::dense(a.t()));
        std::vector<double> want = ref::read(wide);
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j <= i; ++j)
            want[static_cast<std::size_t>((i * 3 + 1) * m + j)] += product.values[static_cast<std::size_t>(i * m + j)];
        const std::uint64_t version = out.storage()->version();
        out.add_gram_(a);
        ref::check_equal(ref::read(wide), want);  // the upper triangle and the other channels untouched
        CHECK(out.storage()->version() > version);
      }
  using Catch::Contains;
  CHECK_THROWS_MATCHES(zeros({3, 3}).add_gram_(zeros({4, 2})), ShapeError,
                       Catch::Message("add_gram_: [3, 3] += a a^T with a [4, 2] does not fit ([m, m] += [m, k] [m, k]^T)"));
  CHECK_THROWS_AS(zeros({3, 4}).add_gram_(zeros({3, 2})), ShapeError);
  CHECK_THROWS_WITH(zeros({3, 3}).t().add_gram_(zeros({3, 2})), Contains("unit column stride"));
  CHECK_THROWS_AS(zeros({3, 3}).add_gram_(zeros({3, 2}, DType::f32)), DTypeError);
  CHECK_THROWS_AS(zeros({3, 3}, DType::i64).add_gram_(zeros({3, 2}, DType::i64)), DTypeError);
  const Tensor shared = zeros({3, 6});
  CHECK_THROWS_AS(shared.slice(1, 0, 3).add_gram_(shared.slice(1, 3, 6)), std::invalid_argument);
}

TEST_CASE("add_matmul_ adds and assign_matmul_ writes the naive product for every operand and destination layout",
          "[tensor][matmul]") {
  Rng rng(57);
  const ref::Domain ints{-3.0, 4.0, false, true};
  const std::vector<MatmulShapes> shapes = {{{3, 5}, {5, 4}}, {{1, 5}, {5, 1}}, {{4, 1}, {1, 3}},
                                            {{1, 6}, {6, 3}}, {{5, 2}, {2, 1}}, {{17, 9}, {9, 33}}};
  // Destinations: row-major and row-major at an offset (gemm with beta 1 or 0), a transposed view
  // (the swapped gemm) and strided picks (the form-then-add or form-then-copy fallback). A
  // destination to be assigned holds NaN first: none of it may be read.
  const ref::Layout out_layouts[] = {ref::Layout::contiguous, ref::Layout::transposed, ref::Layout::sliced,
                                     ref::Layout::offset};
  for (const bool accumulate : {true, false})
    for (DType dtype : {DType::f32, DType::f64})
      for (const auto& [sa, sb] : shapes)
        for (MatLayout la : {MatLayout::contiguous, MatLayout::last_two_swapped, MatLayout::sliced})
          for (MatLayout lb : {MatLayout::contiguous, MatLayout::transposed, MatLayout::offset})
            for (ref::Layout lo : out_layouts) {
              INFO((accumulate ? "add_matmul_ " : "assign_matmul_ ")
                   << ref::dtype_label(dtype) << " " << ref::str(sa) << " " << mat_layout_name(la) << " @ "
                   << ref::str(sb) << " " << mat_layout_name(lb) << " into " << ref::layout_name(lo));
              const Tensor a = make_operand(sa, la, dtype, rng, ints);
              const Tensor b = make_operand(sb, lb, dtype, rng, ints);
              const Tensor out = ref::make_input({sa[0], sb[1]}, lo, dtype, rng, ints);
              if (!accumulate) out.fill_(std::numeric_limits<double>::quiet_NaN());
              const ref::Dense product = ref::matmul(ref::dense(a), ref::dense(b));
              std::vector<double> want = product.values;
              if (accumulate) {
                const std::vector<double> before = ref::read(out);
                for (std::size_t i = 0; i < want.size(); ++i) want[i] += before[i];
              }
              const std::uint64_t version = out.storage()->version();
              if (accumulate)
                out.add_matmul_(a, b);
              else
                out.assign_matmul_(a, b);
              ref::check_equal(ref::read(out), want);
              CHECK(out.storage()->version() > version);
            }
}

TEST_CASE("assign_matmul_ reads operands that share the destination's memory as they were, and with k = 0 "
          "writes zeros", "[tensor][matmul]") {
  Rng rng(63);
  const ref::Domain ints{-3.0, 4.0, false, true};
  const Tensor c = ref::random_contiguous({4, 4}, DType::f64, rng, ints);
  const ref::Dense before = ref::dense(c);
  c.assign_matmul_(c, c.t().t());  // c = c @ c, both operands the destination itself
  ref::check_equal(ref::read(c), ref::matmul(before, before).values);
  const Tensor out = full({3, 2}, 1.5);
  out.assign_matmul_(zeros({3, 0}), zeros({0, 2}));
  ref::check_equal(ref::read(out), std::vector<double>(6, 0.0));
  CHECK_THROWS_MATCHES(out.assign_matmul_(zeros({3, 5}), zeros({6, 2})), ShapeError,
                       Catch::Message("assign_matmul_: [3, 2] = [3, 5] @ [6, 2] does not fit ([m, n] = [m, k] @ [k, n])"));
  CHECK_THROWS_AS(zeros({1, 2}).expand({3, 2}).assign_matmul_(zeros({3, 5}), zeros({5, 2})), ShapeError);
  CHECK_THROWS_WITH(out.assign_matmul_(zeros({3, 5}, DType::f32), zeros({5, 2})), Catch::Contains("dtype mismatch"));
}

TEST_CASE("add_matmul_ reads operands that share the destination's memory as they were", "[tensor][matmul]") {
  Rng rng(59);
  const ref::Domain ints{-3.0, 4.0, false, true};
  const Tensor c = ref::random_contiguous({4, 4}, DType::f64, rng, ints);
  const ref::Dense before = ref::dense(c);
  std::vector<double> want = before.values;
  const ref::Dense square = ref::matmul(before, before);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] += square.values[i];
  c.add_matmul_(c, c.t().t());  // c += c @ c, both operands the destination itself
  ref::check_equal(ref::read(c), want);
}

TEST_CASE("add_matmul_ with k = 0 leaves the destination as it is", "[tensor][matmul]") {
  const Tensor out = full({3, 2}, 1.5);
  out.add_matmul_(zeros({3, 0}), zeros({0, 2}));
  ref::check_equal(ref::read(out), std::vector<double>(6, 1.5));
}

TEST_CASE("add_matmul_ refuses mismatched shapes, dtypes and expanded destinations", "[tensor][matmul]") {
  using Catch::Contains;
  const Tensor out = zeros({3, 4});
  CHECK_THROWS_MATCHES(out.add_matmul_(zeros({3, 5}), zeros({6, 4})), ShapeError,
                       Catch::Message("add_matmul_: [3, 4] += [3, 5] @ [6, 4] does not fit ([m, n] += [m, k] @ [k, n])"));
  CHECK_THROWS_AS(out.add_matmul_(zeros({2, 5}), zeros({5, 4})), ShapeError);
  CHECK_THROWS_AS(out.add_matmul_(zeros({3}), zeros({3, 4})), ShapeError);
  CHECK_THROWS_WITH(out.add_matmul_(zeros({3, 5}, DType::f32), zeros({5, 4})), Contains("dtype mismatch"));
  CHECK_THROWS_AS(zeros({1, 4}).expand({3, 4}).add_matmul_(zeros({3, 5}), zeros({5, 4})), ShapeError);
}
