// matmul's products on every route (Note [Own products] in tensor/simd_gemm.cpp: the few-row
// kernel, column panels, OpenBLAS) against a naive reference, with every kernel table, operand
// layout and thread count.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tensor/simd_gemm.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/thread_count.hpp"
#include "tests/support/use_kernels.hpp"

using namespace theta;
using theta::test::ThreadCount;
using theta::test::UseKernels;

namespace {

struct Case {
  std::int64_t m, k, n;
};

// The naive c (+)= a b from row-major values.
std::vector<double> naive_product(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>* c,
                                  std::int64_t m, std::int64_t k, std::int64_t n) {
  std::vector<double> out(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t x = 0; x < n; ++x) {
      double total = c ? (*c)[static_cast<std::size_t>(i * n + x)] : 0.0;
      for (std::int64_t j = 0; j < k; ++j)
        total += a[static_cast<std::size_t>(i * k + j)] * b[static_cast<std::size_t>(j * n + x)];
      out[static_cast<std::size_t>(i * n + x)] = total;
    }
  return out;
}

void check_close(const Tensor& got, const std::vector<double>& want, double tolerance) {
  const std::vector<double> g = ref::read(got);
  REQUIRE(g.size() == want.size());
  for (std::size_t e = 0; e < g.size(); ++e) CHECK(std::abs(g[e] - want[e]) <= tolerance * (1 + std::abs(want[e])));
}

// One product shape on the current kernel table: every layout, both thread counts, three entry
// points, float64 and float32.
void check_routes(Rng& rng, const Case& t) {
  const Tensor a = rng.normal({t.m, t.k}, 0.0, 1.0, DType::f64), b = rng.normal({t.k, t.n}, 0.0, 1.0, DType::f64);
  const Tensor c = rng.normal({t.m, t.n}, 0.0, 1.0, DType::f64);
  // The same values stored transposed, read through transposed views.
  const Tensor a_stored_t = a.t().contiguous(), b_stored_t = b.t().contiguous();
  const std::vector<double> av = ref::read(a), bv = ref::read(b), cv = ref::read(c);
  const std::vector<double> product = naive_product(av, bv, nullptr, t.m, t.k, t.n);
  const std::vector<double> sum = naive_product(av, bv, &cv, t.m, t.k, t.n);
  std::vector<double> own_bits;
  for (const int threads : {1, 2}) {
    const ThreadCount count(threads);
    for (const bool a_t : {false, true})
      for (const bool b_t : {false, true}) {
        INFO("threads=" << threads << (a_t ? " a^T" : "") << (b_t ? " b^T" : ""));
        const Tensor lhs = a_t ? a_stored_t.t() : a, rhs = b_t ? b_stored_t.t() : b;
        const Tensor result = matmul(lhs, rhs);
        check_close(result, product, 1e-13);
        const Tensor accumulated = c.clone();
        accumulated.add_matmul_(lhs, rhs);
        check_close(accumulated, sum, 1e-13);
        const Tensor assigned = Tensor::empty({t.m, t.n}, DType::f64);
        assigned.assign_matmul_(lhs, rhs);
        check_close(assigned, product, 1e-13);
        // theta's kernel gives the same bits for any layout and split over threads: one fused
        // multiply-add per term in order of k (OpenBLAS need not).
        if (detail::gemm_route<double>(b_t, t.m, t.n, t.k) != detail::GemmRoute::blas) {
          if (own_bits.empty())
            own_bits = ref::read(result);
          else
            CHECK(ref::read(result) == own_bits);
        }
      }
  }
  const std::vector<double> got32 = ref::read(matmul(a.to(DType::f32), b.to(DType::f32)));
  for (std::size_t e = 0; e < product.size(); ++e)
    CHECK(std::abs(got32[e] - product[e]) <= 1e-5 * static_cast<double>(t.k) * (1 + std::abs(product[e])));
}

}  // namespace

TEST_CASE("matmul agrees with the naive product on every route, layout and thread count", "[tensor][linalg]") {
  Rng rng(93);
  // Few rows (up to 24 with AVX-512, 12 otherwise), panels (more rows, depth <= 1024; one or
  // several column panels), and depths beyond the panels' limit.
  const std::vector<Case> cases = {{1, 17, 45},  {3, 17, 32},   {10, 64, 3000}, {24, 17, 45}, {25, 17, 45},
                                   {40, 300, 700}, {100, 1, 64}, {37, 1024, 70}, {30, 1025, 40}};
  const detail::KernelTable* tables[4];
  const int count = std::min(4, detail::available_kernel_tables(tables, 4));
  for (int e = 0; e < count; ++e) {
    const UseKernels use(tables[e]);
    for (const Case& t : cases) {
      INFO(tables[e]->arch_name << " m=" << t.m << " k=" << t.k << " n=" << t.n);
      check_routes(rng, t);
    }
  }
}
