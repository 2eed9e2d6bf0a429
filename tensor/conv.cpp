// conv2d and its adjoints as im2col + one gemm per sample (Note [Convolution as gemm]); 3x3 kernels
// with stride 1 and dilation 1 on 8 or more input channels take Winograd's minimal filtering
// instead (conv_winograd.cpp, Note [When Winograd pays]).

#include "tensor/conv.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/conv_chunks.hpp"
#include "tensor/conv_geometry.hpp"
#include "tensor/conv_winograd.hpp"
#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/parallel.hpp"
#include "tensor/shape.hpp"

namespace theta {

// Note [Convolution as gemm]
// For one sample, im2col copies every window of the (padded) input into a column buffer
// cols:[k, l] with k = C_in kh kw (one row per kernel tap) and l = H_out W_out (one column per
// output pixel). Then
//   forward         out_n:[C_out, l] = W:[C_out, k] @ cols:[k, l]
//   input adjoint   dcols:[k, l]     = W^T @ dY_n:[C_out, l], scattered back by col2im (taps that
//                                      read the same pixel add; zero padding drops, circular wraps)
//   weight adjoint  dW:[C_out, k]   += dY_n @ cols^T, over the samples
// Samples are split into at most get_num_threads() contiguous chunks run by parallel_for, each
// with its own column buffer; the weight adjoint keeps one partial sum per chunk and adds them in
// chunk order, so a given thread count always gives the same bits. While chunks run in parallel,
// OpenBLAS runs single-threaded (its own pool would compete for the same cores); a single chunk
// (one sample, one thread, or a call from inside another parallel region) leaves BLAS as it is.

using detail::check_conv_dtypes;
using detail::check_conv_operand;
using detail::chunk_count;
using detail::conv_geometry;
using detail::ConvGeometry;
using detail::for_each_chunk;
using detail::gemm;
using detail::source_table;

namespace {

// With zero padding, the output columns whose tap j reads inside the input: [begin, end), reading
// input column o * stride + offset.
struct ColumnRun {
  std::int64_t begin = 0, end = 0, offset = 0;
};

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a > 0 ? (a + b - 1) / b : -((-a) / b); }

// The coordinate tables of one convolution.
struct Taps {
  std::vector<std::int64_t> rows, cols;
  std::vector<ColumnRun> runs;  // one per kernel column, zero padding only
  explicit Taps(const ConvGeometry& g)
      : rows(source_table(g.h, g.h_out, g.kh, g.stride[0], g.padding[0], g.dilation[0], g.circular)),
        cols(source_table(g.w, g.w_out, g.kw, g.stride[1], g.padding[1], g.dilation[1], g.circular)) {
    for (std::int64_t j = 0; j < g.kw; ++j) {
      const std::int64_t offset = j * g.dilation[1] - g.padding[1];
      const std::int64_t begin = std::clamp<std::int64_t>(ceil_div(-offset, g.stride[1]), 0, g.w_out);
      const std::int64_t end = std::clamp<std::int64_t>(ceil_div(g.w - offset, g.stride[1]), begin, g.w_out);
      runs.push_back({begin, end, offset});
    }
  }
};

// Note [Shifted window planes]
// With stride 1, zero padding and an output as wide as the input (W_out = W: the "same" padding
// of odd kernels), tap (i, j)'s plane of the windows is the input plane shifted by one offset:
// cols[t] = x[t + base] with t = oy W + ox and base = (i d - p_h) W + (j d - p_w). One contiguous
// copy fills it (the source indices of t in [t0, t1) lie inside the plane; t outside reads a row
// the padding adds, which is zero), and only the columns the padding reaches are zeroed after.
// Rows of W_out elements (8 for the digits) copied one at a time cost more in loop overhead than
// in data: the plane copy made im2col ~2.5x faster there.
bool shifted_planes(const ConvGeometry& g) {
  return !g.circular && g.stride[0] == 1 && g.stride[1] == 1 && g.w_out == g.w;
}

// Tap row i's shifted plane with column run `run`: window t of the plane is input element
// t + base, which lies inside the input plane for t in [t0, t1) (Note [Shifted window planes]).
struct ShiftedPlane {
  std::int64_t base = 0, t0 = 0, t1 = 0;
};

ShiftedPlane shifted_plane(const ConvGeometry& g, const ColumnRun& run, std::int64_t i) {
  ShiftedPlane p;
  p.base = (i * g.dilation[0] - g.padding[0]) * g.w + run.offset;
  p.t0 = std::clamp<std::int64_t>(-p.base, 0, g.pixels());
  p.t1 = std::clamp<std::int64_t>(g.h * g.w - p.base, p.t0, g.pixels());
  return p;
}

// Zeroes the entries of a window plane p:[H_out W_out] in the columns the padding reaches, column
// by column down the plane (strided stores: a memset call per row of a few elements would cost
// more than the stores).
template <class T>
void zero_padded_columns(const ConvGeometry& g, const ColumnRun& run, T* p) {
  const std::int64_t l = g.pixels();
  for (std::int64_t ox = 0; ox < run.begin; ++ox)
    for (std::int64_t t = ox; t < l; t += g.w) p[t] = T(0);
  for (std::int64_t ox = run.end; ox < g.w; ++ox)
    for (std::int64_t t = ox; t < l; t += g.w) p[t] = T(0);
}

// One window plane dst:[H_out W_out] of tap (i, j) from the input plane src:[H, W].
template <class T>
void copy_shifted_plane(const ConvGeometry& g, const ColumnRun& run, std::int64_t i, const T* src, T* dst) {
  const ShiftedPlane p = shifted_plane(g, run, i);
  std::fill(dst, dst + p.t0, T(0));
  std::copy(src + p.t0 + p.base, src + p.t1 + p.base, dst + p.t0);
  std::fill(dst + p.t1, dst + g.pixels(), T(0));
  zero_padded_columns(g, run, dst);
}

// The input plane x:[H, W] += window plane src:[H_out W_out] of tap (i, j), whose padded columns
// are zeroed first (in src: the caller's scratch).
template <class T>
void add_shifted_plane(const ConvGeometry& g, const ColumnRun& run, std::int64_t i, T* src, T* x) {
  zero_padded_columns(g, run, src);
  const ShiftedPlane p = shifted_plane(g, run, i);
  for (std::int64_t t = p.t0; t < p.t1; ++t) x[t + p.base] += src[t];
}

// cols:[k, l] <- the windows of one sample x:[C_in, H, W] (Note [Convolution as gemm]).
template <class T>
void im2col(const ConvGeometry& g, const Taps& taps, const T* x, T* cols) {
  const std::int64_t l = g.pixels(), stride = g.stride[1];
  if (shifted_planes(g)) {
    for (std::int64_t c = 0; c < g.c_in; ++c)
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j)
          copy_shifted_plane(g, taps.runs[static_cast<std::size_t>(j)], i, x + c * g.h * g.w,
                             cols + ((c * g.kh + i) * g.kw + j) * l);
    return;
  }
  for (std::int64_t c = 0; c < g.c_in; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        T* dst = cols + ((c * g.kh + i) * g.kw + j) * l;
        const std::int64_t* ix = taps.cols.data() + j * g.w_out;
        const ColumnRun& run = taps.runs[static_cast<std::size_t>(j)];
        for (std::int64_t oy = 0; oy < g.h_out; ++oy, dst += g.w_out) {
          const std::int64_t iy = taps.rows[static_cast<std::size_t>(i * g.h_out + oy)];
          if (iy < 0) {
            std::fill(dst, dst + g.w_out, T(0));
            continue;
          }
          const T* src = x + (c * g.h + iy) * g.w;
          if (g.circular) {
            for (std::int64_t ox = 0; ox < g.w_out; ++ox) dst[ox] = src[ix[ox]];
            continue;
          }
          for (std::int64_t ox = 0; ox < run.begin; ++ox) dst[ox] = T(0);
          for (std::int64_t ox = run.begin; ox < run.end; ++ox) dst[ox] = src[ox * stride + run.offset];
          for (std::int64_t ox = run.end; ox < g.w_out; ++ox) dst[ox] = T(0);
        }
      }
}

