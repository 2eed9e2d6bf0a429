// The few-row product kernel (Note [Few-row products]) of every SIMD table against a naive
// reference, and matmul's products routed to it against the same reference.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/thread_count.hpp"
#include "tests/support/use_kernels.hpp"

using namespace theta;
using theta::test::kernel_tables;
using theta::test::ThreadCount;
using theta::test::UseKernels;

namespace {

// A row-major buffer of `rows` rows of `row` numbers, the first `cols` of each in use.
struct Strided {
  std::int64_t rows, cols, row;
  std::vector<double> values;
  double at(std::int64_t i, std::int64_t j) const { return values[static_cast<std::size_t>(i * row + j)]; }
};

Strided random_strided(Rng& rng, std::int64_t rows, std::int64_t cols, std::int64_t pad) {
  Strided s{rows, cols, cols + pad, {}};
  s.values = ref::read(rng.normal({std::max<std::int64_t>(1, rows * (cols + pad))}));
  return s;
}

bool has_fma(const detail::KernelTable& table) { return std::string(table.arch_name) != "sse2"; }

}  // namespace

TEST_CASE("few_rows_product of every architecture matches the naive product", "[tensor][simd][linalg]") {
  for (const auto* table : kernel_tables()) {
    Rng rng(91);
    for (const std::int64_t rows : {1, 2, 5, 6, 7, 12, 13, 24})
      for (const std::int64_t depth : {1, 3, 64})
        for (const std::int64_t n : {1, 7, 8, 15, 16, 17, 33, 100})
          for (const bool transposed : {false, true})
            for (const bool accumulate : {false, true}) {
              INFO(table->arch_name << " rows=" << rows << " depth=" << depth << " n=" << n
                                    << (transposed ? " a^T" : "") << (accumulate ? " accumulate" : ""));
              // a stored as [rows, depth + 2] or transposed as [depth, rows + 2]; b and out with
              // padding at the end of their rows, which must stay as it was.
              const Strided a = transposed ? random_strided(rng, depth, rows, 2) : random_strided(rng, rows, depth, 2);
              const Strided b = random_strided(rng, depth, n, 3);
              Strided out = random_strided(rng, rows, n, 5);
              const Strided start = out;
              const std::int64_t a_row = transposed ? 1 : a.row, a_col = transposed ? a.row : 1;
              const auto a_at = [&](std::int64_t i, std::int64_t j) { return transposed ? a.at(j, i) : a.at(i, j); };
              table->f64.few_rows_product(a.values.data(), rows, a_row, a_col, depth, b.values.data(), b.row,
                                          out.values.data(), out.row, n, accumulate);
              std::vector<float> a32(a.values.begin(), a.values.end()), b32(b.values.begin(), b.values.end()),
                  out32(start.values.begin(), start.values.end());
              table->f32.few_rows_product(a32.data(), rows, a_row, a_col, depth, b32.data(), b.row, out32.data(),
                                          out.row, n, accumulate);
              for (std::int64_t i = 0; i < rows; ++i) {
                for (std::int64_t x = 0; x < n; ++x) {
                  double want = accumulate ? start.at(i, x) : 0.0, size = std::abs(want);
                  double chain = want;  // the fused multiply-adds in order of depth
                  for (std::int64_t j = 0; j < depth; ++j) {
                    want += a_at(i, j) * b.at(j, x);
                    size += std::abs(a_at(i, j) * b.at(j, x));
                    chain = std::fma(a_at(i, j), b.at(j, x), chain);
                  }
                  CHECK(std::abs(out.at(i, x) - want) <= 1e-15 * (1 + size));
                  if (has_fma(*table)) CHECK(out.at(i, x) == chain);
                  CHECK(std::abs(out32[static_cast<std::size_t>(i * out.row + x)] - want) <= 1e-6 * (1 + size));
                }
                for (std::int64_t x = n; x < out.row; ++x) CHECK(out.at(i, x) == start.at(i, x));
              }
            }
  }
}

