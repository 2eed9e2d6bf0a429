#include "nn/cotangents.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/ops.hpp"

namespace theta::nn {

Cotangents::Cotangents(Tensor dense) : dense_(std::move(dense)) {}

Cotangents Cotangents::by_channel(Tensor u, Tensor v) {
  THETA_CHECK(u.defined() && v.defined() && u.dim() == 2 && v.dim() >= 2 && u.size(1) == v.size(1), ShapeError,
              "Cotangents::by_channel: expected u [m, C] and v [n, C, ...], got ",
              u.defined() ? shape_str(u.shape()) : "undefined", " and ", v.defined() ? shape_str(v.shape()) : "undefined");
  THETA_CHECK(u.dtype() == v.dtype() && is_floating(u.dtype()), DTypeError,
              "Cotangents::by_channel: u and v must share one floating dtype, got ", dtype_name(u.dtype()), " and ",
              dtype_name(v.dtype()));
  Cotangents c;
  c.u_ = std::move(u);
  c.v_ = std::move(v);
  return c;
}

Shape Cotangents::shape() const {
  THETA_CHECK(defined(), std::invalid_argument, "Cotangents: undefined");
  if (!factored()) return dense_.shape();
  Shape s{v_.size(0), u_.size(0)};
  s.insert(s.end(), v_.shape().begin() + 1, v_.shape().end());
  return s;
}

Tensor Cotangents::dense() const {
  if (!factored()) return dense_;
  // u[a, c] broadcast over samples and the trailing axes, times v[i, c, ...] broadcast over slots.
  Shape u_shape{1, u_.size(0), u_.size(1)};
  u_shape.resize(static_cast<std::size_t>(v_.dim()) + 1, 1);
  return u_.reshape(u_shape) * v_.unsqueeze(1);
}

Cotangents Cotangents::slots(std::int64_t begin, std::int64_t end) const {
  if (!factored()) return Cotangents(dense_.slice(1, begin, end));
  return by_channel(u_.slice(0, begin, end), v_);
}

namespace {

// Raises top to the largest |x[p]| and worst to the largest |x[p] - u ref[p]| over a row, with
// independent accumulators per lane (a single running maximum is a chain of dependent
// operations). `poison` collects x[p] * 0: it stays 0 for finite rows and becomes NaN for good at
// the first Inf or NaN, which the maxima would skip.
template <class T>
void row_deviation(const T* x, const T* ref, double u, std::int64_t l, double& top, double& worst, double& poison) {
  constexpr std::int64_t kLanes = 8;
  double tops[kLanes] = {}, worsts[kLanes] = {}, poisons[kLanes] = {};
  std::int64_t p = 0;
  for (; p + kLanes <= l; p += kLanes)
    for (std::int64_t j = 0; j < kLanes; ++j) {
      const double v = static_cast<double>(x[p + j]);
      const double size = std::abs(v), deviation = std::abs(v - u * static_cast<double>(ref[p + j]));
      tops[j] = tops[j] < size ? size : tops[j];
      worsts[j] = worsts[j] < deviation ? deviation : worsts[j];
      poisons[j] += v * 0.0;
    }
  for (; p < l; ++p) {
    const double v = static_cast<double>(x[p]);
    tops[0] = std::max(tops[0], std::abs(v));
    worsts[0] = std::max(worsts[0], std::abs(v - u * static_cast<double>(ref[p])));
    poisons[0] += v * 0.0;
  }
  for (std::int64_t j = 0; j < kLanes; ++j)
    top = std::max(top, tops[j]), worst = std::max(worst, worsts[j]), poison += poisons[j];
}

// Per channel: the output whose cotangent is v (fixed at the first sample where the channel is not
// all zero), the largest entry seen, and the largest deviation from u v.
struct ChannelCheck {
  bool pivoted = false;
  std::int64_t output = 0;
  double top = 0.0, worst = 0.0, poison = 0.0;
};

}  // namespace

std::optional<Cotangents> Cotangents::find_channel_factors(const Tensor& d_in) {
  if (!d_in.defined() || d_in.dim() < 3 || d_in.size(1) < 2 || !is_floating(d_in.dtype())) return std::nullopt;
  const Tensor d = d_in.contiguous();
  const std::int64_t n = d.size(0), m = d.size(1), channels = d.size(2), l = d.numel() / std::max<std::int64_t>(1, n * m * channels);
  Shape v_shape = d.shape();
  v_shape.erase(v_shape.begin() + 1);
  Tensor u = zeros({m, channels}, DType::f64);
  Tensor v = Tensor::empty(v_shape, d.dtype());
  std::vector<ChannelCheck> checks(static_cast<std::size_t>(channels));
  double* up = u.data<double>();
  bool factored = true;
  visit_float_dtype(d.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* data = d.data<T>();
    T* vp = v.data<T>();
    const auto at = [&](std::int64_t i, std::int64_t a, std::int64_t c) { return data + ((i * m + a) * channels + c) * l; };
    // In memory order: the cotangents are large, passes dominate.
    for (std::int64_t i = 0; i < n && factored; ++i)
      for (std::int64_t c = 0; c < channels; ++c) {
        ChannelCheck& ch = checks[static_cast<std::size_t>(c)];
        if (!ch.pivoted) {  // u[:, c]: the ratios at this sample's largest entry of the channel
          double best = 0.0;
          std::int64_t best_a = 0, best_p = 0;
          for (std::int64_t a = 0; a < m; ++a)
            for (std::int64_t p = 0; p < l; ++p)
              if (const double x = std::abs(static_cast<double>(at(i, a, c)[p])); x > best) best = x, best_a = a, best_p = p;
          if (best > 0.0) {
            ch.pivoted = true;
            ch.output = best_a;
            const double pivot = static_cast<double>(at(i, best_a, c)[best_p]);
            for (std::int64_t a = 0; a < m; ++a) up[a * channels + c] = static_cast<double>(at(i, a, c)[best_p]) / pivot;
          }
        }
        const T* ref = at(i, ch.output, c);
        std::copy(ref, ref + l, vp + (i * channels + c) * l);
        for (std::int64_t a = 0; a < m; ++a) row_deviation(at(i, a, c), ref, up[a * channels + c], l, ch.top, ch.worst, ch.poison);
        // Far past rounding: stop early (should a larger entry come later, this "no" only costs
        // speed).
        if (ch.worst > 1e-10 * ch.top || ch.poison != 0.0) factored = false;
      }
  });
  for (const ChannelCheck& ch : checks) factored = factored && ch.worst <= 1e-13 * ch.top && ch.poison == 0.0;
  if (!factored) return std::nullopt;
  return by_channel(u.to(d.dtype()), v);
}

