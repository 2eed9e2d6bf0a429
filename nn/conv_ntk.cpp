// Conv2d's structured-Jacobian rule (Note [Structured Jacobians] in structured.hpp): its NTK
// block and per-sample gradients from the layer's input patches and output cotangents.

#include <algorithm>
#include <cmath>
#include <optional>

#include "nn/conv.hpp"
#include "nn/conv_factors.hpp"
#include "nn/layer_support.hpp"
#include "tensor/blas_runtime.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"

namespace theta::nn {

// Note [Conv2d NTK routes]
// For y = s_w conv(a, W) + s_b b, write P_i:[K, L] for sample i's patches (conv2d_patches: K =
// C_in k^2 taps, L = H_out W_out output pixels) and D:[C_out, L] for an output cotangent. Then
//   J_i^T D = (s_w D P_i^T, s_b D 1)     (weight [C_out, K], bias [C_out])
// and the layer's NTK block between cotangents D of sample i and D' of sample j is
//   <J_i^T D, J_j^T D'> = sum_{p, q} <D_p, D'_q> (s_w^2 <P_i[:, p], P_j[:, q]> + s_b^2),
// with D_p the column of pixel p. Two ways to evaluate it (Novak et al. 2022 choose between such
// routes per layer by cost):
//   weight gradients: form the features F = J^T D, C_out (K + 1) numbers per cotangent, for every
//     sample and cotangent (one batched gemm), then one Gram of features. Per pair of samples
//     with m cotangents each: m^2 C_out K, plus the features, m C_out L K per sample.
//   pixel pairs: M = s_w^2 P_i^T P_j + s_b^2, [L, L], then T = D' M^T and <D, T>: per pair
//     L^2 K + m C_out L^2 + m^2 C_out L, and nothing per sample.
// Features win on small images with many channels (8 x 8 digits: L = 64); pixel pairs on deep
// layers whose maps are small and whose filters are large (K C_out >> L^2). `automatic` takes the
// cheaper count. Both chunk their temporaries under max_bytes: the feature route recomputes a
// chunk's features for each partner chunk (a fraction L / (chunk m) of the Gram's cost), the
// pixel route splits the partners of a sample.
//
// Note [Channel-factored cotangents]
// With m > 1 cotangents per sample, both routes pay m^2 per pair of samples. Often the m
// cotangents differ only by a per-channel factor: D[i, a][c, :] = U[a, c] V[i][c, :], whenever
// everything between the layer and the outputs acts on each channel alone before a linear readout
// mixes them (activations, pooling, global average pooling, then Linear: U is the readout's
// weight). The block is then
//   K[i, a, j, b] = sum_c U[a, c] U[b, c] H[c, i, j],   H[c, i, j] = <G_i[c], G_j[c]>,
// with G_i = (s_w V_i P_i^T, s_b V_i 1):[C_out, K + 1] one feature row per channel: n^2 C_out K
// for the per-channel Grams plus n^2 m^2 C_out to mix them, instead of n^2 m^2 C_out K. The
// factors come with the cotangents (nn::Cotangents, as theory carries them through channel-wise
// segments) or are found from dense cotangents in one pass (Cotangents::find_channel_factors):
// per channel, the first sample where the channel is not all zero fixes U (the ratios of the
// outputs' cotangents at that sample's largest entry; floating-point ratios are as precise at any
// magnitude) and which output's cotangent is V, and every cotangent must then match U V to 1e-13
// of the channel's largest entry (products of a readout weight and a 0/1 activation mask match to
// rounding). Two blocks normalised at different outputs are brought to one U per channel.
// Otherwise, or when a route is forced, the plain routes run.
//
namespace {

using detail::ChannelFactors;
using detail::ConvFactors;
using detail::channel_factors;
using detail::check_cotangents;
using detail::cotangent_factors;

// The scaled windows with the bias tap, for the plain routes.
void add_windows(const Conv2d& layer, const Tensor& a, ConvFactors& f) {
  f.cols = conv2d_patches(a, layer.weight().shape(), layer.geometry()) * layer.weight_scale();
  f.taps = f.cols.size(1);
  if (layer.options().bias) f.cols = concat({f.cols, full({f.n, 1, f.pixels}, layer.bias_scale(), a.dtype())}, 1);
  f.width = f.cols.size(1);
}

ConvFactors factors(const Conv2d& layer, const Tensor& a, const Tensor& d) {
  ConvFactors f = cotangent_factors(layer, a, d);
  add_windows(layer, a, f);
  return f;
}

// Features J^T d for samples [begin, end): [count, m, C_out width].
Tensor features(const ConvFactors& f, std::int64_t begin, std::int64_t end) {
  const std::int64_t count = end - begin;
  const Tensor d = f.d.slice(0, begin, end).reshape({count, f.m * f.c_out, f.pixels});
  // The windows copied to [count, L, width] first: OpenBLAS's small products ran 1.6x faster with
  // that operand row-major than transposed (the first convolution of the digits CNN: 9.7 -> 5.9 ms).
  return matmul(d, f.cols.slice(0, begin, end).transpose(1, 2).contiguous()).reshape({count, f.m, -1});
}

std::int64_t chunk_rows(std::int64_t max_bytes, std::int64_t bytes_per_row, std::int64_t n) {
  return std::clamp<std::int64_t>(max_bytes / std::max<std::int64_t>(1, 2 * bytes_per_row), 1, std::max<std::int64_t>(n, 1));
}

void by_features(const ConvFactors& f1, const ConvFactors& f2, bool same, bool trace, std::int64_t max_bytes,
                 const Tensor& k) {
  const std::int64_t m = f1.m, width = f1.c_out * f1.width;
  const std::int64_t chunk = chunk_rows(max_bytes, m * width * 8, std::max(f1.n, f2.n));
  // With `same`, only blocks on and below the diagonal.
  for (std::int64_t a0 = 0; a0 < f1.n; a0 += chunk) {
    const std::int64_t a1 = std::min(f1.n, a0 + chunk);
    const Tensor fa = features(f1, a0, a1);
    for (std::int64_t b0 = 0; b0 < (same ? a1 : f2.n); b0 += chunk) {
      check_interrupt();
      const std::int64_t b1 = std::min(f2.n, b0 + chunk);
      const bool diagonal = same && b0 == a0;
      const Tensor fb = diagonal ? fa : features(f2, b0, b1);
      const std::int64_t na = a1 - a0, nb = b1 - b0;
      const Tensor target = k.slice(0, a0, a1).slice(1, b0, b1);
      if (trace) {
        const Tensor ra = fa.reshape({na, m * width});
        const Tensor block = diagonal ? gram(ra) : matmul(ra, fb.reshape({nb, m * width}).t());
        target.add_(block);
        if (same && !diagonal) k.slice(0, b0, b1).slice(1, a0, a1).add_(block.t());
      } else {
        const Tensor ra = fa.reshape({na * m, width});
        add_feature_gram(target, ra, diagonal ? ra : fb.reshape({nb * m, width}), Tensor(), diagonal);
      }
    }
  }
}

// Sample i of f1 against samples [b0, b1) of f2 by pixel pairs: [count, m, m], or the trace [count].
Tensor pixel_pair_rows(const ConvFactors& f1, std::int64_t i, const ConvFactors& f2, std::int64_t b0,
                       std::int64_t b1, bool trace) {
  const std::int64_t count = b1 - b0, m = f1.m, cl = f1.c_out * f1.pixels;
  const Tensor mix = matmul(f1.cols.select(0, i).t(), f2.cols.slice(0, b0, b1));  // [count, L, L']
  // T[j, b, c, p] = sum_q d2[j, b, c, q] M_j[p, q]
  const Tensor d2 = f2.d.slice(0, b0, b1).reshape({count, m * f2.c_out, f2.pixels});
  const Tensor t = matmul(d2, mix.transpose(1, 2)).reshape({count, m, cl});
  const Tensor di = f1.d.select(0, i).reshape({m, cl});
  if (trace) return sum(t * di.unsqueeze(0), {1, 2});
  return matmul(di.unsqueeze(0), t.transpose(1, 2));  // [count, m, m]
}

void by_pixel_pairs(const ConvFactors& f1, const ConvFactors& f2, bool same, bool trace, std::int64_t max_bytes,
                    const Tensor& k) {
  const std::int64_t m = f1.m;
  const std::int64_t per_partner = (f1.pixels * f2.pixels + m * f2.c_out * f1.pixels) * 8;
  const std::int64_t chunk = chunk_rows(max_bytes, per_partner, f2.n);
  // With `same`, partners j <= i only (for the trace, mirrored).
  for (std::int64_t i = 0; i < f1.n; ++i) {
    check_interrupt();
    const std::int64_t end = same ? i + 1 : f2.n;
    for (std::int64_t b0 = 0; b0 < end; b0 += chunk) {
      const std::int64_t b1 = std::min(end, b0 + chunk);
      const Tensor rows = pixel_pair_rows(f1, i, f2, b0, b1, trace);  // [count(, m, m)]
      k.select(0, i).slice(0, b0, b1).add_(rows);
      if (same && trace && std::min(b1, i) > b0) {
        const std::int64_t below = std::min(b1, i);
        k.select(1, i).slice(0, b0, below).add_(rows.slice(0, 0, below - b0));
      }
    }
  }
}

// Samples whose windows are formed at a time by channel_features: a few hundred KiB, so that the
// gemms read them from cache (forming all windows first, then the gemms, took 1.25x as long for
// 256 digits, and held C_in k^2 L numbers per sample).
constexpr std::int64_t kWindowSamples = 4;
// Samples whose features are moved into gt at a time: 8 doubles fill a cache line of each row.
constexpr std::int64_t kMoveSamples = 8;

// Per-channel features G[i, c] = (s_w V_i[c] P_i^T, s_b V_i[c] 1), stored by channel and feature
// as gt:[C, width, n]: a channel's features of all samples are then the [width, n] matrix whose
// rows the Grams read in place (Note [Channel mixing]). For kMoveSamples samples at a time, V is
// laid out by pixel, s_w V_i^T:[L, C], so that each sample's G_i^T = P_i (s_w V_i^T), [K, C], is a
// product of two operands read in place (with V_i^T as a transposed view, the products copied it
// for every sample, and that copy took longer than the products); then the block moves into its
// columns of gt, a cache line of each row at a time.
Tensor channel_features(const Conv2d& layer, const Tensor& a, const Tensor& v) {
  const std::int64_t n = v.size(0), c_out = v.size(1);
  const std::int64_t taps = layer.in_channels() * layer.kernel_size() * layer.kernel_size();
  const bool bias = layer.options().bias;
  const std::int64_t width = taps + (bias ? 1 : 0), rows = c_out * width;
  const Tensor gt = Tensor::empty({c_out, width, n}, v.dtype());  // every entry is assigned below
  theta::detail::parallel_for_blas(n, kMoveSamples, [&](std::int64_t begin, std::int64_t end) {
    const Tensor g = Tensor::empty({kMoveSamples, width, c_out}, v.dtype());  // G_i^T of the block
    for (std::int64_t m0 = begin; m0 < end; m0 += kMoveSamples) {
      const std::int64_t m1 = std::min(end, m0 + kMoveSamples);
      const Tensor v_block = v.slice(0, m0, m1);
      const Tensor by_pixel = (v_block * layer.weight_scale()).transpose(1, 2).contiguous();  // [count, L, C]
      if (bias) g.slice(0, 0, m1 - m0).select(1, taps).copy_(sum(v_block, {2}) * layer.bias_scale());
      for (std::int64_t b0 = m0; b0 < m1; b0 += kWindowSamples) {
        const std::int64_t b1 = std::min(m1, b0 + kWindowSamples);
        // [count, K, L]
        const Tensor patches = conv2d_patches(a.slice(0, b0, b1), layer.weight().shape(), layer.geometry());
        for (std::int64_t i = b0; i < b1; ++i)
          g.select(0, i - m0).slice(0, 0, taps).assign_matmul_(patches.select(0, i - b0), by_pixel.select(0, i - m0));
      }
      // gt[c, w, m0 + s] = g[s, w, c].
      visit_float_dtype(v.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* src = g.data<T>();
        T* dst = gt.data<T>() + m0;
        for (std::int64_t c = 0; c < c_out; ++c)
          for (std::int64_t w = 0; w < width; ++w, dst += n)
            for (std::int64_t s = 0; s < m1 - m0; ++s) dst[s] = src[s * rows + w * c_out + c];
      });
    }
  });
  return gt;
}

// Note [Channel mixing]
// K[i, j, a, b] = sum_c H[c, i, j] U[a, c] U[b, c] (Note [Channel-factored cotangents]) is formed a
// block of kernel rows at a time: the Grams H[i0:i1, c, :] of every channel of the group go into a
// small buffer (laid out [rows, C, n2]), each a product of the block's rows of the channel's
// [width, n] features with its partners', and those rows of k are mixed at once while both are in
// cache: row i of k, [partners, m m], gains H_i^T W with W[c, (a, b)] = U[a, c] U[b, c], one product
// accumulated in place. No [n1, C, n2] is ever held (it was 32 MiB for the digits CNN's 64 channels
// on 256 samples), and k is visited once per group. Blocks of rows run on theta's threads; with
// `same`, row i has i + 1 partners, so block q is paired with block blocks - 1 - q to balance the
// work. The trace needs no per-channel Grams at all: sum_c |U[:, c]|^2 <G_i[c], G_j[c]> is one Gram
// of the features with channel c scaled by |U[:, c]|.

// Bytes of one thread's Gram buffer, [rows, C, n2] (less under a smaller max_bytes).
constexpr std::int64_t kMixBufferBytes = std::int64_t{2} << 20;

// K[i, j] += sum_c <G1_i[c], G2_j[c]> U[:, c] U[:, c]^T for j < partners(i), features gt:[C, width, n].
void mix_channel_grams(const Tensor& g1t, const Tensor& g2t, const Tensor& u, bool same, std::int64_t max_bytes,
                       const Tensor& k) {
  const std::int64_t group = g1t.size(0), n1 = g1t.size(2), n2 = g2t.size(2), m = u.size(0);
  const Tensor mixing = (u.t().unsqueeze(2) * u.t().unsqueeze(1)).reshape({group, m * m});  // W[c, (a, b)]
  const std::int64_t rows = theta::nn::detail::balanced_block_rows(
      n1, std::min<std::int64_t>(64, std::min(kMixBufferBytes, max_bytes) / (group * n2 * 8)), same);
  const std::int64_t blocks = (n1 + rows - 1) / rows;
  const auto mix_block = [&](std::int64_t block, const Tensor& h) {
    const std::int64_t r0 = block * rows, r1 = std::min(n1, r0 + rows), partners = same ? r1 : n2;
    const Tensor grams = h.slice(0, 0, r1 - r0);
    // With `same`, the block's own partners in full (mixing reads the lower triangle).
    for (std::int64_t c = 0; c < group; ++c)
      grams.select(1, c).slice(1, 0, partners).assign_matmul_(g1t.select(0, c).slice(1, r0, r1).t(),
                                                               g2t.select(0, c).slice(1, 0, partners));
    for (std::int64_t i = r0; i < r1; ++i) {
      const std::int64_t own = same ? i + 1 : n2;
      k.select(0, i).slice(0, 0, own).reshape({own, m * m}).add_matmul_(grams.select(0, i - r0).slice(1, 0, own).t(),
                                                                        mixing);
    }
  };
  theta::detail::parallel_for_blas(same ? (blocks + 1) / 2 : blocks, 1, [&](std::int64_t begin, std::int64_t end) {
    const Tensor h = Tensor::empty({rows, group, n2}, g1t.dtype());  // every entry read is assigned first
    for (std::int64_t q = begin; q < end; ++q) {
      if (!theta::detail::in_parallel_region()) check_interrupt();
      mix_block(q, h);
      if (same && blocks - 1 - q != q) mix_block(blocks - 1 - q, h);
    }
  });
}

// The channels of one group [c0, c1): their features and their part of the kernel.
void add_channel_group(const Conv2d& layer, const Tensor& a1, const Tensor& a2, const ChannelFactors& cf,
                       std::int64_t c0, std::int64_t c1, bool same, bool trace, std::int64_t max_bytes,
                       const Tensor& k) {
  const Tensor u = cf.u.slice(1, c0, c1);
  Tensor v1 = cf.v1.slice(1, c0, c1), v2 = same ? v1 : cf.v2.slice(1, c0, c1);
  if (trace) {
    // sum_c |U[:, c]|^2 <G1_i[c], G2_j[c]> as one Gram of the features of V scaled by |U[:, c]|
    // (Note [Channel mixing]).
    const Tensor norms = sqrt(sum(square(u), {0})).reshape({1, c1 - c0, 1});
    v1 = v1 * norms;
    v2 = same ? v1 : v2 * norms;
  }
  const Tensor g1 = channel_features(layer, a1, v1);
  const Tensor g2 = same ? g1 : channel_features(layer, a2, v2);
  if (!trace) return mix_channel_grams(g1, g2, u, same, max_bytes, k);
  const Tensor f1 = g1.reshape({-1, g1.size(2)});  // [C width, n1]
  k.add_(same ? gram(f1.t()) : matmul(f1.t(), g2.reshape({-1, g2.size(2)})));
}

// Note [Channel groups]
// The channels go in groups of equal size whose features take no more bytes than half the kernel
// they add to (n1 n2 m^2 8, or n1 n2 8 for the trace), or 16 MiB where that is smaller (a tile's
// kernel, a trace), and never more than max_bytes (at least one channel at a time). Each group
// forms the windows again (~4 ms for 256 digits) and mixes its Grams into every row of k (a pass
// over k, ~3.5 ms). For the digits CNN on 256 samples: two groups of 32 channels, 18 MiB of
// features each, and the kernel's peak of live bytes 83 MiB (with Note [Compact factors] and Note
// [Channel mixing]). Three groups give 77 MiB but cost 2-10% of the time on 1 thread and 12-16%
// on 2.
constexpr std::int64_t kMinGroupBytes = std::int64_t{16} << 20;

void by_channel_factors(const Conv2d& layer, const Tensor& a1, const Tensor& a2, const ChannelFactors& cf, bool same,
                        bool trace, std::int64_t max_bytes, const Tensor& k) {
  const std::int64_t c_out = cf.u.size(1), n1 = cf.v1.size(0), n2 = same ? n1 : cf.v2.size(0), m = cf.u.size(0);
  const std::int64_t width = layer.in_channels() * layer.kernel_size() * layer.kernel_size() +
                             (layer.options().bias ? 1 : 0);
  const std::int64_t per_channel = (same ? n1 : n1 + n2) * width * 8;
  const std::int64_t kernel_bytes = n1 * n2 * (trace ? 1 : m * m) * 8;
  const std::int64_t budget = std::min(max_bytes, std::max(kMinGroupBytes, kernel_bytes / 2));
  const std::int64_t largest = std::clamp<std::int64_t>(budget / per_channel, 1, c_out);
  const std::int64_t groups = (c_out + largest - 1) / largest;
  for (std::int64_t g = 0; g < groups; ++g)
    add_channel_group(layer, a1, a2, cf, g * c_out / groups, (g + 1) * c_out / groups, same, trace, max_bytes, k);
}

// Operation counts per pair of samples of the two routes (Note [Conv2d NTK routes]).
bool features_cheaper(const ConvFactors& f, std::int64_t partners, bool trace) {
  const double m = static_cast<double>(f.m), c = static_cast<double>(f.c_out), k = static_cast<double>(f.taps),
               l = static_cast<double>(f.pixels), n = static_cast<double>(std::max<std::int64_t>(partners, 1));
  const double by_features = (trace ? m : m * m) * c * k + 2.0 * m * c * l * k / n;
  const double by_pixels = l * l * k + m * c * l * l + (trace ? m : m * m) * c * l;
  return by_features <= by_pixels;
}

}  // namespace

