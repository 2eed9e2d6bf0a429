// The pieces of Conv2d's structured-Jacobian rule shared by its NTK routes and its pullback:
// checked cotangents and their channel factors.

#include "nn/conv_factors.hpp"

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

// Both blocks' factors over one U (Cotangents::common_u: the blocks may have normalised U at
// different outputs). nullopt when either block does not factor, or the columns are not
// proportional.
std::optional<ChannelFactors> channel_factors(const Cotangents& d1, const Cotangents& d2, bool same) {
  const auto c1 = block_channel_factors(d1);
  if (!c1) return std::nullopt;
  if (same) return ChannelFactors{c1->u(), c1->v(), c1->v()};
  const auto c2 = block_channel_factors(d2);
  if (!c2) return std::nullopt;
  const auto common = Cotangents::common_u({*c1, *c2});
  if (!common) return std::nullopt;
  return ChannelFactors{common->u, Cotangents::rescaled_v(*c1, common->scales[0]),
                        Cotangents::rescaled_v(*c2, common->scales[1])};
}

}  // namespace theta::nn::detail
