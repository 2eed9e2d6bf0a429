// Conv2d's input cotangents (StructuredLayer::input_cotangents): output cotangents of every
// sample and slot mapped to cotangents of the layer's input, for the structured NTK's pullback.

#include <algorithm>

#include "nn/conv.hpp"
#include "nn/conv_factors.hpp"
#include "tensor/blas_runtime.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"

namespace theta::nn {

// Note [Conv2d input cotangents]
// input_cotangents maps output cotangents d[:, a] to s_w conv2d_input_grad(d[:, a], W): O
// transposed convolutions, C_out C_in K L multiply-adds each per sample. When d factors by channel,
// the transposed convolution is linear in d, so E[i, a] = sum_c U[a, c] Z_i[c] with Z_i[c] the
// transposed convolution of V_i[c] by s_w W[c] alone: C_out C_in K L once for all Z, then
// C_out C_in L per output to mix, (K + O) instead of K O. For stride 1 with zero padding p <=
// d (k - 1), or circular padding that keeps the size, a transposed convolution is the
// convolution with the flipped kernel and padding d (k - 1) - p: Z_i = conv2d_per_channel(V_i,
// flip(s_w W)), each channel's plane correlated with its own C_in filters in one SIMD pass (no
// windows, no gemms of K = k^2). Z is C_out C_in L numbers per sample: chunks of samples keep it in
// cache while it is mixed, one gemm per sample writing E_i in place.

namespace {

using detail::ChannelFactors;
using detail::output_size;

// Whether the transposed convolution is a convolution of the same size (Note [Conv2d input
// cotangents]): stride 1, and zero padding of at most d (k - 1), or circular padding that keeps
// the image size.
bool pullback_by_windows(const Conv2d& layer) {
  const ConvOptions& o = layer.options();
  const std::int64_t reach = o.dilation * (layer.kernel_size() - 1);
  if (o.stride != 1) return false;
  return o.padding_mode == Padding::circular ? 2 * o.padding == reach : o.padding <= reach;
}

// Samples per chunk of the channel pullback: their Z, C_out C_in L numbers each, stay within about
// one core's L2 cache so that mixing reads them from there (on a 1 MiB L2, 4 MiB chunks made the
// pullback 1.4x slower, 64 MiB chunks 3.5x).
constexpr std::int64_t kPullbackBytes = std::int64_t{1} << 20;

// E[i, a] = sum_c U[a, c] Z_i[c] with Z_i = conv2d_per_channel(V_i, flip(s_w W)) (Note [Conv2d
// input cotangents]).
Tensor pullback_by_channels(const Conv2d& layer, const Tensor& a, const ChannelFactors& cf) {
  const std::int64_t n = cf.v1.size(0), m = cf.u.size(0), c_out = cf.u.size(1), c_in = layer.in_channels();
  const std::int64_t k = layer.kernel_size(), h = a.size(2), w = a.size(3), pixels = h * w;
  const DType dtype = cf.v1.dtype();
  // flip(W)[c, c_in, i, j] = W[c, c_in, k - 1 - i, k - 1 - j]: both spatial axes reversed.
  const Tensor weight = (layer.weight().value() * layer.weight_scale()).contiguous();
  const Tensor flipped = Tensor::empty({c_out, c_in, k, k}, dtype);
  visit_float_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* src = weight.data<T>();
    T* dst = flipped.data<T>();
    const std::int64_t taps = k * k;
    for (std::int64_t row = 0; row < c_out * c_in; ++row)
      for (std::int64_t t = 0; t < taps; ++t) dst[row * taps + t] = src[row * taps + taps - 1 - t];
  });
  const ConvOptions& o = layer.options();
  const std::int64_t pad = o.dilation * (k - 1) - o.padding;
  const Conv2dOptions transposed{.stride = {1, 1}, .padding = {pad, pad}, .dilation = {o.dilation, o.dilation},
                                 .padding_mode = o.padding_mode};
  const Tensor out = Tensor::empty({n, m, c_in, h, w}, dtype);
  const std::int64_t chunk = std::clamp<std::int64_t>(kPullbackBytes / (c_out * c_in * pixels * 8), 1, n);
  const auto pull_chunk = [&](std::int64_t b0) {
    const std::int64_t b1 = std::min(n, b0 + chunk), count = b1 - b0;
    const Tensor v = cf.v1.slice(0, b0, b1).reshape({count, c_out, output_size(layer, h), output_size(layer, w)});
    const Tensor z = conv2d_per_channel(v, flipped, transposed);  // [count, C_out, C_in, H, W]
    for (std::int64_t s = 0; s < count; ++s) {
      const Tensor z_s = z.select(0, s).reshape({c_out, c_in * pixels});
      out.select(0, b0 + s).reshape({m, c_in * pixels}).assign_matmul_(cf.u, z_s);
    }
  };
  // Chunks run on theta's threads, each with single-threaded BLAS: their gemms are too small to split.
  theta::detail::parallel_for_blas((n + chunk - 1) / chunk, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      if (!theta::detail::in_parallel_region()) check_interrupt();
      pull_chunk(c * chunk);
    }
  });
  return out;
}

}  // namespace

Tensor Conv2d::input_cotangents(const Tensor& a, const Cotangents& d) const {
  detail::check_cotangents(*this, a, d);
  if (ntk_route == ConvNtkRoute::automatic && pullback_by_windows(*this))
    if (const auto cf = detail::channel_factors(d, d, true)) return pullback_by_channels(*this, a, *cf);
  const detail::ConvFactors f = detail::cotangent_factors(*this, a, d.dense());
  const std::int64_t n = f.n, m = f.m;
  const Shape s = d.shape();
  const Tensor flat = f.d.reshape({n * m, f.c_out, s[3], s[4]});
  const Tensor w = weight_scale() == 1.0 ? weight().value() : weight().value() * weight_scale();
  return conv2d_input_grad(flat, w, {n * m, in_, a.size(2), a.size(3)}, geometry())
      .reshape({n, m, in_, a.size(2), a.size(3)});
}

}  // namespace theta::nn
