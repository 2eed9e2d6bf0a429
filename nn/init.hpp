#pragma once
// Weight initialisation schemes, drawn from an explicit Rng. For a weight [out, in, ...],
// fan_in = in * receptive field and fan_out = out * receptive field.

#include "tensor/rng.hpp"

namespace theta::nn::init {

/// N(0, 1/fan_in).
Tensor lecun_normal(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// U(-sqrt(3/fan_in), sqrt(3/fan_in)).
Tensor lecun_uniform(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// N(0, 2/fan_in) (Kaiming, for ReLU).
Tensor he_normal(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// U(-sqrt(6/fan_in), sqrt(6/fan_in)).
Tensor he_uniform(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// N(0, 2/(fan_in + fan_out)) (Glorot).
Tensor xavier_normal(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// U(-sqrt(6/(fan_in + fan_out)), sqrt(6/(fan_in + fan_out))).
Tensor xavier_uniform(const Shape& shape, Rng& rng, DType dtype = DType::f64);
/// A (semi-)orthogonal [rows, cols] matrix times gain: orthonormal rows or columns, whichever
/// are fewer (Gram-Schmidt on a Gaussian matrix, in float64).
Tensor orthogonal(const Shape& shape, Rng& rng, double gain = 1.0, DType dtype = DType::f64);
/// All zeros.
Tensor zeros_init(const Shape& shape, DType dtype = DType::f64);
/// All `value`.
Tensor constant(const Shape& shape, double value, DType dtype = DType::f64);

/// fan_in and fan_out of a weight shape (throws for shapes of rank < 2... except 1-D: fan = size).
std::pair<double, double> fans(const Shape& shape);

}  // namespace theta::nn::init
