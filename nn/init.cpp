#include "nn/init.hpp"

#include <cmath>

#include "tensor/ops.hpp"

namespace theta::nn::init {

std::pair<double, double> fans(const Shape& shape) {
  THETA_CHECK(!shape.empty(), ShapeError, "init: a weight needs at least one dimension, got ", shape_str(shape));
  if (shape.size() == 1) return {static_cast<double>(shape[0]), static_cast<double>(shape[0])};
  double receptive = 1.0;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  return {static_cast<double>(shape[1]) * receptive, static_cast<double>(shape[0]) * receptive};
}

Tensor lecun_normal(const Shape& shape, Rng& rng, DType dtype) {
  return rng.normal(shape, 0.0, std::sqrt(1.0 / fans(shape).first), dtype);
}

Tensor lecun_uniform(const Shape& shape, Rng& rng, DType dtype) {
  const double a = std::sqrt(3.0 / fans(shape).first);
  return rng.uniform(shape, -a, a, dtype);
}

Tensor he_normal(const Shape& shape, Rng& rng, DType dtype) {
  return rng.normal(shape, 0.0, std::sqrt(2.0 / fans(shape).first), dtype);
}

Tensor he_uniform(const Shape& shape, Rng& rng, DType dtype) {
  const double a = std::sqrt(6.0 / fans(shape).first);
  return rng.uniform(shape, -a, a, dtype);
}

Tensor xavier_normal(const Shape& shape, Rng& rng, DType dtype) {
  const auto [fan_in, fan_out] = fans(shape);
  return rng.normal(shape, 0.0, std::sqrt(2.0 / (fan_in + fan_out)), dtype);
}

Tensor xavier_uniform(const Shape& shape, Rng& rng, DType dtype) {
  const auto [fan_in, fan_out] = fans(shape);
  const double a = std::sqrt(6.0 / (fan_in + fan_out));
  return rng.uniform(shape, -a, a, dtype);
}

Tensor orthogonal(const Shape& shape, Rng& rng, double gain, DType dtype) {
  THETA_CHECK(shape.size() == 2, ShapeError, "orthogonal: expected a 2-D shape, got ", shape_str(shape));
  const std::int64_t rows = shape[0], cols = shape[1];
  const bool tall = rows >= cols;
  // Orthonormalise the `k` short vectors of length `len` (columns of a tall matrix).
  const std::int64_t k = tall ? cols : rows, len = tall ? rows : cols;
  Tensor q = rng.normal({k, len});
  double* v = q.data<double>();
  for (std::int64_t i = 0; i < k; ++i) {
    for (int pass = 0; pass < 2; ++pass)  // twice is enough for full double precision
      for (std::int64_t j = 0; j < i; ++j) {
        double d = 0;
        for (std::int64_t e = 0; e < len; ++e) d += v[i * len + e] * v[j * len + e];
        for (std::int64_t e = 0; e < len; ++e) v[i * len + e] -= d * v[j * len + e];
      }
    double n = 0;
    for (std::int64_t e = 0; e < len; ++e) n += v[i * len + e] * v[i * len + e];
    n = std::sqrt(n);
    for (std::int64_t e = 0; e < len; ++e) v[i * len + e] /= n;
  }
  const Tensor out = tall ? q.t().contiguous() : q;
  return (out * gain).to(dtype);
}

Tensor zeros_init(const Shape& shape, DType dtype) { return zeros(shape, dtype); }

Tensor constant(const Shape& shape, double value, DType dtype) { return full(shape, value, dtype); }

}  // namespace theta::nn::init
