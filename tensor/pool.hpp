#pragma once
// Average pooling over the spatial axes of NCHW tensors, and the adjoints autograd uses.
// float32 and float64.

#include <array>
#include <cstdint>

#include "tensor/tensor.hpp"

namespace theta {

/// Mean over kernel windows: x:[N, C, H, W] -> [N, C, H_out, W_out] with
/// H_out = (H + 2 padding_h - kernel_h) / stride_h + 1 (rounded down), likewise for W. Padding is
/// zeros and counts in the mean (count_include_pad): every window divides by kernel_h * kernel_w,
/// also at the border. Padding may be at most half the kernel, so every window meets the input.
Tensor avg_pool2d(const Tensor& x, std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                  std::array<std::int64_t, 2> padding = {0, 0});

/// The adjoint of avg_pool2d: grad_out:[N, C, H_out, W_out] -> [N, C, H, W] for
/// input_shape [N, C, H, W]; each output's gradient is spread evenly over its window.
Tensor avg_pool2d_grad(const Tensor& grad_out, const Shape& input_shape, std::array<std::int64_t, 2> kernel,
                       std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding = {0, 0});

/// Mean over the whole image: x:[N, C, H, W] -> [N, C].
Tensor global_avg_pool2d(const Tensor& x);

/// The adjoint of global_avg_pool2d: grad_out:[N, C] -> [N, C, H, W] for input_shape [N, C, H, W],
/// each element grad_out[n, c] / (H W).
Tensor global_avg_pool2d_grad(const Tensor& grad_out, const Shape& input_shape);

}  // namespace theta