TEST_CASE("few_rows_product rounds a column alike wherever it falls", "[tensor][simd][linalg]") {
  // Columns in the vector body of one call and in the padded tail of another must agree bit for
  // bit: the same multiply-adds in the same order.
  for (const auto* table : kernel_tables()) {
    INFO(table->arch_name);
    Rng rng(92);
    const std::int64_t rows = 10, depth = 40, n = 37;
    const Strided a = random_strided(rng, rows, depth, 0), b = random_strided(rng, depth, n, 0);
    std::vector<double> whole(static_cast<std::size_t>(rows * n)), part(static_cast<std::size_t>(rows * n));
    table->f64.few_rows_product(a.values.data(), rows, depth, 1, depth, b.values.data(), n, whole.data(), n, n, false);
    for (std::int64_t x0 : {0, 3, 29, 36})  // calls over [x0, n): the same columns as tail and as body
      table->f64.few_rows_product(a.values.data(), rows, depth, 1, depth, b.values.data() + x0, n, part.data() + x0, n,
                                  n - x0, false);
    CHECK(std::memcmp(whole.data(), part.data(), whole.size() * sizeof(double)) == 0);
  }
}

TEST_CASE("matmul with few rows agrees with the naive product on every layout and thread count",
          "[tensor][linalg]") {
  Rng rng(93);
  for (const auto* table : kernel_tables()) {
    const UseKernels use(table);
    for (const std::int64_t m : {1, 3, 10, 24, 25})
      for (const std::int64_t n : {32, 45, 3000}) {
        const std::int64_t k = 17;
        INFO(table->arch_name << " m=" << m << " n=" << n);
        const Tensor a = rng.normal({m, k}, 0.0, 1.0, DType::f64);
        const Tensor at = rng.normal({k, m}, 0.0, 1.0, DType::f64);  // a^T stored, read transposed
        const Tensor b = rng.normal({k, n}, 0.0, 1.0, DType::f64);
        const Tensor c = rng.normal({m, n}, 0.0, 1.0, DType::f64);
        const std::vector<double> av = ref::read(a), atv = ref::read(at), bv = ref::read(b), cv = ref::read(c);
        const auto naive = [&](bool from_transposed, bool add) {
          std::vector<double> out(static_cast<std::size_t>(m * n));
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t x = 0; x < n; ++x) {
              double total = add ? cv[static_cast<std::size_t>(i * n + x)] : 0.0;
              for (std::int64_t j = 0; j < k; ++j)
                total += (from_transposed ? atv[static_cast<std::size_t>(j * m + i)] : av[static_cast<std::size_t>(i * k + j)]) *
                         bv[static_cast<std::size_t>(j * n + x)];
              out[static_cast<std::size_t>(i * n + x)] = total;
            }
          return out;
        };
        const auto check_close = [&](const Tensor& got, const std::vector<double>& want) {
          const std::vector<double> g = ref::read(got);
          REQUIRE(g.size() == want.size());
          for (std::size_t e = 0; e < g.size(); ++e) CHECK(std::abs(g[e] - want[e]) <= 1e-13 * (1 + std::abs(want[e])));
        };
        std::vector<double> one_thread;
        for (const int threads : {1, 2}) {
          const ThreadCount count(threads);
          const Tensor product = matmul(a, b);
          check_close(product, naive(false, false));
          check_close(matmul(at.t(), b), naive(true, false));
          const Tensor sum = c.clone();
          sum.add_matmul_(a, b);
          check_close(sum, naive(false, true));
          const Tensor assigned = Tensor::empty({m, n}, DType::f64);
          assigned.assign_matmul_(at.t(), b);
          check_close(assigned, naive(true, false));
          // Columns of the few-row kernel split over threads give the same numbers (OpenBLAS's
          // threads, above the limit, need not).
          if (threads == 1) one_thread = ref::read(product);
          else if (m <= table->f64.few_rows_max) CHECK(ref::read(product) == one_thread);
        }
        const Tensor a32 = a.to(DType::f32), b32 = b.to(DType::f32);
        const std::vector<double> got32 = ref::read(matmul(a32, b32)), want = naive(false, false);
        for (std::size_t e = 0; e < want.size(); ++e) CHECK(std::abs(got32[e] - want[e]) <= 1e-5 * (1 + std::abs(want[e])));
      }
  }
}
