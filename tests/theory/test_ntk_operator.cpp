// The NTK operator (v -> K v without forming K) against the formed kernel: products, chunking,
// Lanczos' top eigenvalues against eigh, Hutchinson's trace against the exact one; its memory
// and its errors.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn/layers.hpp"
#include "tensor/rng.hpp"
#include "tensor/storage.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_operator.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Matchers::Contains;

namespace {

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : to_vector(t)) m = std::max(m, std::abs(v));
  return m;
}

std::shared_ptr<nn::Sequential> small_mlp(std::int64_t d, std::int64_t width, std::int64_t outputs, std::uint64_t seed) {
  Rng rng(seed);
  return nn::mlp({d, width, width, outputs}, rng, {.activation = nn::ActivationKind::tanh, .dtype = DType::f64});
}

// The formed kernel as an [n O, n O] matrix, rows (i, a) at i O + a.
Tensor formed_kernel(nn::Module& model, const Tensor& x) {
  const Tensor k = empirical_ntk(model, x, x);
  const std::int64_t n = k.size(0), o = k.size(2);
  return k.permute({0, 2, 1, 3}).reshape_copy({n * o, n * o});
}

}  // namespace

TEST_CASE("the NTK operator applies the formed kernel, for any chunk size", "[theory][ntk_operator]") {
  auto model = small_mlp(4, 12, 3, 1);
  const Tensor x = Rng(2).normal({10, 4});
  const Tensor k = formed_kernel(*model, x);
  const Tensor v = Rng(3).normal({30});
  const Tensor want = matmul(k, v);
  for (const std::int64_t chunk : {1, 4, 10, 64}) {
    const LinearOperator op = ntk_operator(model, x, {.chunk = chunk});
    CHECK(op.size == 30);
    const Tensor got = op.apply(v);
    INFO("chunk " << chunk);
    CHECK(max_abs(theta::sub(got, want)) <= 1e-12 * max_abs(want));
  }
  // Columns: K e_j is column j of K.
  const LinearOperator op = ntk_operator(model, x);
  for (const std::int64_t j : {0, 7, 29}) {
    Tensor e = zeros({30});
    e.select(0, j).fill_(1.0);
    CHECK(max_abs(theta::sub(op.apply(e), k.select(1, j))) <= 1e-12 * max_abs(k));
  }
}

TEST_CASE("Lanczos on the NTK operator finds the formed kernel's top eigenvalues", "[theory][ntk_operator]") {
  auto model = small_mlp(4, 16, 1, 4);
  const Tensor x = Rng(5).normal({2000, 4});
  const Tensor k = empirical_ntk_matrix(*model, x, x);
  const std::vector<double> exact = to_vector(eigh(k).values);  // ascending
  const EigenResult top = lanczos_top_k(ntk_operator(model, x, {.chunk = 512}), 5, {.iterations = 80});
  const std::vector<double> found = to_vector(top.values);
  for (std::size_t i = 0; i < 5; ++i) {
    const double want = exact[exact.size() - 1 - i];
    INFO("eigenvalue " << i << ": Lanczos " << found[i] << ", eigh " << want);
    CHECK(std::abs(found[i] - want) <= 1e-9 * want);
  }
  // Hutchinson's trace against the exact trace, within its own error bar (and the bar is small).
  const std::vector<double> entries = to_vector(k);
  double trace = 0.0;
  for (std::int64_t i = 0; i < 2000; ++i) trace += entries[static_cast<std::size_t>(i * 2001)];
  const TraceEstimate est = hutchinson_trace(ntk_operator(model, x, {.chunk = 512}), 30, 6);
  CHECK(std::abs(est.mean - trace) <= 4 * est.std_error);
  CHECK(est.std_error < 0.1 * trace);
}

TEST_CASE("the NTK operator's memory does not grow with the kernel", "[theory][ntk_operator]") {
  // n = 4096: the kernel would be 128 MiB, the Jacobian n P 8 = 46 MiB; a product stays within a
  // chunk's activations and a few P-vectors.
  auto model = small_mlp(8, 32, 1, 7);
  const Tensor x = Rng(8).normal({4096, 8});
  const LinearOperator op = ntk_operator(model, x, {.chunk = 256});
  const Tensor v = Rng(9).normal({4096});
  reset_peak_live_bytes();
  const std::int64_t before = allocator_stats().live_bytes;
  const Tensor kv = op.apply(v);
  const double peak_mib = static_cast<double>(allocator_stats().peak_live_bytes - before) / (1 << 20);
  CHECK(kv.size(0) == 4096);
  CHECK(peak_mib < 2.0);
}

TEST_CASE("the NTK operator refuses bad arguments", "[theory][ntk_operator]") {
  auto model = small_mlp(4, 8, 2, 10);
  const Tensor x = Rng(11).normal({5, 4});
  CHECK_THROWS_WITH(ntk_operator(nullptr, x), Contains("null model"));
  CHECK_THROWS_WITH(ntk_operator(model, x, {.chunk = 0}), Contains("chunk must be >= 1"));
  CHECK_THROWS_WITH(ntk_operator(model, zeros({0, 4})), Contains("n >= 1"));
  const LinearOperator op = ntk_operator(model, x);
  CHECK_THROWS_WITH(op.apply(zeros({5})), Contains("v must be [10]") && Contains("O = 2"));
}