void Conv2d::add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Cotangents& d1, const Tensor& a2,
                                  const Cotangents& d2, bool same, bool trace, std::int64_t max_bytes) const {
  check_cotangents(*this, a1, d1);
  if (!same) check_cotangents(*this, a2, d2);
  const Shape s1 = d1.shape(), s2 = (same ? d1 : d2).shape();
  const std::int64_t n1 = s1[0], n2 = s2[0], m = s1[1];
  THETA_CHECK(s2[1] == m, ShapeError, describe(), ": cotangent counts differ: ", shape_str(s1), " and ", shape_str(s2));
  const Shape expected = trace ? Shape{n1, n2} : Shape{n1, n2, m, m};
  THETA_CHECK(k.shape() == expected && k.is_contiguous() && k.dtype() == d1.dtype(), ShapeError, describe(),
              ": the kernel to add to must be a contiguous ", shape_str(expected), " ", dtype_name(d1.dtype()),
              ", got ", shape_str(k.shape()), " ", dtype_name(k.dtype()));
  if (ntk_route == ConvNtkRoute::automatic)
    if (const auto cf = channel_factors(d1, d2, same))
      return by_channel_factors(*this, a1, a2, *cf, same, trace, max_bytes, k);
  ConvFactors f1 = cotangent_factors(*this, a1, d1.dense());
  add_windows(*this, a1, f1);
  ConvFactors f2 = f1;
  if (!same) {
    f2 = cotangent_factors(*this, a2, d2.dense());
    add_windows(*this, a2, f2);
  }
  const bool use_features = ntk_route == ConvNtkRoute::weight_gradients ||
                            (ntk_route == ConvNtkRoute::automatic && features_cheaper(f1, f2.n, trace));
  if (use_features)
    by_features(f1, f2, same, trace, max_bytes, k);
  else
    by_pixel_pairs(f1, f2, same, trace, max_bytes, k);
}

