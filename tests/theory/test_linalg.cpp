// The LAPACK wrappers copy their operands before LAPACK overwrites its buffers.

#include <catch2/catch.hpp>

#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/linalg.hpp"

using namespace theta;
using namespace theta::theory;

namespace {
double max_abs(const Tensor& t) { return theta::max(theta::abs(t)).item<double>(); }
}  // namespace

TEST_CASE("solve leaves its arguments untouched", "[theory][linalg]") {
  // A one-column right-hand side transposes to a contiguous view of the caller's storage, which
  // LAPACK would overwrite if solve did not copy it.
  Rng rng(8);
  const Tensor a = rng.normal({4, 4}) + eye(4) * 4.0, b = rng.normal({4}), b2 = rng.normal({4, 1});
  const Tensor a_before = a.clone(), b_before = b.clone(), b2_before = b2.clone();
  const Tensor x = solve(a, b);
  solve(a, b2);
  CHECK(max_abs(b - b_before) == 0.0);
  CHECK(max_abs(b2 - b2_before) == 0.0);
  CHECK(max_abs(a - a_before) == 0.0);
  CHECK(max_abs(matmul(a, x) - b) <= 1e-13);
  const Tensor one = full({1, 1}, 2.0), rhs = full({1}, 3.0);
  CHECK(solve(one, rhs).at({0}) == 1.5);
  CHECK(one.at({0, 0}) == 2.0);
}

TEST_CASE("solve, eigh and svd leave their inputs untouched, transposed views included", "[theory][linalg]") {
  // LAPACK overwrites its matrices; a transposed view of a contiguous tensor must still be copied.
  Rng rng(12);
  const Tensor m = rng.normal({4, 4}) + eye(4) * 4.0, c = rng.normal({3, 4});
  const Tensor m_before = m.clone(), c_before = c.clone();
  const Tensor x = solve(m.t(), c.t());
  CHECK(max_abs(matmul(m.t(), x) - c.t()) <= 1e-13);
  const Tensor v = solve(m.t(), c.select(0, 1));
  CHECK(max_abs(matmul(m.t(), v.unsqueeze(1)).squeeze(1) - c.select(0, 1)) <= 1e-13);
  eigh(m.t());
  svd(m.t());
  svd(c.t());
  singular_values(m.t());
  CHECK(allclose(m, m_before, 0.0, 0.0));
  CHECK(allclose(c, c_before, 0.0, 0.0));
}
