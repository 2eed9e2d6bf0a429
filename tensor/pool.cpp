// Average pooling: direct loops over (sample, channel) planes, in parallel over the planes.

#include "tensor/pool.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/shape.hpp"

namespace theta {

namespace {

std::string pair_str(const std::array<std::int64_t, 2>& p) {
  return "[" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "]";
}

// Sizes of one pooling, validated.
struct PoolGeometry {
  std::int64_t planes = 0, h = 0, w = 0, h_out = 0, w_out = 0;
  std::array<std::int64_t, 2> kernel = {1, 1}, stride = {1, 1}, padding = {0, 0};
};

PoolGeometry pool_geometry(const char* op, const Shape& input, std::array<std::int64_t, 2> kernel,
                           std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  const auto where = [&] {
    return detail::concat_message(" (input ", shape_str(input), ", kernel ", pair_str(kernel), ", stride ",
                                  pair_str(stride), ", padding ", pair_str(padding), ")");
  };
  THETA_CHECK(input.size() == 4, ShapeError, op, ": expected input [N, C, H, W], got ", shape_str(input));
  THETA_CHECK(kernel[0] >= 1 && kernel[1] >= 1, ShapeError, op, ": kernel must be positive", where());
  THETA_CHECK(stride[0] >= 1 && stride[1] >= 1, ShapeError, op, ": stride must be positive", where());
  THETA_CHECK(padding[0] >= 0 && padding[1] >= 0, ShapeError, op, ": padding must not be negative", where());
  // Every size below 2^31, so the sizes derived from them below cannot overflow.
  for (const std::int64_t v : {input[2], input[3], kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]})
    THETA_CHECK(v < INT_MAX, ShapeError, op, ": image, kernel, stride and padding must be below 2^31", where());
  THETA_CHECK(2 * padding[0] <= kernel[0] && 2 * padding[1] <= kernel[1], ShapeError, op,
              ": padding must be at most half the kernel", where());
  PoolGeometry g;
  g.planes = input[0] * input[1];
  g.h = input[2];
  g.w = input[3];
  g.kernel = kernel;
  g.stride = stride;
  g.padding = padding;
  const std::int64_t padded_h = g.h + 2 * padding[0], padded_w = g.w + 2 * padding[1];
  THETA_CHECK(kernel[0] <= padded_h && kernel[1] <= padded_w, ShapeError, op, ": the kernel is larger than the ",
              "padded input [", padded_h, ", ", padded_w, "]", where());
  g.h_out = (padded_h - kernel[0]) / stride[0] + 1;
  g.w_out = (padded_w - kernel[1]) / stride[1] + 1;
  return g;
}

void check_floating(const char* op, const char* name, const Tensor& t) {
  THETA_CHECK(t.defined(), std::invalid_argument, op, ": ", name, " is undefined");
  THETA_CHECK(is_floating(t.dtype()), DTypeError, op, ": expected a floating ", name, ", got ", dtype_name(t.dtype()));
}

// The window of output coordinate o along one axis, clipped to the input: [begin, end).
struct Span {
  std::int64_t begin = 0, end = 0;
};
Span window(std::int64_t o, std::int64_t stride, std::int64_t padding, std::int64_t kernel, std::int64_t size) {
  const std::int64_t start = o * stride - padding;
  return {std::max<std::int64_t>(start, 0), std::min(start + kernel, size)};
}

// Planes per parallel task: about kElementwiseGrain input elements.
std::int64_t plane_grain(const PoolGeometry& g) {
  return std::max<std::int64_t>(1, kElementwiseGrain / std::max<std::int64_t>(1, g.h * g.w));
}

}  // namespace

Tensor avg_pool2d(const Tensor& x_in, std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                  std::array<std::int64_t, 2> padding) {
  check_floating("avg_pool2d", "input", x_in);
  const PoolGeometry g = pool_geometry("avg_pool2d", x_in.shape(), kernel, stride, padding);
  Tensor out = Tensor::empty({x_in.size(0), x_in.size(1), g.h_out, g.w_out}, x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous();
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const T scale = T(1) / static_cast<T>(kernel[0] * kernel[1]);
    parallel_for(g.planes, plane_grain(g), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t p = begin; p < end; ++p) {
        const T* plane = xp + p * g.h * g.w;
        T* dst = op + p * g.h_out * g.w_out;
        for (std::int64_t oy = 0; oy < g.h_out; ++oy) {
          const Span ys = window(oy, stride[0], padding[0], kernel[0], g.h);
          for (std::int64_t ox = 0; ox < g.w_out; ++ox) {
            const Span xs = window(ox, stride[1], padding[1], kernel[1], g.w);
            T total = 0;
            for (std::int64_t y = ys.begin; y < ys.end; ++y)
              for (std::int64_t xx = xs.begin; xx < xs.end; ++xx) total += plane[y * g.w + xx];
            dst[oy * g.w_out + ox] = total * scale;
          }
        }
      }
    });
  });
  return out;
}