Tensor Conv2d::cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t max_bytes) const {
  const ConvFactors f = factors(*this, a, d);
  Tensor out = Tensor::empty({f.n, f.m, f.m}, d.dtype());
  if (ntk_route == ConvNtkRoute::pixel_pairs) {
    for (std::int64_t i = 0; i < f.n; ++i) out.select(0, i).copy_(pixel_pair_rows(f, i, f, i, i + 1, false).select(0, 0));
    return out;
  }
  const std::int64_t chunk = chunk_rows(max_bytes, f.m * f.c_out * f.width * 8, f.n);
  for (std::int64_t a0 = 0; a0 < f.n; a0 += chunk) {
    check_interrupt();
    const std::int64_t a1 = std::min(f.n, a0 + chunk);
    const Tensor g = features(f, a0, a1);  // [count, m, C_out width]
    out.slice(0, a0, a1).copy_(matmul(g, g.transpose(1, 2)));
  }
  return out;
}

bool Conv2d::prefers_features(const Tensor& a, const Cotangents& d) const {
  check_cotangents(*this, a, d);
  if (ntk_route == ConvNtkRoute::pixel_pairs) return false;
  const Shape s = d.shape();
  const std::int64_t width = in_ * kernel_ * kernel_ + (options_.bias ? 1 : 0), pixels = s[3] * s[4];
  // Fewer taps than pixels: the features are smaller than the cotangents, and the feature route
  // is the cheaper one for any number of partners (Note [Conv2d NTK routes]: then
  // m^2 C K + 2 m C L K / n <= m^2 C L + m C L^2 for n >= 2).
  if (width >= pixels) return false;
  return ntk_route == ConvNtkRoute::weight_gradients || !channel_factors(d, d, true);
}

Tensor Conv2d::cotangent_features(const Tensor& a, const Cotangents& d) const {
  const ConvFactors f = factors(*this, a, d.dense());
  return features(f, 0, f.n);
}

std::vector<Tensor> Conv2d::per_sample_gradients(const Tensor& a, const Tensor& d) const {
  const ConvFactors f = factors(*this, a, d.unsqueeze(1));
  const Tensor g = matmul(f.d.reshape({f.n, f.c_out, f.pixels}), f.cols.transpose(1, 2));  // [n, C_out, width]
  std::vector<Tensor> out{g.slice(2, 0, f.taps).contiguous().reshape({f.n, out_, in_, kernel_, kernel_})};
  if (options_.bias) out.push_back(g.select(2, f.taps).contiguous());
  return out;
}

}  // namespace theta::nn