// x:[C_in, H, W] += the columns of cols:[k, l] scattered back to the pixels they were read from.
// With shifted planes (Note [Shifted window planes]) each plane is added in one contiguous run,
// after the entries of the padded columns, whose taps read padding and are dropped, are zeroed
// in cols (a scratch buffer of the caller).
template <class T>
void col2im(const ConvGeometry& g, const Taps& taps, T* cols, T* x) {
  const std::int64_t l = g.pixels(), stride = g.stride[1];
  if (shifted_planes(g)) {
    for (std::int64_t c = 0; c < g.c_in; ++c)
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j)
          add_shifted_plane(g, taps.runs[static_cast<std::size_t>(j)], i, cols + ((c * g.kh + i) * g.kw + j) * l,
                            x + c * g.h * g.w);
    return;
  }
  for (std::int64_t c = 0; c < g.c_in; ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const T* src = cols + ((c * g.kh + i) * g.kw + j) * l;
        const std::int64_t* ix = taps.cols.data() + j * g.w_out;
        const ColumnRun& run = taps.runs[static_cast<std::size_t>(j)];
        for (std::int64_t oy = 0; oy < g.h_out; ++oy, src += g.w_out) {
          const std::int64_t iy = taps.rows[static_cast<std::size_t>(i * g.h_out + oy)];
          if (iy < 0) continue;
          T* dst = x + (c * g.h + iy) * g.w;
          if (g.circular)
            for (std::int64_t ox = 0; ox < g.w_out; ++ox) dst[ix[ox]] += src[ox];
          else
            for (std::int64_t ox = run.begin; ox < run.end; ++ox) dst[ox * stride + run.offset] += src[ox];
        }
      }
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Conv2dOptions& options) {
  check_conv_operand("conv2d", "input", x_in);
  check_conv_operand("conv2d", "weight", weight_in);
  check_conv_dtypes("conv2d", "input", x_in, "weight", weight_in);
  const ConvGeometry g = conv_geometry("conv2d", x_in.shape(), weight_in.shape(), options);
  Tensor out = Tensor::empty(g.output_shape(), x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  warn_if_blas_fallback();
  if (detail::winograd_applies(g)) {
    detail::winograd_conv2d(g, x, weight, out, detail::winograd_tiles(g, x.dtype()));
    return out;
  }
  const Taps taps(g);
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = x.data<T>();
    const T* wp = weight.data<T>();
    T* op = out.data<T>();
    for_each_chunk(g.n, chunks, [&](std::int64_t, std::int64_t begin, std::int64_t end) {
      const Tensor cols = Tensor::empty({k, l}, x.dtype());
      T* cp = cols.data<T>();
      for (std::int64_t s = begin; s < end; ++s) {
        im2col(g, taps, xp + s * g.c_in * g.h * g.w, cp);
        gemm<T>(false, false, g.c_out, l, k, wp, k, cp, l, T(0), op + s * g.c_out * l, l);
      }
    });
  });
  return out;
}

