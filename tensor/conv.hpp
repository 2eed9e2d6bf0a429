#pragma once
// 2-D convolution on tensors (NCHW, PyTorch's weight layout) and its two adjoints, the backward
// rules of a differentiable conv2d. float32 and float64; input and weight share one dtype.
//
// Sizes: H_out = (H + 2 padding_h - dilation_h (kh - 1) - 1) / stride_h + 1 (rounded down), and
// likewise for W. The dilated kernel must fit the padded input.
//
// Two routes compute the same values up to rounding: im2col + one gemm per sample, and for 3x3
// kernels with stride 1 and dilation 1, Winograd's minimal filtering: F(2x2, 3x3) in float64
// (2.25x fewer multiply-adds in the gemms, rounding within a few ulps of the direct form's; within
// 1e-12 of the definition in the tests) and F(4x4, 3x3) in float32 for outputs of at least 4x4
// (4x fewer; rms rounding 5-12x the direct form's, about 1e-6 of outputs of size 1: Note
// [Winograd schemes and dtypes] in conv_winograd_scheme.cpp). Samples run in parallel on theta's
// threads; the same thread count gives the same bits on every call.

#include <array>
#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta {

/// What lies outside the input when a window reaches past its edge.
enum class Padding {
  zeros,    ///< zeros
  circular  ///< the input repeated periodically: row -1 is row H-1 (indices taken modulo H and W)
};

/// Geometry of a 2-D convolution; each pair is (height, width).
struct Conv2dOptions {
  std::array<std::int64_t, 2> stride = {1, 1};    ///< step between windows (>= 1)
  std::array<std::int64_t, 2> padding = {0, 0};   ///< added on both sides of each spatial axis (>= 0)
  std::array<std::int64_t, 2> dilation = {1, 1};  ///< spacing of kernel taps (>= 1)
  Padding padding_mode = Padding::zeros;          ///< what the padding holds
};

/// Cross-correlation (PyTorch's conv2d without bias, groups = 1):
/// x:[N, C_in, H, W], weight:[C_out, C_in, kh, kw] -> [N, C_out, H_out, W_out], where
/// out[n, o, y, x] = sum_{c, i, j} weight[o, c, i, j] * x_padded[n, c, y s_h + i d_h, x s_w + j d_w].
/// Add a bias with a broadcast add of a [C_out, 1, 1] tensor.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Conv2dOptions& options = {});

/// The adjoint of conv2d in its input: grad_out:[N, C_out, H_out, W_out], weight:[C_out, C_in, kh, kw]
/// -> [N, C_in, H, W] for input_shape [N, C_in, H, W]. With circular padding, contributions that
/// fall in the padding wrap around to the rows and columns they were read from.
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                         const Conv2dOptions& options = {});

/// The adjoint of conv2d in its weight: x:[N, C_in, H, W], grad_out:[N, C_out, H_out, W_out]
/// -> [C_out, C_in, kh, kw] for weight_shape [C_out, C_in, kh, kw], summed over the batch.
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                          const Conv2dOptions& options = {});

/// Both adjoints of conv2d, as a backward pass needs them when input and weight both take
/// gradients: input = conv2d_input_grad(grad_out, weight, x.shape(), options) and
/// weight = conv2d_weight_grad(x, grad_out, weight.shape(), options), equal to those calls bit for
/// bit. 3x3 convolutions with stride 1 transform grad_out once for both.
struct Conv2dGrads {
  Tensor input, weight;
};
Conv2dGrads conv2d_grads(const Tensor& x, const Tensor& weight, const Tensor& grad_out,
                         const Conv2dOptions& options = {});

/// The windows conv2d multiplies the weight with (im2col): x:[N, C_in, H, W] -> [N, K, L] for a
/// weight of `weight_shape` [C_out, C_in, kh, kw], with K = C_in kh kw taps (row c kh kw + i kw + j
/// reads channel c at kernel offset (i, j)) and L = H_out W_out output pixels (row-major), padding
/// included. conv2d(x, w)[n] = w.reshape([C_out, K]) @ patches[n], reshaped to [C_out, H_out, W_out].
Tensor conv2d_patches(const Tensor& x, const Shape& weight_shape, const Conv2dOptions& options = {});

/// Every input channel correlated with its own bank of filters (a depthwise convolution with M
/// filters per channel: PyTorch's conv2d with groups = C and C M output channels, kept apart):
/// x:[N, C, H, W], weight:[C, M, kh, kw] -> [N, C, M, H_out, W_out], where
/// out[n, c, f, y, x] = sum_{i, j} weight[c, f, i, j] * x_padded[n, c, y + i d_h, x + j d_w].
/// Stride 1 only (other strides are refused); zero or circular padding and any dilation. One SIMD
/// pass per channel plane, samples split over theta's threads.
Tensor conv2d_per_channel(const Tensor& x, const Tensor& weight, const Conv2dOptions& options = {});

}  // namespace theta
