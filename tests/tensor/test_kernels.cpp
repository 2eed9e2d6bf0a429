// Every SIMD kernel table this CPU can run (AVX-512, AVX2, SSE2) against the naive reference,
// at lengths that exercise the empty case, the scalar tail alone, whole vectors and body + tail.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/op_cases.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"
#include "tests/support/use_kernels.hpp"

using namespace theta;
using theta::test::kernel_tables;
using theta::test::UseKernels;

namespace {

const std::int64_t kLengths[] = {0, 1, 7, 8, 15, 16, 17, 63, 1000};

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST_CASE("the kernel tables: SSE2 is always there, the override takes effect and is undone",
          "[tensor][simd]") {
  const auto tables = kernel_tables();
  REQUIRE(!tables.empty());
  CHECK(std::string(tables.back()->arch_name) == "sse2");
  const detail::KernelTable* best = &detail::kernels();
  for (const auto* table : tables) {
    {
      UseKernels use(table);
      CHECK(&detail::kernels() == table);
    }
    CHECK(&detail::kernels() == best);
  }
}

TEST_CASE("unary kernels of every architecture match the reference", "[tensor][simd][unary]") {
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    Rng rng(61);
    for (const auto& c : ref::unary_cases())
      for (DType dtype : {DType::f32, DType::f64})
        for (std::int64_t n : kLengths) {
          INFO(table->arch_name << " " << c.name << " " << ref::dtype_label(dtype) << " n=" << n);
          const Tensor x = ref::random_contiguous({n}, dtype, rng, c.domain);
          std::vector<double> want = ref::read(x);
          for (auto& v : want) v = c.want(v);
          ref::check_close(ref::read(c.op(x)), want, ref::tol_for(dtype));
        }
  }
}

TEST_CASE("binary kernels of every architecture match the reference", "[tensor][simd][binary]") {
  // Operand shapes: both full ({n} with {n}), or one a broadcast scalar (stride 0 in the kernel).
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    Rng rng(67);
    for (const auto& c : ref::binary_cases())
      for (DType dtype : {DType::f32, DType::f64})
        for (std::int64_t n : kLengths)
          for (int form = 0; form < 3; ++form) {
            INFO(table->arch_name << " " << c.name << " " << ref::dtype_label(dtype) << " n=" << n << " form "
                                  << form);
            const Tensor a = ref::random_contiguous(form == 1 ? Shape{} : Shape{n}, dtype, rng, c.a_domain);
            const Tensor b = ref::random_contiguous(form == 2 ? Shape{} : Shape{n}, dtype, rng, c.b_domain);
            ref::Dense want = ref::binary(ref::dense(a), ref::dense(b), c.want);
            for (auto& v : want.values) v = ref::round_to(v, dtype);
            const Tensor y = c.op(a, b);
            REQUIRE(y.shape() == want.shape);
            if (c.exact)
              ref::check_equal(ref::read(y), want.values);
            else
              ref::check_close(ref::read(y), want.values, ref::tol_for(dtype));
          }
  }
}

TEST_CASE("where, sum, max and min kernels of every architecture", "[tensor][simd][where][reduce]") {
  const ref::Domain bits{0.0, 2.0, false, true};
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    Rng rng(71);
    for (DType dtype : {DType::f32, DType::f64})
      for (std::int64_t n : kLengths) {
        INFO(table->arch_name << " " << ref::dtype_label(dtype) << " n=" << n);
        const Tensor m = ref::random_contiguous({n}, dtype, rng, bits);
        const Tensor a = ref::random_contiguous({n}, dtype, rng, {});
        const Tensor b = ref::random_contiguous({n}, dtype, rng, {});
        const Tensor s = full({}, 7.0, dtype);
        const auto mv = ref::read(m), av = ref::read(a), bv = ref::read(b);
        std::vector<double> want_ab, want_as, want_sb;
        for (std::size_t i = 0; i < mv.size(); ++i) {
          want_ab.push_back(mv[i] != 0 ? av[i] : bv[i]);
          want_as.push_back(mv[i] != 0 ? av[i] : 7.0);
          want_sb.push_back(mv[i] != 0 ? 7.0 : bv[i]);
        }
        ref::check_equal(ref::read(where(m, a, b)), want_ab);
        ref::check_equal(ref::read(where(m, a, s)), want_as);
        ref::check_equal(ref::read(where(m, s, b)), want_sb);

        const double got_sum = sum(a).item();
        CHECK(std::abs(got_sum - ref::sum_of(av)) <=
              ref::abs_sum_of(av) * (dtype == DType::f32 ? 1e-6 : 1e-15));
        if (n > 0) {
          CHECK(max(a).item() == ref::max_of(av));
          CHECK(min(a).item() == ref::min_of(av));
        }
      }
  }
}

