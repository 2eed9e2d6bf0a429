// The validated sizes of a 2-D convolution and the checks of its operands.

#include "tensor/conv_geometry.hpp"

#include <climits>
#include <string>
#include <vector>

#include "tensor/dtype.hpp"
#include "tensor/error.hpp"

namespace theta::detail {

namespace {

std::string pair_str(const std::array<std::int64_t, 2>& p) {
  return "[" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "]";
}

}  // namespace

ConvGeometry conv_geometry(const char* op, const Shape& input, const Shape& weight, const Conv2dOptions& o) {
  const auto where = [&] {
    return detail::concat_message(" (input ", shape_str(input), ", weight ", shape_str(weight), ", stride ",
                                  pair_str(o.stride), ", padding ", pair_str(o.padding), ", dilation ",
                                  pair_str(o.dilation), ")");
  };
  THETA_CHECK(input.size() == 4, ShapeError, op, ": expected input [N, C_in, H, W], got ", shape_str(input));
  THETA_CHECK(weight.size() == 4, ShapeError, op, ": expected weight [C_out, C_in, kh, kw], got ", shape_str(weight));
  THETA_CHECK(input[1] == weight[1], ShapeError, op, ": input has ", input[1], " channels but weight expects ",
              weight[1], where());
  THETA_CHECK(weight[1] >= 1 && weight[2] >= 1 && weight[3] >= 1, ShapeError, op,
              ": need at least one input channel and a non-empty kernel", where());
  THETA_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, ShapeError, op, ": stride must be positive", where());
  THETA_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1, ShapeError, op, ": dilation must be positive", where());
  THETA_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0, ShapeError, op, ": padding must not be negative", where());
  // Every size below 2^31, so the sizes derived from them below cannot overflow.
  for (const std::int64_t v : {input[2], input[3], weight[2], weight[3], o.stride[0], o.stride[1], o.padding[0],
                               o.padding[1], o.dilation[0], o.dilation[1]})
    THETA_CHECK(v < INT_MAX, ShapeError, op, ": image, kernel, stride, padding and dilation must be below 2^31",
                where());
  ConvGeometry g;
  g.n = input[0];
  g.c_in = input[1];
  g.h = input[2];
  g.w = input[3];
  g.c_out = weight[0];
  g.kh = weight[2];
  g.kw = weight[3];
  g.stride = o.stride;
  g.padding = o.padding;
  g.dilation = o.dilation;
  g.circular = o.padding_mode == Padding::circular;
  const std::int64_t span_h = g.dilation[0] * (g.kh - 1) + 1, span_w = g.dilation[1] * (g.kw - 1) + 1;
  const std::int64_t padded_h = g.h + 2 * g.padding[0], padded_w = g.w + 2 * g.padding[1];
  THETA_CHECK(span_h <= padded_h && span_w <= padded_w, ShapeError, op, ": the dilated kernel [", span_h, ", ", span_w,
              "] is larger than the padded input [", padded_h, ", ", padded_w, "]", where());
  THETA_CHECK(!g.circular || (g.h >= 1 && g.w >= 1), ShapeError, op, ": circular padding needs a non-empty image",
              where());
  g.h_out = (padded_h - span_h) / g.stride[0] + 1;
  g.w_out = (padded_w - span_w) / g.stride[1] + 1;
  THETA_CHECK(g.c_out < INT_MAX && g.taps() < INT_MAX && g.pixels() < INT_MAX, ShapeError, op,
              ": sizes exceed the BLAS integer range", where());
  return g;
}

void check_conv_operand(const char* op, const char* name, const Tensor& t) {
  THETA_CHECK(t.defined(), std::invalid_argument, op, ": ", name, " is undefined");
  THETA_CHECK(is_floating(t.dtype()), DTypeError, op, ": expected a floating ", name, ", got ", dtype_name(t.dtype()));
}

void check_conv_dtypes(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  THETA_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": dtype mismatch: ", a_name, " ", dtype_name(a.dtype()), ", ",
              b_name, " ", dtype_name(b.dtype()));
}

// For each output coordinate and kernel tap along one axis, the input coordinate it reads, or -1
// for zero padding: table[tap * out + o].
std::vector<std::int64_t> source_table(std::int64_t size, std::int64_t out, std::int64_t taps, std::int64_t stride,
                                       std::int64_t padding, std::int64_t dilation, bool circular) {
  std::vector<std::int64_t> table(static_cast<std::size_t>(taps * out));
  for (std::int64_t t = 0; t < taps; ++t)
    for (std::int64_t o = 0; o < out; ++o) {
      std::int64_t i = o * stride - padding + t * dilation;
      if (circular)
        i = ((i % size) + size) % size;
      else if (i < 0 || i >= size)
        i = -1;
      table[static_cast<std::size_t>(t * out + o)] = i;
    }
  return table;
}

}  // namespace theta::detail
