// Conv2d's structured-Jacobian rule (Note [Structured Jacobians] in structured.hpp): its NTK
// block and per-sample gradients from the layer's input patches and output cotangents.

#include <algorithm>
#include <cmath>
#include <optional>

#include "nn/conv.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"

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
// factorisation is found from the cotangents themselves: per channel, the output whose cotangent
// is largest gives V, the ratios at its largest entry give U, and every cotangent must then match
// U V to 1e-13 of the channel's largest entry (products of a readout weight and a 0/1 activation
// mask match to rounding). Otherwise, or when a route is forced, the plain routes run.

namespace {

// The pieces of one call of the rule: patches [n, K, L], cotangents as [n, m, C_out, L].
struct ConvFactors {
  Tensor patches;
  Tensor d;
  std::int64_t n = 0, m = 0, c_out = 0, taps = 0, pixels = 0;
};

ConvFactors factors(const Conv2d& layer, const Tensor& a, const Tensor& d) {
  ConvFactors f;
  f.patches = conv2d_patches(a, layer.weight().shape(), layer.geometry());
  f.n = a.size(0);
  f.taps = f.patches.size(1);
  f.pixels = f.patches.size(2);
  f.c_out = layer.out_channels();
  f.m = d.size(1);
  THETA_CHECK(d.dim() == 5 && d.size(0) == f.n && d.size(2) == f.c_out && d.size(3) * d.size(4) == f.pixels,
              ShapeError, layer.describe(), ": cotangents ", shape_str(d.shape()), " do not match the output of input ",
              shape_str(a.shape()));
  f.d = d.contiguous().reshape({f.n, f.m, f.c_out, f.pixels});
  return f;
}

// Features J^T d for samples [begin, end): [count, m, C_out (K + bias)], scaled.
Tensor features(const Conv2d& layer, const ConvFactors& f, std::int64_t begin, std::int64_t end) {
  const std::int64_t count = end - begin;
  const Tensor d = f.d.slice(0, begin, end).reshape({count, f.m * f.c_out, f.pixels});
  Tensor g = matmul(d, f.patches.slice(0, begin, end).transpose(1, 2)) * layer.weight_scale();  // [count, m C, K]
  if (layer.options().bias) g = concat({g, sum(d, {2}, true) * layer.bias_scale()}, 2);
  return g.reshape({count, f.m, -1});
}

std::int64_t feature_width(const Conv2d& layer, const ConvFactors& f) {
  return f.c_out * (f.taps + (layer.options().bias ? 1 : 0));
}

std::int64_t chunk_rows(std::int64_t max_bytes, std::int64_t bytes_per_row, std::int64_t n) {
  return std::clamp<std::int64_t>(max_bytes / std::max<std::int64_t>(1, 2 * bytes_per_row), 1, std::max<std::int64_t>(n, 1));
}

Tensor by_features(const Conv2d& layer, const ConvFactors& f1, const ConvFactors& f2, bool same, bool trace,
                   std::int64_t max_bytes) {
  const std::int64_t m = f1.m, width = feature_width(layer, f1);
  const std::int64_t chunk = chunk_rows(max_bytes, m * width * 8, std::max(f1.n, f2.n));
  const DType dtype = f1.d.dtype();
  Tensor out = trace ? Tensor::empty({f1.n, f2.n}, dtype) : Tensor::empty({f1.n, f2.n, m, m}, dtype);
  // With `same`, blocks above the diagonal are mirrored from those below.
  for (std::int64_t a0 = 0; a0 < f1.n; a0 += chunk) {
    const std::int64_t a1 = std::min(f1.n, a0 + chunk);
    const Tensor fa = features(layer, f1, a0, a1);
    for (std::int64_t b0 = 0; b0 < (same ? a1 : f2.n); b0 += chunk) {
      check_interrupt();
      const std::int64_t b1 = std::min(f2.n, b0 + chunk);
      const bool diagonal = same && b0 == a0;
      const Tensor fb = diagonal ? fa : features(layer, f2, b0, b1);
      const std::int64_t na = a1 - a0, nb = b1 - b0;
      const Tensor target = out.slice(0, a0, a1).slice(1, b0, b1);
      if (trace) {
        const Tensor ra = fa.reshape({na, m * width});
        const Tensor block = diagonal ? gram(ra) : matmul(ra, fb.reshape({nb, m * width}).t());
        target.copy_(block);
        if (same && !diagonal) out.slice(0, b0, b1).slice(1, a0, a1).copy_(block.t());
      } else {
        const Tensor ra = fa.reshape({na * m, width});
        const Tensor block = diagonal ? gram(ra) : matmul(ra, fb.reshape({nb * m, width}).t());
        target.copy_(block.reshape({na, m, nb, m}).permute({0, 2, 1, 3}));
      }
    }
  }
  if (same && !trace) mirror_lower_blocks(out);
  return out;
}

// Sample i of f1 against samples [b0, b1) of f2 by pixel pairs: [count, m, m], or the trace [count].
Tensor pixel_pair_rows(const Conv2d& layer, const ConvFactors& f1, std::int64_t i, const ConvFactors& f2,
                       std::int64_t b0, std::int64_t b1, bool trace) {
  const std::int64_t count = b1 - b0, m = f1.m, cl = f1.c_out * f1.pixels;
  const double sw = layer.weight_scale(), sb = layer.options().bias ? layer.bias_scale() : 0.0;
  const Tensor pi = f1.patches.select(0, i);                                     // [K, L]
  Tensor mix = matmul(pi.t(), f2.patches.slice(0, b0, b1)) * (sw * sw);           // [count, L, L']
  if (sb != 0.0) mix = mix + sb * sb;
  // T[j, b, c, p] = sum_q d2[j, b, c, q] M_j[p, q]
  const Tensor d2 = f2.d.slice(0, b0, b1).reshape({count, m * f2.c_out, f2.pixels});
  const Tensor t = matmul(d2, mix.transpose(1, 2)).reshape({count, m, cl});
  const Tensor di = f1.d.select(0, i).reshape({m, cl});
  if (trace) return sum(t * di.unsqueeze(0), {1, 2});
  return matmul(di.unsqueeze(0), t.transpose(1, 2));  // [count, m, m]
}

Tensor by_pixel_pairs(const Conv2d& layer, const ConvFactors& f1, const ConvFactors& f2, bool same, bool trace,
                      std::int64_t max_bytes) {
  const std::int64_t m = f1.m;
  const std::int64_t per_partner = (f1.pixels * f2.pixels + m * f2.c_out * f1.pixels) * 8;
  const std::int64_t chunk = chunk_rows(max_bytes, per_partner, f2.n);
  const DType dtype = f1.d.dtype();
  Tensor out = trace ? Tensor::empty({f1.n, f2.n}, dtype) : Tensor::empty({f1.n, f2.n, m, m}, dtype);
  // With `same`, partners j <= i only; the rest is mirrored.
  for (std::int64_t i = 0; i < f1.n; ++i) {
    check_interrupt();
    const std::int64_t end = same ? i + 1 : f2.n;
    for (std::int64_t b0 = 0; b0 < end; b0 += chunk) {
      const std::int64_t b1 = std::min(end, b0 + chunk);
      const Tensor rows = pixel_pair_rows(layer, f1, i, f2, b0, b1, trace);  // [count(, m, m)]
      out.select(0, i).slice(0, b0, b1).copy_(rows);
      if (same && trace) out.select(1, i).slice(0, b0, b1).copy_(rows);
    }
  }
  if (same && !trace) mirror_lower_blocks(out);
  return out;
}

// U [m, C] and V [n, C, L] with d[i, a, c, :] = U[a, c] V[i, c, :] for the cotangents of both
// blocks (Note [Channel-factored cotangents]); nullopt when they do not factor.
struct ChannelFactors {
  Tensor u, v1, v2;
};

std::optional<ChannelFactors> channel_factors(const ConvFactors& f1, const ConvFactors& f2, bool same) {
  const std::int64_t m = f1.m, c_out = f1.c_out, l = f1.pixels;
  if (m < 2) return std::nullopt;
  const Tensor d1 = f1.d.contiguous(), d2 = f2.d.contiguous();
  const DType dtype = d1.dtype();
  ChannelFactors out{zeros({m, c_out}, DType::f64), Tensor::empty({f1.n, c_out, l}, dtype),
                     same ? Tensor() : Tensor::empty({f2.n, c_out, l}, dtype)};
  bool factored = true;
  visit_float_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* blocks[2] = {d1.data<T>(), d2.data<T>()};
    const std::int64_t rows[2] = {f1.n, f2.n};
    T* vs[2] = {out.v1.data<T>(), same ? nullptr : out.v2.data<T>()};
    double* u = out.u.data<double>();
    const auto at = [&](int b, std::int64_t i, std::int64_t a, std::int64_t c) {
      return blocks[b] + ((i * m + a) * c_out + c) * l;
    };
    for (std::int64_t c = 0; c < c_out && factored; ++c) {
      // The reference output: the largest cotangent entry of the channel over both blocks.
      double top = 0.0;
      std::int64_t ref_a = 0, ref_i = 0, ref_p = 0;
      int ref_b = 0;
      for (int b = 0; b < (same ? 1 : 2); ++b)
        for (std::int64_t i = 0; i < rows[b]; ++i)
          for (std::int64_t a = 0; a < m; ++a)
            for (std::int64_t p = 0; p < l; ++p)
              if (const double v = std::abs(static_cast<double>(at(b, i, a, c)[p])); v > top) {
                top = v;
                ref_a = a, ref_i = i, ref_p = p, ref_b = b;
              }
      const double pivot = static_cast<double>(at(ref_b, ref_i, ref_a, c)[ref_p]);
      for (std::int64_t a = 0; a < m; ++a)
        u[a * c_out + c] = top == 0.0 ? 0.0 : static_cast<double>(at(ref_b, ref_i, a, c)[ref_p]) / pivot;
      const double tolerance = 1e-13 * top;
      for (int b = 0; b < (same ? 1 : 2) && factored; ++b)
        for (std::int64_t i = 0; i < rows[b] && factored; ++i) {
          const T* ref = at(b, i, ref_a, c);
          std::copy(ref, ref + l, vs[b] + (i * c_out + c) * l);
          for (std::int64_t a = 0; a < m && factored; ++a) {
            const T* row = at(b, i, a, c);
            for (std::int64_t p = 0; p < l; ++p)
              if (std::abs(static_cast<double>(row[p]) - u[a * c_out + c] * static_cast<double>(ref[p])) > tolerance) {
                factored = false;
                break;
              }
          }
        }
    }
  });
  if (!factored) return std::nullopt;
  out.u = out.u.to(dtype);
  return out;
}

