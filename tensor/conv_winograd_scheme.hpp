#pragma once
// Internal to theta_tensor: the schemes of Winograd's minimal filtering F(m x m, 3 x 3) that
// conv_winograd.cpp runs (Note [Winograd convolution] there), the choice between them, and the
// kernels' transform G g G^T with its adjoint.

#include <array>

#include "tensor/conv_geometry.hpp"
#include "tensor/conv_winograd.hpp"
#include "tensor/tensor.hpp"

namespace theta::detail {

/// One scheme F(m x m, 3 x 3): alpha x alpha input tiles (alpha = m + 2) give m x m outputs, through
/// its matrices, row-major.
struct WinogradScheme {
  int m, alpha;
  std::array<double, 36> bt;  ///< B^T: alpha x alpha
  std::array<double, 18> g;   ///< G: alpha x 3
  std::array<double, 24> at;  ///< A^T: m x alpha
};

/// The scheme of these tiles.
const WinogradScheme& winograd_scheme(WinogradTiles tiles);

/// U = G g G^T of every 3x3 kernel of weight:[C_out, C_in, 3, 3] -> [alpha^2, C_out, C_in] (entry
/// i alpha + j of kernel (o, c) at [i alpha + j, o, c]), computed in double.
Tensor winograd_weight_transform(const ConvGeometry& g, const WinogradScheme& s, const Tensor& weight);

/// The adjoint of winograd_weight_transform: G^T dU G of du:[alpha^2, C_out, C_in] -> [C_out, C_in,
/// 3, 3], computed in double.
Tensor winograd_weight_transform_adjoint(const ConvGeometry& g, const WinogradScheme& s, const Tensor& du);

}  // namespace theta::detail
