#pragma once
// Internal to theta_tensor: conv2d and its two adjoints for 3x3 kernels with stride 1 and
// dilation 1 by Winograd's minimal filtering F(2x2, 3x3) or F(4x4, 3x3) (Note [Winograd
// convolution] in conv_winograd.cpp). conv2d and its adjoints, apart or together (conv2d_grads),
// take this route whenever winograd_applies; operands are contiguous, validated and of one
// floating dtype.

#include "tensor/conv_geometry.hpp"
#include "tensor/dtype.hpp"
#include "tensor/tensor.hpp"

namespace theta::detail {

/// True when Winograd's minimal filtering can compute the convolution of geometry g: a 3x3 kernel,
/// stride 1, dilation 1, nothing empty.
bool winograd_supports(const ConvGeometry& g);

/// conv2d's route takes Winograd from this many input channels on (Note [When Winograd pays]).
inline constexpr std::int64_t kWinogradMinInputChannels = 8;

/// True when conv2d and its adjoints take Winograd's route for geometry g.
bool winograd_applies(const ConvGeometry& g);

/// The output tile of Winograd's F(m x m, 3 x 3).
enum class WinogradTiles { f2x2, f4x4 };

/// The tiles conv2d takes for geometry g in this dtype (Note [Winograd schemes and dtypes]).
WinogradTiles winograd_tiles(const ConvGeometry& g, DType dtype);

/// out:[N, C_out, H_out, W_out] <- conv2d(x, weight).
void winograd_conv2d(const ConvGeometry& g, const Tensor& x, const Tensor& weight, Tensor& out,
                     WinogradTiles scheme);

/// dx:[N, C_in, H, W] (zeros on entry) += the input adjoint of conv2d applied to grad_out.
void winograd_input_grad(const ConvGeometry& g, const Tensor& grad_out, const Tensor& weight, Tensor& dx,
                         WinogradTiles scheme);

/// The weight adjoint of conv2d: [C_out, C_in, 3, 3], summed over the batch.
Tensor winograd_weight_grad(const ConvGeometry& g, const Tensor& x, const Tensor& grad_out,
                            WinogradTiles scheme);

/// Either adjoint or both from one transform of grad_out: with dx, dx (zeros on entry) += the
/// input adjoint (weight needed); with x, returns the weight adjoint (else an undefined Tensor).
Tensor winograd_adjoints(const ConvGeometry& g, const Tensor* x, const Tensor& grad_out, const Tensor* weight,
                         Tensor* dx, WinogradTiles scheme);

}  // namespace theta::detail
