// The pieces of Conv2d's structured-Jacobian rule shared by its NTK routes and its pullback:
// checked cotangents and their channel factors.

#include "nn/conv_factors.hpp"

#include <algorithm>
#include <cmath>

#include "tensor/ops.hpp"

namespace theta::nn::detail {

namespace {

// The factors of one block's cotangents, given or found, with V as [n, C, L].
std::optional<Cotangents> block_channel_factors(const Cotangents& d) {
  if (d.count() < 2) return std::nullopt;
  std::optional<Cotangents> c = d.factored() ? d : Cotangents::find_channel_factors(d.dense());
  if (!c) return std::nullopt;
  const Tensor& v = c->v();
  return Cotangents::by_channel(c->u(), v.reshape({v.size(0), v.size(1), -1}));
}

}  // namespace

std::int64_t output_size(const Conv2d& layer, std::int64_t size) {
  const ConvOptions& o = layer.options();
  return (size + 2 * o.padding - o.dilation * (layer.kernel_size() - 1) - 1) / o.stride + 1;
}

void check_cotangents(const Conv2d& layer, const Tensor& a, const Cotangents& d) {
  const Shape s = d.shape();
  THETA_CHECK(a.dim() == 4 && a.size(1) == layer.in_channels() && s.size() == 5 && s[0] == a.size(0) &&
                  s[2] == layer.out_channels() && s[3] == output_size(layer, a.size(2)) &&
                  s[4] == output_size(layer, a.size(3)),
              ShapeError, layer.describe(), ": cotangents ", shape_str(s), " do not match the output of input ",
              shape_str(a.shape()));
}

ConvFactors cotangent_factors(const Conv2d& layer, const Tensor& a, const Tensor& d) {
  check_cotangents(layer, a, d);
  ConvFactors f;
  f.n = a.size(0);
  f.m = d.size(1);
  f.c_out = layer.out_channels();
  f.pixels = d.size(3) * d.size(4);
  f.d = d.contiguous().reshape({f.n, f.m, f.c_out, f.pixels});
  return f;
}

// Both blocks' factors over one U: block 2's are rescaled per channel, U2[:, c] = lambda_c U1[:, c]
// and V2[c] <- lambda_c V2[c] (the blocks may have normalised U at different outputs). A channel
// that is zero in block 1 takes block 2's column. nullopt when the columns are not proportional to
// 1e-13 of their size, or either block does not factor.
std::optional<ChannelFactors> channel_factors(const Cotangents& d1, const Cotangents& d2, bool same) {
  const auto c1 = block_channel_factors(d1);
  if (!c1) return std::nullopt;
  if (same) return ChannelFactors{c1->u(), c1->v(), c1->v()};
  const auto c2 = block_channel_factors(d2);
  if (!c2) return std::nullopt;
  const std::int64_t m = c1->u().size(0), c_out = c1->u().size(1);
  if (c2->u().shape() != c1->u().shape()) return std::nullopt;
  const Tensor u1 = c1->u().to(DType::f64).contiguous(), u2 = c2->u().to(DType::f64).contiguous();
  Tensor u = u1.clone(), scale1 = ones({c_out}, DType::f64), scale2 = ones({c_out}, DType::f64);
  const double *p1 = u1.data<double>(), *p2 = u2.data<double>();
  double* pu = u.data<double>();
  for (std::int64_t c = 0; c < c_out; ++c) {
    std::int64_t top = 0;
    double size2 = 0.0;
    for (std::int64_t a = 0; a < m; ++a) {
      if (std::abs(p1[a * c_out + c]) > std::abs(p1[top * c_out + c])) top = a;
      size2 = std::max(size2, std::abs(p2[a * c_out + c]));
    }
    if (p1[top * c_out + c] == 0.0) {  // block 1 is zero in this channel: block 2's column
      scale1.data<double>()[c] = 0.0;
      for (std::int64_t a = 0; a < m; ++a) pu[a * c_out + c] = p2[a * c_out + c];
      continue;
    }
    const double lambda = p2[top * c_out + c] / p1[top * c_out + c];
    for (std::int64_t a = 0; a < m; ++a)
      if (std::abs(p2[a * c_out + c] - lambda * p1[a * c_out + c]) > 1e-13 * size2) return std::nullopt;
    scale2.data<double>()[c] = lambda;
  }
  const DType dtype = c1->v().dtype();
  const auto rescaled = [&](const Tensor& v, const Tensor& scale) { return v * scale.to(dtype).reshape({1, c_out, 1}); };
  return ChannelFactors{u.to(dtype), rescaled(c1->v(), scale1), rescaled(c2->v(), scale2)};
}

}  // namespace theta::nn::detail
