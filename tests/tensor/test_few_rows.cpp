// The few-row product kernel (Note [Few-row products]) of every SIMD table against a naive
// reference (matmul's routes to it: test_simd_gemm.cpp).

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/use_kernels.hpp"

using namespace theta;
using theta::test::kernel_tables;

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