Tensor conv2d_input_grad(const Tensor& grad_out_in, const Tensor& weight_in, const Shape& input_shape,
                         const Conv2dOptions& options) {
  const char* op = "conv2d_input_grad";
  check_conv_operand(op, "grad_out", grad_out_in);
  check_conv_operand(op, "weight", weight_in);
  check_conv_dtypes(op, "grad_out", grad_out_in, "weight", weight_in);
  const ConvGeometry g = conv_geometry(op, input_shape, weight_in.shape(), options);
  THETA_CHECK(grad_out_in.shape() == g.output_shape(), ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but conv2d of input ", shape_str(input_shape), " and weight ", shape_str(weight_in.shape()), " gives ",
              shape_str(g.output_shape()));
  Tensor dx = zeros(g.input_shape(), grad_out_in.dtype());
  if (dx.numel() == 0 || g.c_out == 0 || g.pixels() == 0) return dx;
  const Tensor dy = grad_out_in.contiguous(), weight = weight_in.contiguous();
  warn_if_blas_fallback();
  if (detail::winograd_applies(g)) {
    detail::winograd_input_grad(g, dy, weight, dx, detail::winograd_tiles(g, dy.dtype()));
    return dx;
  }
  const Taps taps(g);
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  visit_float_dtype(dy.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* dyp = dy.data<T>();
    const T* wp = weight.data<T>();
    T* dxp = dx.data<T>();
    for_each_chunk(g.n, chunks, [&](std::int64_t, std::int64_t begin, std::int64_t end) {
      const Tensor cols = Tensor::empty({k, l}, dy.dtype());
      T* cp = cols.data<T>();
      for (std::int64_t s = begin; s < end; ++s) {
        gemm<T>(true, false, k, l, g.c_out, wp, k, dyp + s * g.c_out * l, l, T(0), cp, l);
        col2im(g, taps, cp, dxp + s * g.c_in * g.h * g.w);
      }
    });
  });
  return dx;
}

