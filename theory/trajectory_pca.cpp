#include "theory/trajectory_pca.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/linalg.hpp"

namespace theta::theory {

namespace {

constexpr const char* kOp = "trajectory_pca";

// The top k right singular vectors [k, P] and singular values [k] of m:[T, P] from the
// eigendecomposition of m m^T: m^T u_i = s_i v_i. Rounding in m m^T is relative to s_1^2, so a
// direction whose s_i is below ~1e-8 s_1 comes out inaccurate; a zero one cannot be formed at all.
std::pair<Tensor, Tensor> gram_route(const Tensor& m, std::int64_t k) {
  const std::int64_t t = m.size(0);
  const SymmetricEigen e = eigh(gram(m));
  // Columns t-1, t-2, ..., t-k: the eigenvectors of the k largest eigenvalues, descending.
  const Tensor columns = arange(static_cast<double>(t - 1), static_cast<double>(t - 1 - k), -1.0, DType::i64);
  const Tensor top = index_select(e.vectors, 1, columns);
  Tensor values = Tensor::empty({k}, DType::f64);
  for (std::int64_t i = 0; i < k; ++i) {
    const double lambda = e.values.at({t - 1 - i});
    THETA_CHECK(lambda > 0.0, std::invalid_argument, kOp, ": the trajectory spans fewer than ", k,
                " dimensions (eigenvalue ", i + 1, " of M M^T is ", lambda, ")");
    values.data<double>()[i] = std::sqrt(lambda);
  }
  return {matmul(top.t(), m) / values.reshape({k, 1}), values};
}

}  // namespace

TrajectoryPca trajectory_pca(const Tensor& trajectory, std::int64_t k, PcaMethod method) {
  THETA_CHECK(trajectory.defined() && trajectory.dim() == 2 && trajectory.size(0) >= 2 && trajectory.size(1) >= 1,
              ShapeError, kOp, ": trajectory must be [T, P] with T >= 2 points, got ",
              trajectory.defined() ? shape_str(trajectory.shape()) : std::string("undefined"));
  THETA_CHECK(is_floating(trajectory.dtype()), DTypeError, kOp, ": trajectory must be floating, got ",
              dtype_name(trajectory.dtype()));
  const std::int64_t t = trajectory.size(0), p = trajectory.size(1);
  THETA_CHECK(k >= 1 && k <= std::min(t - 1, p), ShapeError, kOp, ": k must be in [1, min(T - 1, P)] = [1, ",
              std::min(t - 1, p), "] for a trajectory ", shape_str(trajectory.shape()), ", got ", k);
  detail::require_finite(trajectory, kOp, "trajectory");

  TrajectoryPca out;
  const Tensor points = trajectory.to(DType::f64).contiguous();
  out.origin = points.slice(0, t - 1, t).reshape({p}).clone();
  const Tensor m = points - out.origin;
  const double total = sum(m * m).item<double>();
  THETA_CHECK(total > 0.0, std::invalid_argument, kOp, ": the trajectory never leaves its final point");

  if (method == PcaMethod::svd) {
    const Svd r = svd(m);
    out.singular_values = r.s.slice(0, 0, k).contiguous();
    out.directions = r.v.slice(1, 0, k).t().contiguous();
  } else {
    std::tie(out.directions, out.singular_values) = gram_route(m, k);
  }
  out.coordinates = matmul(m, out.directions.t()).contiguous();

  // Note [PCA signs]: a singular vector is defined up to sign. The one whose extreme trajectory
  // coordinate is positive is a rule both methods can apply to their own result.
  for (std::int64_t i = 0; i < k; ++i) {
    const Tensor column = out.coordinates.slice(1, i, i + 1);
    const std::int64_t extreme = argmax(abs(column).reshape({t}), 0).item<std::int64_t>();
    if (column.at({extreme, 0}) < 0.0) {
      out.directions.slice(0, i, i + 1).copy_(-out.directions.slice(0, i, i + 1));
      column.copy_(-column);
    }
  }
  out.explained_variance_ratio = out.singular_values * out.singular_values / total;
  return out;
}

Tensor project_onto(const TrajectoryPca& pca, const Tensor& points) {
  constexpr const char* op = "project_onto";
  THETA_CHECK(pca.directions.defined() && pca.origin.defined(), std::invalid_argument, op,
              ": the PCA result is empty");
  const std::int64_t p = pca.origin.size(0);
  THETA_CHECK(points.defined() && (points.dim() == 1 || points.dim() == 2) && points.size(points.dim() - 1) == p,
              ShapeError, op, ": points must be [m, ", p, "] or [", p, "], got ",
              points.defined() ? shape_str(points.shape()) : std::string("undefined"));
  THETA_CHECK(is_floating(points.dtype()), DTypeError, op, ": points must be floating, got ",
              dtype_name(points.dtype()));
  return matmul(points.to(DType::f64) - pca.origin, pca.directions.t());
}

}  // namespace theta::theory
