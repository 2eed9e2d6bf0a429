#pragma once
// Internal to theta_nn: the pieces of Conv2d's structured-Jacobian rule that its NTK routes
// (conv_ntk.cpp) and its cotangent pullback (conv_pullback.cpp) share.

#include <cstdint>
#include <optional>

#include "nn/conv.hpp"

namespace theta::nn::detail {

// The pieces of one call of the rule: the layer's input windows augmented with the bias as one
// more tap and scaled, cols_i = [s_w P_i; s_b 1]:[width, L] (width = K + 1 with a bias, K
// without), so J_i^T D = D cols_i^T holds weight and bias gradients at once and
// <cols_i[:, p], cols_j[:, q]> = s_w^2 <P_i[:, p], P_j[:, q]> + s_b^2; cotangents as
// [n, m, C_out, L].
struct ConvFactors {
  Tensor cols;
  Tensor d;
  std::int64_t n = 0, m = 0, c_out = 0, taps = 0, width = 0, pixels = 0;
};

// U [m, C] and V [n, C, L] with d[i, a, c, :] = U[a, c] V[i, c, :], one U for the cotangents of
// both blocks (Note [Channel-factored cotangents]).
struct ChannelFactors {
  Tensor u, v1, v2;
};

/// The output size of the layer along one axis for an input of `size`.
std::int64_t output_size(const Conv2d& layer, std::int64_t size);

/// Throws a ShapeError unless cotangents [n, m, C_out, H_out, W_out] match the output of input a.
void check_cotangents(const Conv2d& layer, const Tensor& a, const Cotangents& d);

/// Everything but the windows: dense cotangents checked against the output of input a, as
/// [n, m, C_out, L].
ConvFactors cotangent_factors(const Conv2d& layer, const Tensor& a, const Tensor& d);

/// Both blocks' channel factors over one U (given or found; Note [Channel-factored cotangents] in
/// conv_ntk.cpp); nullopt when either block does not factor, or their U differ by more than a
/// per-channel scale. With `same`, d2 is d1.
std::optional<ChannelFactors> channel_factors(const Cotangents& d1, const Cotangents& d2, bool same);

}  // namespace theta::nn::detail
