// conv2d_per_channel: each channel's padded plane correlated with its own filters by the SIMD
// correlate kernel (kernels/kernels.hpp).

#include <cstdint>
#include <vector>

#include "tensor/conv.hpp"
#include "tensor/conv_geometry.hpp"
#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/parallel.hpp"

namespace theta {

using detail::check_conv_dtypes;
using detail::check_conv_operand;
using detail::conv_geometry;
using detail::ConvGeometry;

Tensor conv2d_per_channel(const Tensor& x_in, const Tensor& weight_in, const Conv2dOptions& options) {
  const char* op = "conv2d_per_channel";
  check_conv_operand(op, "input", x_in);
  check_conv_operand(op, "weight", weight_in);
  check_conv_dtypes(op, "input", x_in, "weight", weight_in);
  const Shape& xs = x_in.shape();
  const Shape& ws = weight_in.shape();
  THETA_CHECK(xs.size() == 4 && ws.size() == 4 && ws[0] == xs[1], ShapeError, op,
              ": expected input [N, C, H, W] and weight [C, M, kh, kw] with one bank of filters per channel, got input ",
              shape_str(xs), " and weight ", shape_str(ws));
  THETA_CHECK(options.stride[0] == 1 && options.stride[1] == 1, ShapeError, op, ": only stride 1 is supported, got [",
              options.stride[0], ", ", options.stride[1], "]");
  // Each channel alone is a convolution of one input channel with M filters.
  const ConvGeometry g = conv_geometry(op, {xs[0], 1, xs[2], xs[3]}, {ws[1], 1, ws[2], ws[3]}, options);
  const std::int64_t channels = xs[1], filters = ws[1];
  Tensor out = Tensor::empty({g.n, channels, filters, g.h_out, g.w_out}, x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const std::int64_t ph = g.h + 2 * g.padding[0], pw = g.w + 2 * g.padding[1];
  // The input row and column each padded row and column holds (-1: a zero of the padding).
  const std::vector<std::int64_t> rows = detail::source_table(g.h, ph, 1, 1, g.padding[0], 1, g.circular);
  const std::vector<std::int64_t> cols = detail::source_table(g.w, pw, 1, 1, g.padding[1], 1, g.circular);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const auto& kernels = detail::typed_kernels<T>(detail::kernels());
    const T* xp = x.data<T>();
    const T* wp = weight.data<T>();
    T* out_p = out.data<T>();
    parallel_for(g.n * channels, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<T> padded(static_cast<std::size_t>(ph * pw));
      for (std::int64_t plane = begin; plane < end; ++plane) {
        const T* src = xp + plane * g.h * g.w;
        for (std::int64_t i = 0; i < ph; ++i) {
          const std::int64_t r = rows[static_cast<std::size_t>(i)];
          T* dst = padded.data() + i * pw;
          for (std::int64_t j = 0; j < pw; ++j) {
            const std::int64_t c = cols[static_cast<std::size_t>(j)];
            dst[j] = r < 0 || c < 0 ? T(0) : src[r * g.w + c];
          }
        }
        const std::int64_t channel = plane % channels;
        kernels.correlate(padded.data(), pw, wp + channel * filters * g.kh * g.kw, filters, g.kh, g.kw, g.dilation[0],
                          g.dilation[1], out_p + plane * filters * g.h_out * g.w_out, g.h_out, g.w_out);
      }
    });
  });
  return out;
}

}  // namespace theta
