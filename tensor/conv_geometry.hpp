#pragma once
// Internal to theta_tensor: the validated sizes of one 2-D convolution and the operand checks,
// shared by conv2d and its adjoints (conv.cpp) and conv2d_per_channel (conv_per_channel.cpp).

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/shape.hpp"

namespace theta::detail {

// Sizes of one convolution, validated.
struct ConvGeometry {
  std::int64_t n = 0, c_in = 0, h = 0, w = 0;
  std::int64_t c_out = 0, kh = 0, kw = 0;
  std::int64_t h_out = 0, w_out = 0;
  std::array<std::int64_t, 2> stride = {1, 1}, padding = {0, 0}, dilation = {1, 1};
  bool circular = false;

  std::int64_t taps() const { return c_in * kh * kw; }   // k: rows of a column buffer
  std::int64_t pixels() const { return h_out * w_out; }  // l: its columns
  Shape input_shape() const { return {n, c_in, h, w}; }
  Shape output_shape() const { return {n, c_out, h_out, w_out}; }
};

/// The geometry of `op` for an input and a weight of these shapes, or a ShapeError that names them.
ConvGeometry conv_geometry(const char* op, const Shape& input, const Shape& weight, const Conv2dOptions& o);

/// Throws unless `t` is a defined tensor of a floating dtype.
void check_conv_operand(const char* op, const char* name, const Tensor& t);

/// Throws a DTypeError unless a and b share one dtype.
void check_conv_dtypes(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b);

/// Along one axis of `size` (padded by `padding`), for each output coordinate o < out and kernel
/// tap t < taps, the input coordinate it reads (wrapped with `circular`), or -1 for a zero of the
/// padding: table[t * out + o].
std::vector<std::int64_t> source_table(std::int64_t size, std::int64_t out, std::int64_t taps, std::int64_t stride,
                                       std::int64_t padding, std::int64_t dilation, bool circular);

}  // namespace theta::detail