Tensor conv2d_weight_grad(const Tensor& x_in, const Tensor& grad_out_in, const Shape& weight_shape,
                          const Conv2dOptions& options) {
  const char* op = "conv2d_weight_grad";
  check_conv_operand(op, "input", x_in);
  check_conv_operand(op, "grad_out", grad_out_in);
  check_conv_dtypes(op, "input", x_in, "grad_out", grad_out_in);
  const ConvGeometry g = conv_geometry(op, x_in.shape(), weight_shape, options);
  THETA_CHECK(grad_out_in.shape() == g.output_shape(), ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but conv2d of input ", shape_str(x_in.shape()), " and weight ", shape_str(weight_shape), " gives ",
              shape_str(g.output_shape()));
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  if (g.n == 0 || g.c_out == 0 || l == 0) return zeros(weight_shape, x_in.dtype());
  const Tensor x = x_in.contiguous(), dy = grad_out_in.contiguous();
  if (detail::winograd_applies(g)) {
    warn_if_blas_fallback();
    return detail::winograd_weight_grad(g, x, dy, detail::winograd_tiles(g, x.dtype())).reshape(weight_shape);
  }
  const Taps taps(g);
  // One partial [C_out, k] per chunk; chunk 0 writes straight into the result.
  std::vector<Tensor> partials(static_cast<std::size_t>(chunks));
  for (auto& p : partials) p = Tensor::empty({g.c_out, k}, x.dtype());
  warn_if_blas_fallback();
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = x.data<T>();
    const T* dyp = dy.data<T>();
    for_each_chunk(g.n, chunks, [&](std::int64_t chunk, std::int64_t begin, std::int64_t end) {
      const Tensor cols = Tensor::empty({k, l}, x.dtype());
      T* cp = cols.data<T>();
      T* dwp = partials[static_cast<std::size_t>(chunk)].data<T>();
      if (begin >= end) std::fill(dwp, dwp + g.c_out * k, T(0));
      for (std::int64_t s = begin; s < end; ++s) {
        im2col(g, taps, xp + s * g.c_in * g.h * g.w, cp);
        gemm<T>(false, true, g.c_out, k, l, dyp + s * g.c_out * l, l, cp, l, s == begin ? T(0) : T(1), dwp, k);
      }
    });
  });
  for (std::size_t c = 1; c < partials.size(); ++c) partials[0].add_(partials[c]);
  return partials[0].reshape(weight_shape);
}

Conv2dGrads conv2d_grads(const Tensor& x_in, const Tensor& weight_in, const Tensor& grad_out_in,
                         const Conv2dOptions& options) {
  const char* op = "conv2d_grads";
  check_conv_operand(op, "input", x_in);
  check_conv_operand(op, "weight", weight_in);
  check_conv_operand(op, "grad_out", grad_out_in);
  check_conv_dtypes(op, "input", x_in, "weight", weight_in);
  check_conv_dtypes(op, "input", x_in, "grad_out", grad_out_in);
  const ConvGeometry g = conv_geometry(op, x_in.shape(), weight_in.shape(), options);
  THETA_CHECK(grad_out_in.shape() == g.output_shape(), ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but conv2d of input ", shape_str(x_in.shape()), " and weight ", shape_str(weight_in.shape()),
              " gives ", shape_str(g.output_shape()));
  if (!detail::winograd_applies(g))
    return {conv2d_input_grad(grad_out_in, weight_in, x_in.shape(), options),
            conv2d_weight_grad(x_in, grad_out_in, weight_in.shape(), options)};
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous(), dy = grad_out_in.contiguous();
  Tensor dx = zeros(g.input_shape(), x.dtype());
  warn_if_blas_fallback();
  Tensor dw = detail::winograd_adjoints(g, &x, dy, &weight, &dx, detail::winograd_tiles(g, x.dtype()));
  return {std::move(dx), dw.reshape(weight_in.shape())};
}

Tensor conv2d_patches(const Tensor& x_in, const Shape& weight_shape, const Conv2dOptions& options) {
  const char* op = "conv2d_patches";
  check_conv_operand(op, "input", x_in);
  const ConvGeometry g = conv_geometry(op, x_in.shape(), weight_shape, options);
  const std::int64_t k = g.taps(), l = g.pixels();
  Tensor out = Tensor::empty({g.n, k, l}, x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous();
  const Taps taps(g);
  visit_float_dtype(x.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* xp = x.data<T>();
    T* pp = out.data<T>();
    parallel_for(g.n, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t s = begin; s < end; ++s) im2col(g, taps, xp + s * g.c_in * g.h * g.w, pp + s * k * l);
    });
  });
  return out;
}

}  // namespace theta