TEST_CASE("NaN semantics hold in every architecture, in the vector body and the tail",
          "[tensor][simd][nan]") {
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    for (DType dtype : {DType::f32, DType::f64})
      for (std::int64_t n : {1, 7, 8, 17, 63, 1000})
        for (std::int64_t pos : {std::int64_t{0}, n / 2, n - 1}) {
          INFO(table->arch_name << " " << ref::dtype_label(dtype) << " n=" << n << " NaN at " << pos);
          std::vector<double> v(static_cast<std::size_t>(n));
          for (std::int64_t i = 0; i < n; ++i)
            v[static_cast<std::size_t>(i)] = static_cast<double>(i % 7) - 3.0;
          v[static_cast<std::size_t>(pos)] = kNaN;
          const Tensor x = from_vector(v, dtype);
          const Tensor one = full({}, 1.0, dtype);
          const auto p = static_cast<std::size_t>(pos);
          CHECK(std::isnan(max(x).item()));
          CHECK(std::isnan(min(x).item()));
          CHECK(std::isnan(ref::read(maximum(x, one))[p]));
          CHECK(std::isnan(ref::read(maximum(one, x))[p]));
          CHECK(std::isnan(ref::read(minimum(x, one))[p]));
          CHECK(std::isnan(ref::read(minimum(one, x))[p]));
          CHECK(std::isnan(ref::read(relu(x))[p]));
          CHECK(std::isnan(ref::read(clamp(x, -1.0, 1.0))[p]));
          CHECK(ref::read(ne(x, x))[p] == 1.0);
          CHECK(ref::read(eq(x, x))[p] == 0.0);
          // A NaN mask entry is not 0, so it selects the first operand.
          CHECK(ref::read(where(x, one, zeros({}, dtype)))[p] == 1.0);
          // NaN-free positions are unaffected.
          const auto mx = ref::read(maximum(x, one));
          for (std::size_t i = 0; i < mx.size(); ++i)
            if (i != p) CHECK(mx[i] == std::max(v[i], 1.0));
        }
  }
}

TEST_CASE("unary special values in every architecture", "[tensor][simd][unary]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    for (DType dtype : {DType::f32, DType::f64}) {
      INFO(table->arch_name << " " << ref::dtype_label(dtype));
      CHECK(ref::read(exp(tensor({-inf, 0.0, inf}, {}, dtype))) == std::vector<double>{0.0, 1.0, inf});
      CHECK(ref::read(log(tensor({0.0, 1.0, inf}, {}, dtype))) == std::vector<double>{-inf, 0.0, inf});
      CHECK(std::isnan(ref::read(log(tensor({-1.0}, {}, dtype)))[0]));
      CHECK(ref::read(log1p(tensor({-1.0, 0.0}, {}, dtype))) == std::vector<double>{-inf, 0.0});
      CHECK(ref::read(expm1(tensor({-inf, 0.0, inf}, {}, dtype))) == std::vector<double>{-1.0, 0.0, inf});
      CHECK(ref::read(sigmoid(tensor({-inf, 0.0, inf}, {}, dtype))) == std::vector<double>{0.0, 0.5, 1.0});
      CHECK(ref::read(tanh(tensor({-inf, 0.0, inf}, {}, dtype))) == std::vector<double>{-1.0, 0.0, 1.0});
      CHECK(ref::read(erf(tensor({-inf, 0.0, inf}, {}, dtype))) == std::vector<double>{-1.0, 0.0, 1.0});
      CHECK(ref::read(sqrt(tensor({0.0, 4.0, inf}, {}, dtype))) == std::vector<double>{0.0, 2.0, inf});
      CHECK(ref::read(rsqrt(tensor({0.0, 4.0, inf}, {}, dtype))) == std::vector<double>{inf, 0.5, 0.0});
      CHECK(ref::read(reciprocal(tensor({0.0, -0.0}, {}, dtype))) == std::vector<double>{inf, -inf});
      CHECK(ref::read(abs(tensor({-inf, -0.0}, {}, dtype))) == std::vector<double>{inf, 0.0});
      CHECK(ref::read(relu(tensor({-inf, inf}, {}, dtype))) == std::vector<double>{0.0, inf});
      CHECK(ref::read(clamp(tensor({-inf, inf}, {}, dtype), -1.0, 2.0)) == std::vector<double>{-1.0, 2.0});
      // sign keeps the sign of zero and propagates NaN.
      const auto s = ref::read(sign(tensor({-0.0, 0.0, kNaN, -inf, inf}, {}, dtype)));
      CHECK(s[0] == 0.0);
      CHECK(std::signbit(s[0]));
      CHECK(s[1] == 0.0);
      CHECK_FALSE(std::signbit(s[1]));
      CHECK(std::isnan(s[2]));
      CHECK(s[3] == -1.0);
      CHECK(s[4] == 1.0);
    }
  }
}

TEST_CASE("every unary op maps NaN to NaN in every architecture", "[tensor][simd][unary][nan]") {
  for (const auto* table : kernel_tables()) {
    UseKernels use(table);
    for (const auto& c : ref::unary_cases())
      for (DType dtype : {DType::f32, DType::f64}) {
        INFO(table->arch_name << " " << c.name << " " << ref::dtype_label(dtype));
        // NaN in the vector body and in the tail.
        std::vector<double> v(19, 0.5);
        v[3] = kNaN;
        v[18] = kNaN;
        const auto got = ref::read(c.op(from_vector(v, dtype)));
        // x^0 is 1 for every x, NaN included (as in C's pow).
        const bool to_one = std::string(c.name) == "pow 0";
        CHECK((to_one ? got[3] == 1.0 : std::isnan(got[3])));
        CHECK((to_one ? got[18] == 1.0 : std::isnan(got[18])));
      }
  }
}