Tensor avg_pool2d_grad(const Tensor& grad_out_in, const Shape& input_shape, std::array<std::int64_t, 2> kernel,
                       std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding) {
  const char* op = "avg_pool2d_grad";
  check_floating(op, "grad_out", grad_out_in);
  const PoolGeometry g = pool_geometry(op, input_shape, kernel, stride, padding);
  const Shape out_shape = {input_shape[0], input_shape[1], g.h_out, g.w_out};
  THETA_CHECK(grad_out_in.shape() == out_shape, ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but avg_pool2d of ", shape_str(input_shape), " gives ", shape_str(out_shape));
  Tensor dx = zeros(input_shape, grad_out_in.dtype());
  if (dx.numel() == 0) return dx;
  const Tensor dy = grad_out_in.contiguous();
  visit_float_dtype(dy.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* dyp = dy.data<T>();
    T* dxp = dx.data<T>();
    const T scale = T(1) / static_cast<T>(kernel[0] * kernel[1]);
    parallel_for(g.planes, plane_grain(g), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t p = begin; p < end; ++p) {
        const T* src = dyp + p * g.h_out * g.w_out;
        T* plane = dxp + p * g.h * g.w;
        for (std::int64_t oy = 0; oy < g.h_out; ++oy) {
          const Span ys = window(oy, stride[0], padding[0], kernel[0], g.h);
          for (std::int64_t ox = 0; ox < g.w_out; ++ox) {
            const Span xs = window(ox, stride[1], padding[1], kernel[1], g.w);
            const T share = src[oy * g.w_out + ox] * scale;
            for (std::int64_t y = ys.begin; y < ys.end; ++y)
              for (std::int64_t xx = xs.begin; xx < xs.end; ++xx) plane[y * g.w + xx] += share;
          }
        }
      }
    });
  });
  return dx;
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_floating("global_avg_pool2d", "input", x);
  THETA_CHECK(x.dim() == 4, ShapeError, "global_avg_pool2d: expected input [N, C, H, W], got ", shape_str(x.shape()));
  THETA_CHECK(x.size(2) >= 1 && x.size(3) >= 1, ShapeError, "global_avg_pool2d: empty image ", shape_str(x.shape()));
  return mean(x, {2, 3});
}

Tensor global_avg_pool2d_grad(const Tensor& grad_out, const Shape& input_shape) {
  const char* op = "global_avg_pool2d_grad";
  check_floating(op, "grad_out", grad_out);
  THETA_CHECK(input_shape.size() == 4 && input_shape[2] >= 1 && input_shape[3] >= 1, ShapeError, op,
              ": expected a non-empty input shape [N, C, H, W], got ", shape_str(input_shape));
  THETA_CHECK(grad_out.shape() == Shape({input_shape[0], input_shape[1]}), ShapeError, op, ": grad_out is ",
              shape_str(grad_out.shape()), " but global_avg_pool2d of ", shape_str(input_shape), " gives [",
              input_shape[0], ", ", input_shape[1], "]");
  // Each plane is filled with its share, grad_out / (H W): one write pass.
  const std::int64_t planes = input_shape[0] * input_shape[1], pixels = input_shape[2] * input_shape[3];
  Tensor dx = Tensor::empty(input_shape, grad_out.dtype());
  if (dx.numel() == 0) return dx;
  const Tensor dy = grad_out.contiguous();
  visit_float_dtype(dy.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* dyp = dy.data<T>();
    T* dxp = dx.data<T>();
    const T count = static_cast<T>(pixels);
    const std::int64_t grain = std::max<std::int64_t>(1, kElementwiseGrain / pixels);  // as plane_grain
    parallel_for(planes, grain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t p = begin; p < end; ++p) std::fill(dxp + p * pixels, dxp + (p + 1) * pixels, dyp[p] / count);
    });
  });
  return dx;
}

}  // namespace theta