// Per-channel features G = (s_w V P^T, s_b V 1): [n, C, K (+ 1)].
Tensor channel_features(const Conv2d& layer, const Tensor& v, const Tensor& patches) {
  Tensor g = matmul(v, patches.transpose(1, 2)) * layer.weight_scale();
  if (layer.options().bias) g = concat({g, sum(v, {2}, true) * layer.bias_scale()}, 2);
  return g;
}

Tensor by_channel_factors(const Conv2d& layer, const ConvFactors& f1, const ConvFactors& f2,
                          const ChannelFactors& cf, bool same, bool trace) {
  const std::int64_t c_out = f1.c_out, m = f1.m, n1 = f1.n, n2 = f2.n;
  const Tensor g1 = channel_features(layer, cf.v1, f1.patches).permute({1, 0, 2}).contiguous();  // [C, n1, W]
  const Tensor g2 = same ? g1 : channel_features(layer, cf.v2, f2.patches).permute({1, 0, 2}).contiguous();
  Tensor h = Tensor::empty({c_out, n1, n2}, g1.dtype());
  for (std::int64_t c = 0; c < c_out; ++c) {
    check_interrupt();
    h.select(0, c).copy_(same ? gram(g1.select(0, c)) : matmul(g1.select(0, c), g2.select(0, c).t()));
  }
  const Tensor hf = h.reshape({c_out, n1 * n2});
  if (trace) {
    Tensor out = matmul(sum(square(cf.u), {0}, true), hf).reshape({n1, n2});
    return same ? (out + out.t()) * 0.5 : out;
  }
  const Tensor uu = (cf.u.unsqueeze(1) * cf.u.unsqueeze(0)).reshape({m * m, c_out});  // [(a, b), c]
  const Tensor out = matmul(hf.t(), uu.t()).reshape({n1, n2, m, m});
  if (same) mirror_lower_blocks(out);
  return out;
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

Tensor Conv2d::cotangent_kernel(const Tensor& a1, const Tensor& d1, const Tensor& a2, const Tensor& d2, bool same,
                                bool trace, std::int64_t max_bytes) const {
  const ConvFactors f1 = factors(*this, a1, d1);
  const ConvFactors f2 = same ? f1 : factors(*this, a2, d2);
  THETA_CHECK(f2.m == f1.m, ShapeError, describe(), ": cotangent counts differ: ", shape_str(d1.shape()), " and ",
              shape_str(d2.shape()));
  if (ntk_route == ConvNtkRoute::automatic) {
    const std::int64_t width = f1.c_out * (f1.taps + 1);
    if ((f1.n + f2.n) * width * 8 + f1.c_out * f1.n * f2.n * 8 <= max_bytes)
      if (const auto cf = channel_factors(f1, f2, same)) return by_channel_factors(*this, f1, f2, *cf, same, trace);
  }
  const bool use_features = ntk_route == ConvNtkRoute::weight_gradients ||
                            (ntk_route == ConvNtkRoute::automatic && features_cheaper(f1, f2.n, trace));
  return use_features ? by_features(*this, f1, f2, same, trace, max_bytes)
                      : by_pixel_pairs(*this, f1, f2, same, trace, max_bytes);
}

Tensor Conv2d::cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t max_bytes) const {
  const ConvFactors f = factors(*this, a, d);
  Tensor out = Tensor::empty({f.n, f.m, f.m}, d.dtype());
  if (ntk_route == ConvNtkRoute::pixel_pairs) {
    for (std::int64_t i = 0; i < f.n; ++i) out.select(0, i).copy_(pixel_pair_rows(*this, f, i, f, i, i + 1, false).select(0, 0));
    return out;
  }
  const std::int64_t chunk = chunk_rows(max_bytes, f.m * feature_width(*this, f) * 8, f.n);
  for (std::int64_t a0 = 0; a0 < f.n; a0 += chunk) {
    check_interrupt();
    const std::int64_t a1 = std::min(f.n, a0 + chunk);
    const Tensor g = features(*this, f, a0, a1);  // [count, m, width]
    out.slice(0, a0, a1).copy_(matmul(g, g.transpose(1, 2)));
  }
  return out;
}

std::vector<Tensor> Conv2d::per_sample_gradients(const Tensor& a, const Tensor& d) const {
  const ConvFactors f = factors(*this, a, d.unsqueeze(1));
  const Tensor dm = f.d.reshape({f.n, f.c_out, f.pixels});
  std::vector<Tensor> out{(matmul(dm, f.patches.transpose(1, 2)) * weight_scale()).reshape({f.n, out_, in_, kernel_, kernel_})};
  if (options_.bias) out.push_back(sum(dm, {2}) * bias_scale());
  return out;
}

}  // namespace theta::nn
