// Every SIMD kernel table this CPU can run (AVX-512, AVX2, SSE2) against the naive reference,
// at lengths that exercise the empty case, the scalar tail alone, whole vectors and body + tail.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
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

TEST_CASE("Winograd step kernels of every architecture match their defining formulas",
          "[tensor][simd][winograd]") {
  using detail::WinogradStep;
  for (const auto* table : kernel_tables()) {
    Rng rng(72);
    for (std::int64_t n : kLengths) {
      INFO(table->arch_name << " n=" << n);
      // Four input runs and four output runs of doubles; outputs start from known values so the
      // accumulating step's += shows.
      std::vector<std::vector<double>> in(4), out(4), start(4);
      for (auto* runs : {&in, &start})
        for (auto& r : *runs) r = ref::read(rng.normal({n}));
      for (WinogradStep step : {WinogradStep::input, WinogradStep::input_adjoint, WinogradStep::output,
                                WinogradStep::output_adjoint}) {
        out = start;
        const double* i[4] = {in[0].data(), in[1].data(), in[2].data(), in[3].data()};
        double* o[4] = {out[0].data(), out[1].data(), out[2].data(), out[3].data()};
        table->f64.winograd(step, i, o, n);
        for (std::size_t k = 0; k < static_cast<std::size_t>(n); ++k) {
          const double a = in[0][k], b = in[1][k], c = in[2][k], d = in[3][k];
          std::vector<double> want;
          switch (step) {
            case WinogradStep::input: want = {a - c, b + c, c - b, b - d}; break;
            case WinogradStep::input_adjoint:
              want = {start[0][k] + a, start[1][k] + (b - c + d), start[2][k] + (b + c - a), start[3][k] - d};
              break;
            case WinogradStep::output: want = {a + b + c, b - c - d, start[2][k], start[3][k]}; break;
            case WinogradStep::output_adjoint: want = {a, a + b, a - b, -b}; break;
          }
          for (std::size_t r = 0; r < 4; ++r) CHECK(std::abs(out[r][k] - want[r]) <= 1e-15 * (1 + std::abs(want[r])));
        }
        // float32 runs give the same values, rounded.
        std::vector<std::vector<float>> in32(4), out32(4);
        for (std::size_t r = 0; r < 4; ++r) {
          in32[r].assign(in[r].begin(), in[r].end());
          out32[r].assign(start[r].begin(), start[r].end());
        }
        const float* i32[4] = {in32[0].data(), in32[1].data(), in32[2].data(), in32[3].data()};
        float* o32[4] = {out32[0].data(), out32[1].data(), out32[2].data(), out32[3].data()};
        table->f32.winograd(step, i32, o32, n);
        for (std::size_t r = 0; r < 4; ++r)
          for (std::size_t k = 0; k < static_cast<std::size_t>(n); ++k)
            CHECK(std::abs(out32[r][k] - out[r][k]) <= 1e-5 * (1 + std::abs(out[r][k])));
      }
    }
  }
}
