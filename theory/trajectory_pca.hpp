#pragma once
// The plane a training run moved in (Li et al. 2018, section 7): with the parameter vectors
// theta_0 .. theta_{T-1} of a run as rows, M = [theta_t - theta_{T-1}]_t, [T, P], and the
// directions are M's top right singular vectors, i.e. the top eigenvectors of the (uncentred)
// covariance M^T M. The final point is the origin of the plane, and the trajectory's coordinates
// are the projections M v. A plane from here plugs into loss_surface (landscape_grid.hpp).

#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta::theory {

/// How trajectory_pca finds the top right singular vectors of M:[T, P].
enum class PcaMethod {
  svd,   ///< the thin SVD of M (LAPACK dgesvd): O(T^2 P)
  gram,  ///< the eigendecomposition of the Gram matrix M M^T [T, T], which has the nonzero
         ///< eigenvalues of the covariance M^T M [P, P]; v_i = M^T u_i / s_i. Also O(T^2 P),
         ///< never forms the [P, P] matrix, and agrees with svd to rounding for separated s_i
};

struct TrajectoryPca {
  Tensor origin{};                    // [P], the final point theta_{T-1}
  Tensor directions{};                // [k, P], unit rows, orthogonal
  Tensor singular_values{};           // [k], descending
  Tensor explained_variance_ratio{};  // [k], s_i^2 / |M|_F^2; their sum is <= 1
  Tensor coordinates{};               // [T, k], row t = directions (theta_t - origin); row T-1 is 0
};

/// The top-k PCA directions of a trajectory:[T, P] (row t the flat parameters after step t; see
/// parameter_vector in landscape_directions.hpp), with 1 <= k <= min(T - 1, P). Each direction's
/// sign makes the trajectory's largest-magnitude coordinate on it positive, so both methods give
/// the same signs. Throws ShapeError naming the shape and k when they do not fit,
/// std::invalid_argument for NaN or Inf or a trajectory that never leaves its final point.
TrajectoryPca trajectory_pca(const Tensor& trajectory, std::int64_t k = 2, PcaMethod method = PcaMethod::svd);

/// The coordinates of parameter vectors on a plane from trajectory_pca: points:[m, P] or [P] ->
/// [m, k] or [k], directions (point - origin). Throws ShapeError when P differs.
Tensor project_onto(const TrajectoryPca& pca, const Tensor& points);

}  // namespace theta::theory
