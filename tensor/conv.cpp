// conv2d and its adjoints as im2col + one gemm per sample (Note [Convolution as gemm]).

#include "tensor/conv.hpp"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/kernels/kernels.hpp"
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

namespace {

std::string pair_str(const std::array<std::int64_t, 2>& p) {
  return "[" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "]";
}

// Sizes of one convolution, validated.
struct Geometry {
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

Geometry geometry(const char* op, const Shape& input, const Shape& weight, const Conv2dOptions& o) {
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
  Geometry g;
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

void check_operand(const char* op, const char* name, const Tensor& t) {
  THETA_CHECK(t.defined(), std::invalid_argument, op, ": ", name, " is undefined");
  THETA_CHECK(is_floating(t.dtype()), DTypeError, op, ": expected a floating ", name, ", got ", dtype_name(t.dtype()));
}

void check_same_dtype(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  THETA_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": dtype mismatch: ", a_name, " ", dtype_name(a.dtype()), ", ",
              b_name, " ", dtype_name(b.dtype()));
}

// For each output coordinate and kernel tap along one axis, the input coordinate it reads, or -1
// for zero padding: table[tap * out + o].
std::vector<std::int64_t> tap_table(std::int64_t size, std::int64_t out, std::int64_t taps, std::int64_t stride,
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
  explicit Taps(const Geometry& g)
      : rows(tap_table(g.h, g.h_out, g.kh, g.stride[0], g.padding[0], g.dilation[0], g.circular)),
        cols(tap_table(g.w, g.w_out, g.kw, g.stride[1], g.padding[1], g.dilation[1], g.circular)) {
    for (std::int64_t j = 0; j < g.kw; ++j) {
      const std::int64_t offset = j * g.dilation[1] - g.padding[1];
      const std::int64_t begin = std::clamp<std::int64_t>(ceil_div(-offset, g.stride[1]), 0, g.w_out);
      const std::int64_t end = std::clamp<std::int64_t>(ceil_div(g.w - offset, g.stride[1]), begin, g.w_out);
      runs.push_back({begin, end, offset});
    }
  }
};

// cols:[k, l] <- the windows of one sample x:[C_in, H, W] (Note [Convolution as gemm]).
template <class T>
void im2col(const Geometry& g, const Taps& taps, const T* x, T* cols) {
  const std::int64_t l = g.pixels(), stride = g.stride[1];
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
template <class T>
void col2im(const Geometry& g, const Taps& taps, const T* cols, T* x) {
  const std::int64_t l = g.pixels(), stride = g.stride[1];
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

// c:[m, n] = op(a) op(b) + beta c, all row-major.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda,
          const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const auto i = [](std::int64_t v) { return static_cast<blasint>(v); };
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta, c, i(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

// How many chunks the n samples are split into (Note [Convolution as gemm]).
std::int64_t chunk_count(std::int64_t n) {
  if (n <= 1 || detail::in_parallel_region()) return 1;
  return std::min<std::int64_t>(n, get_num_threads());
}

// Runs body(chunk, begin, end) over the samples [0, n) split into `chunks` contiguous ranges, in
// parallel when there is more than one.
template <class Body>
void for_each_chunk(std::int64_t n, std::int64_t chunks, Body&& body) {
  const std::int64_t per = chunks > 0 ? (n + chunks - 1) / chunks : 0;
  const auto run = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) body(c, c * per, std::min(n, (c + 1) * per));
  };
  if (chunks <= 1) {
    run(0, chunks);
    return;
  }
  const detail::SingleThreadedBlas blas;
  parallel_for(chunks, 1, run);
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Conv2dOptions& options) {
  check_operand("conv2d", "input", x_in);
  check_operand("conv2d", "weight", weight_in);
  check_same_dtype("conv2d", "input", x_in, "weight", weight_in);
  const Geometry g = geometry("conv2d", x_in.shape(), weight_in.shape(), options);
  Tensor out = Tensor::empty(g.output_shape(), x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const Taps taps(g);
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  warn_if_blas_fallback();
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
  check_operand(op, "grad_out", grad_out_in);
  check_operand(op, "weight", weight_in);
  check_same_dtype(op, "grad_out", grad_out_in, "weight", weight_in);
  const Geometry g = geometry(op, input_shape, weight_in.shape(), options);
  THETA_CHECK(grad_out_in.shape() == g.output_shape(), ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but conv2d of input ", shape_str(input_shape), " and weight ", shape_str(weight_in.shape()), " gives ",
              shape_str(g.output_shape()));
  Tensor dx = zeros(g.input_shape(), grad_out_in.dtype());
  if (dx.numel() == 0 || g.c_out == 0 || g.pixels() == 0) return dx;
  const Tensor dy = grad_out_in.contiguous(), weight = weight_in.contiguous();
  const Taps taps(g);
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  warn_if_blas_fallback();
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
  check_operand(op, "input", x_in);
  check_operand(op, "grad_out", grad_out_in);
  check_same_dtype(op, "input", x_in, "grad_out", grad_out_in);
  const Geometry g = geometry(op, x_in.shape(), weight_shape, options);
  THETA_CHECK(grad_out_in.shape() == g.output_shape(), ShapeError, op, ": grad_out is ", shape_str(grad_out_in.shape()),
              " but conv2d of input ", shape_str(x_in.shape()), " and weight ", shape_str(weight_shape), " gives ",
              shape_str(g.output_shape()));
  const std::int64_t k = g.taps(), l = g.pixels(), chunks = chunk_count(g.n);
  if (g.n == 0 || g.c_out == 0 || l == 0) return zeros(weight_shape, x_in.dtype());
  const Tensor x = x_in.contiguous(), dy = grad_out_in.contiguous();
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

}  // namespace theta

namespace theta {

Tensor conv2d_patches(const Tensor& x_in, const Shape& weight_shape, const Conv2dOptions& options) {
  const char* op = "conv2d_patches";
  check_operand(op, "input", x_in);
  const Geometry g = geometry(op, x_in.shape(), weight_shape, options);
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

Tensor conv2d_per_channel(const Tensor& x_in, const Tensor& weight_in, const Conv2dOptions& options) {
  const char* op = "conv2d_per_channel";
  check_operand(op, "input", x_in);
  check_operand(op, "weight", weight_in);
  check_same_dtype(op, "input", x_in, "weight", weight_in);
  const Shape& xs = x_in.shape();
  const Shape& ws = weight_in.shape();
  THETA_CHECK(xs.size() == 4 && ws.size() == 4 && ws[0] == xs[1], ShapeError, op,
              ": expected input [N, C, H, W] and weight [C, M, kh, kw] with one bank of filters per channel, got input ",
              shape_str(xs), " and weight ", shape_str(ws));
  THETA_CHECK(options.stride[0] == 1 && options.stride[1] == 1, ShapeError, op, ": only stride 1 is supported, got [",
              options.stride[0], ", ", options.stride[1], "]");
  // Each channel alone is a convolution of one input channel with M filters.
  const Geometry g = geometry(op, {xs[0], 1, xs[2], xs[3]}, {ws[1], 1, ws[2], ws[3]}, options);
  const std::int64_t channels = xs[1], filters = ws[1];
  Tensor out = Tensor::empty({g.n, channels, filters, g.h_out, g.w_out}, x_in.dtype());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  const std::int64_t ph = g.h + 2 * g.padding[0], pw = g.w + 2 * g.padding[1];
  // Padded rows and columns read from input coordinate index[...] (-1: zero), one table per axis.
  const auto source = [&](std::int64_t size, std::int64_t padding) {
    std::vector<std::int64_t> index(static_cast<std::size_t>(size + 2 * padding));
    for (std::int64_t i = 0; i < size + 2 * padding; ++i) {
      const std::int64_t s = i - padding;
      index[static_cast<std::size_t>(i)] = g.circular ? ((s % size) + size) % size : (s >= 0 && s < size ? s : -1);
    }
    return index;
  };
  const std::vector<std::int64_t> rows = source(g.h, g.padding[0]), cols = source(g.w, g.padding[1]);
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