TEST_CASE("combine_runs of every architecture applies a small matrix to runs", "[tensor][simd][winograd]") {
  for (const auto* table : kernel_tables()) {
    Rng rng(72);
    for (std::int64_t n : kLengths)
      for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{4, 4}, {2, 4}, {6, 6}, {6, 4}, {8, 8}, {1, 3}})
        for (const bool accumulate : {false, true}) {
          INFO(table->arch_name << " n=" << n << " " << rows << "x" << cols << (accumulate ? " accumulate" : ""));
          // A matrix with zeros among its entries (they are skipped), runs of doubles.
          std::vector<double> matrix = ref::read(rng.normal({rows * cols}));
          for (std::size_t e = 0; e < matrix.size(); e += 3) matrix[e] = 0.0;
          std::vector<std::vector<double>> in(static_cast<std::size_t>(cols)), out(static_cast<std::size_t>(rows));
          for (auto& r : in) r = ref::read(rng.normal({n}));
          for (auto& r : out) r = ref::read(rng.normal({n}));
          const std::vector<std::vector<double>> start = out;
          std::vector<const double*> ip;
          std::vector<double*> op;
          for (auto& r : in) ip.push_back(r.data());
          for (auto& r : out) op.push_back(r.data());
          table->f64.combine_runs(matrix.data(), rows, cols, ip.data(), op.data(), n, accumulate, 1, 0, 0);
          // float32 on the same values.
          std::vector<float> matrix32(matrix.begin(), matrix.end());
          std::vector<std::vector<float>> in32, out32;
          for (auto& r : in) in32.emplace_back(r.begin(), r.end());
          for (auto& r : start) out32.emplace_back(r.begin(), r.end());
          std::vector<const float*> ip32;
          std::vector<float*> op32;
          for (auto& r : in32) ip32.push_back(r.data());
          for (auto& r : out32) op32.push_back(r.data());
          table->f32.combine_runs(matrix32.data(), rows, cols, ip32.data(), op32.data(), n, accumulate, 1, 0, 0);
          for (std::size_t i = 0; i < static_cast<std::size_t>(rows); ++i)
            for (std::size_t k = 0; k < static_cast<std::size_t>(n); ++k) {
              double want = accumulate ? start[i][k] : 0.0, size = std::abs(want);
              for (std::size_t j = 0; j < static_cast<std::size_t>(cols); ++j) {
                want += matrix[i * static_cast<std::size_t>(cols) + j] * in[j][k];
                size += std::abs(matrix[i * static_cast<std::size_t>(cols) + j] * in[j][k]);
              }
              CHECK(std::abs(out[i][k] - want) <= 1e-15 * (1 + size));
              CHECK(std::abs(out32[i][k] - want) <= 1e-6 * (1 + size));
            }
        }
  }
}

TEST_CASE("combine_runs repeats in order, its runs moved each time", "[tensor][simd][winograd]") {
  // Repetitions whose outputs overlap (each starts 2 past the last), accumulated: the result must
  // be that of running them one after another.
  for (const auto* table : kernel_tables())
    for (const int size : {2, 4})
      for (const std::int64_t n : {5, 16, 37}) {
        INFO(table->arch_name << " " << size << "x" << size << " n=" << n);
        Rng rng(73);
        const std::int64_t count = 4, in_step = n, out_step = 2;
        const std::vector<double> matrix = ref::read(rng.normal({size * size}));
        const std::vector<double> in = ref::read(rng.normal({size * (count * in_step + n)}));
        std::vector<double> out = ref::read(rng.normal({size * (count * out_step + n)}));
        std::vector<double> want = out;
        const std::int64_t in_len = count * in_step + n, out_len = count * out_step + n;
        for (std::int64_t r = 0; r < count; ++r)
          for (std::int64_t i = 0; i < size; ++i)
            for (std::int64_t k = 0; k < n; ++k) {
              double total = want[static_cast<std::size_t>(i * out_len + r * out_step + k)];
              for (std::int64_t j = 0; j < size; ++j)
                total += matrix[static_cast<std::size_t>(i * size + j)] *
                         in[static_cast<std::size_t>(j * in_len + r * in_step + k)];
              want[static_cast<std::size_t>(i * out_len + r * out_step + k)] = total;
            }
        std::vector<const double*> ip;
        std::vector<double*> op;
        for (std::int64_t j = 0; j < size; ++j) ip.push_back(in.data() + j * in_len);
        for (std::int64_t i = 0; i < size; ++i) op.push_back(out.data() + i * out_len);
        table->f64.combine_runs(matrix.data(), size, size, ip.data(), op.data(), n, true, count, in_step, out_step);
        for (std::size_t e = 0; e < out.size(); ++e)
          CHECK(std::abs(out[e] - want[e]) <= 1e-13 * (1 + std::abs(want[e])));
      }
}