std::optional<Cotangents::CommonU> Cotangents::common_u(const std::vector<Cotangents>& blocks) {
  THETA_CHECK(!blocks.empty(), std::invalid_argument, "Cotangents::common_u: no blocks");
  for (const Cotangents& b : blocks)
    if (!b.factored() || b.u().shape() != blocks[0].u().shape() || b.dtype() != blocks[0].dtype()) return std::nullopt;
  const std::int64_t m = blocks[0].u().size(0), channels = blocks[0].u().size(1);
  std::vector<Tensor> us;
  for (const Cotangents& b : blocks) us.push_back(b.u().to(DType::f64).contiguous());
  Tensor u = zeros({m, channels}, DType::f64);
  CommonU out;
  for (std::size_t b = 0; b < blocks.size(); ++b) out.scales.push_back(zeros({channels}, DType::f64));
  double* pu = u.data<double>();
  for (std::int64_t c = 0; c < channels; ++c) {
    const double* ref = nullptr;  // the first nonzero column
    std::int64_t top = 0;
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      const double* col = us[b].data<double>() + c;
      double size = 0.0;
      std::int64_t largest = 0;
      for (std::int64_t a = 0; a < m; ++a)
        if (std::abs(col[a * channels]) > size) size = std::abs(col[a * channels]), largest = a;
      if (size == 0.0) continue;  // scale 0: the block's cotangents are zero in this channel
      if (ref == nullptr) ref = col, top = largest;
      const double lambda = col[top * channels] / ref[top * channels];
      for (std::int64_t a = 0; a < m; ++a)
        if (!(std::abs(col[a * channels] - lambda * ref[a * channels]) <= 1e-13 * size)) return std::nullopt;
      out.scales[b].data<double>()[c] = lambda;
    }
    if (ref != nullptr)
      for (std::int64_t a = 0; a < m; ++a) pu[a * channels + c] = ref[a * channels];
  }
  out.u = u.to(blocks[0].dtype());
  return out;
}

Tensor Cotangents::rescaled_v(const Cotangents& block, const Tensor& scale) {
  const Tensor& v = block.v();
  Shape scale_shape{1, v.size(1)};
  scale_shape.resize(static_cast<std::size_t>(v.dim()), 1);
  return v * scale.to(v.dtype()).reshape(scale_shape);
}

void CotangentRows::put(std::int64_t begin, const Cotangents& block) {
  if (block.factored() && !dense_.started()) {
    THETA_CHECK(blocks_.empty() || block.u().shape() == blocks_[0].u.shape(), ShapeError,
                "CotangentRows: a block with u ", shape_str(block.u().shape()), " after blocks with u ",
                shape_str(blocks_[0].u.shape()));
    v_.put(begin, block.v());
    blocks_.push_back({begin, block.rows(), block.u()});
    return;
  }
  if (v_.started()) to_dense();
  dense_.put(begin, block.dense());
}

Cotangents CotangentRows::take() {
  if (dense_.started()) return dense_.take();
  std::vector<Cotangents> views;
  for (const Block& b : blocks_) views.push_back(Cotangents::by_channel(b.u, rows_of(b)));
  const std::optional<Cotangents::CommonU> common = Cotangents::common_u(views);
  if (!common) {
    views.clear();
    to_dense();
    return dense_.take();
  }
  for (std::size_t b = 0; b < blocks_.size(); ++b)
    rows_of(blocks_[b]).copy_(Cotangents::rescaled_v(views[b], common->scales[b]));
  blocks_.clear();
  return Cotangents::by_channel(common->u, v_.take());
}

void CotangentRows::to_dense() {
  for (const Block& b : blocks_) dense_.put(b.begin, Cotangents::by_channel(b.u, rows_of(b)).dense());
  blocks_.clear();
  v_.take();
}

}  // namespace theta::nn
