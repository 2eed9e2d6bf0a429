// theta_selfcheck: prints the runtime configuration, checks every SIMD kernel table this CPU can
// run against a scalar reference (relu, add, exp, tanh, sum; float32 and float64), and a 256x256
// dgemm (plain and through a transposed view) against a naive loop. Exits 1 on any mismatch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"

namespace {

using theta::DType;
using theta::Tensor;

int g_failures = 0;

// The worst error of one check over several inputs, against its tolerance.
struct Check {
  const char* name;
  double tolerance;
  double worst = 0.0;
  bool ok = true;

  void add(double err) {
    if (!(err <= tolerance)) ok = false;  // NaN fails too
    if (!(err <= worst)) worst = err;
  }
};

// One line per group of checks: "  label  relu 0  add 0  exp 1.2e-07 ...  ok".
void report(const std::string& label, const std::vector<Check>& checks) {
  bool all_ok = true;
  std::printf("  %-22s", label.c_str());
  for (const Check& c : checks) {
    std::printf(" %s %-8.2g", c.name, c.worst);
    all_ok = all_ok && c.ok;
  }
  std::printf(" %s\n", all_ok ? "ok" : "FAIL");
  for (const Check& c : checks)
    if (!c.ok) {
      ++g_failures;
      std::printf("    %s: max error %.3g exceeds the tolerance %.3g\n", c.name, c.worst, c.tolerance);
    }
}

// Largest |got - want| / max(1, |want|); NaN must meet NaN, infinities must match exactly.
double max_error(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]) || std::isnan(got[i])) {
      if (!(std::isnan(want[i]) && std::isnan(got[i]))) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
  }
  return worst;
}

// Inputs of `n` elements in [lo, hi), with a few special values up front.
Tensor make_input(std::int64_t n, double lo, double hi, DType dtype, std::uint64_t seed) {
  theta::Rng rng(seed);
  std::vector<double> v = theta::to_vector(rng.uniform({n}, lo, hi, DType::f64));
  const double specials[] = {0.0, -0.0, 1.0, -1.0, lo, std::nan("")};
  for (std::size_t i = 0; i < std::size(specials) && i < v.size(); ++i) v[i] = specials[i];
  return theta::from_vector(v, dtype);
}

std::vector<double> map_values(const std::vector<double>& x, const std::function<double(double)>& f) {
  std::vector<double> y(x.size());
  std::transform(x.begin(), x.end(), y.begin(), f);
  return y;
}

// The reference rounds through the tensor's dtype, as the kernel's inputs and outputs do.
double round_to(DType dtype, double v) {
  return dtype == DType::f32 ? static_cast<double>(static_cast<float>(v)) : v;
}

void check_table(const theta::detail::KernelTable& table) {
  theta::detail::override_kernels(&table);
  for (DType dtype : {DType::f32, DType::f64}) {
    const bool f32 = dtype == DType::f32;
    const double ulp = f32 ? 1.2e-7 : 2.3e-16;
    // relu and add are exact; exp and tanh within a few ulps of the correctly rounded value;
    // sum is exact because its inputs are multiples of 1/8 whose partial sums all fit the mantissa.
    std::vector<Check> checks = {{"relu", 0.0}, {"add", 0.0}, {"exp", 8 * ulp}, {"tanh", 8 * ulp},
                                 {"sum", 0.0}};
    // Below one vector, with a tail, and large enough for the parallel path.
    for (std::int64_t n : {std::int64_t{5}, std::int64_t{1003}, std::int64_t{200003}}) {
      const Tensor x = make_input(n, -6.0, 6.0, dtype, 11);
      const Tensor y = make_input(n, -6.0, 6.0, dtype, 12);
      const std::vector<double> xv = theta::to_vector(x), yv = theta::to_vector(y);

      checks[0].add(max_error(theta::to_vector(theta::relu(x)), map_values(xv, [](double v) {
        return std::isnan(v) ? v : std::max(v, 0.0);
      })));
      std::vector<double> sum_ref(xv.size());
      for (std::size_t i = 0; i < xv.size(); ++i) sum_ref[i] = round_to(dtype, xv[i] + yv[i]);
      checks[1].add(max_error(theta::to_vector(theta::add(x, y)), sum_ref));
      checks[2].add(max_error(theta::to_vector(theta::exp(x)), map_values(xv, [](double v) {
        return std::exp(v);
      })));
      checks[3].add(max_error(theta::to_vector(theta::tanh(x)), map_values(xv, [](double v) {
        return std::tanh(v);
      })));

      std::vector<double> eighths = map_values(xv, [](double v) {
        return std::isnan(v) ? 0.0 : std::round(v * 8.0) / 8.0;
      });
      double exact = 0.0;
      for (double v : eighths) exact += v;
      const double got = theta::sum(theta::from_vector(eighths, dtype)).item();
      checks[4].add(std::abs(got - exact));
    }
    report(std::string(table.arch_name) + (f32 ? " f32" : " f64"), checks);
  }
  theta::detail::override_kernels(nullptr);
}

// C = A B for row-major [n, n] matrices read through element accessors.
std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b,
                                 std::int64_t n, bool b_transposed) {
  std::vector<double> c(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < n; ++k) {
      const double aik = a[static_cast<std::size_t>(i * n + k)];
      for (std::int64_t j = 0; j < n; ++j) {
        const double bkj = b_transposed ? b[static_cast<std::size_t>(j * n + k)]
                                        : b[static_cast<std::size_t>(k * n + j)];
        c[static_cast<std::size_t>(i * n + j)] += aik * bkj;
      }
    }
  return c;
}

void check_gemm() {
  constexpr std::int64_t n = 256;
  theta::Rng rng(5);
  const Tensor a = rng.normal({n, n});
  const Tensor b = rng.normal({n, n});
  const std::vector<double> av = theta::to_vector(a), bv = theta::to_vector(b);
  // Entries are sums of 256 products of unit normals (|c| ~ 16): a few hundred ulps of slack.
  std::vector<Check> checks = {{"a@b", 1e-12}, {"a@b.t()", 1e-12}};
  checks[0].add(max_error(theta::to_vector(theta::matmul(a, b)), naive_matmul(av, bv, n, false)));
  checks[1].add(max_error(theta::to_vector(theta::matmul(a, b.t())), naive_matmul(av, bv, n, true)));
  report("dgemm 256x256", checks);
}

}  // namespace

int main(int argc, char** argv) {
  theta::ensure_blas_core(argc, argv);
  std::printf("theta self-check: %s\n", theta::runtime_summary().c_str());

  const theta::detail::KernelTable* tables[8];
  const int count = std::min(theta::detail::available_kernel_tables(tables, 8), 8);
  std::printf("kernel tables on this CPU:");
  for (int i = 0; i < count; ++i) std::printf(" %s", tables[i]->arch_name);
  std::printf("\n");
  std::printf("largest error against a scalar reference (relative above 1):\n");
  for (int i = 0; i < count; ++i) check_table(*tables[i]);
  check_gemm();

  if (g_failures > 0) {
    std::printf("theta self-check: FAILED (%d mismatches)\n", g_failures);
    return 1;
  }
  std::printf("theta self-check: all checks passed\n");
  return 0;
}
