#pragma once
// Directions in parameter space for loss-landscape plots (Li, Xu, Taylor, Studer and Goldstein
// 2018, "Visualizing the Loss Landscape of Neural Nets"). A direction is a flat float64 vector
// [P] over a module's parameters in named_parameters() order, the layout of parameter_values and
// flatten_tensors in theory/hessian.hpp, so a direction can also be fed to the Hessian operator.
//
// Filter normalisation (Note [Filters] in landscape_directions.cpp): every filter j of a weight
// (a slice along its first axis: a row of a Linear weight [out, in], an output channel of a
// Conv2d weight [C_out, C_in, k, k]) is rescaled to the norm of the same filter of the origin,
// d_j <- d_j |theta_j| / |d_j|. Parameters of rank <= 1 (biases, BatchNorm and LayerNorm scales
// and shifts) are zeroed by default. The resulting slice does not change when a layer followed
// by a scale-invariant normalisation is rescaled, which is what makes plots of different
// networks comparable.

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "tensor/rng.hpp"

namespace theta::theory {

/// A module's parameter values flattened into one float64 vector [P], in named_parameters()
/// order (flatten_tensors(parameter_values(model))). Throws std::invalid_argument for a model
/// without parameters or with a parameter registered under two names (a shared module).
Tensor parameter_vector(const nn::Module& model);

/// How a direction is scaled before use.
enum class DirectionNorm {
  filter,  ///< each filter to the norm of the origin's filter (Li et al. 2018)
  none,    ///< left as drawn
};

struct FilterOptions {
  /// Zero the parameters of rank <= 1 (biases and normalisation parameters), as Li et al. do.
  /// When false, each such parameter is normalised as one filter: d <- d |theta| / |d|.
  bool zero_bias_and_norm = true;
  /// Name prefixes (as in named_parameters()) of parameters the direction leaves at zero, so the
  /// slice keeps them fixed: {"layers.0."} holds the first layer of a Sequential. Each prefix must
  /// match at least one parameter.
  std::vector<std::string> frozen{};
};

/// The filter-normalised copy of `direction` at `origin` (Note [Filters]): for each parameter of
/// rank >= 2 and each index j of its first axis, d[j, ...] * |origin[j, ...]| / |d[j, ...]| (a
/// zero filter of d stays zero); parameters of rank <= 1 and frozen ones as options say.
/// direction:[P], origin:[P] with P = model.parameter_count() -> [P] float64.
/// Throws ShapeError naming the sizes when a vector does not match the model, std::invalid_argument
/// for NaN or Inf or a frozen prefix that names no parameter.
Tensor filter_normalize(const nn::Module& model, const Tensor& direction, const Tensor& origin,
                        const FilterOptions& options = {});

struct DirectionOptions {
  DirectionNorm normalization = DirectionNorm::filter;
  FilterOptions filter{};
  /// The point the direction is normalised at, [P]; undefined means the model's own parameters.
  Tensor origin{};
};

/// A Gaussian random direction (every element N(0, 1), drawn from `rng` in parameter order),
/// normalised as options say. -> [P] float64. With DirectionNorm::none the zeroing of biases is
/// not applied either: the direction is exactly the draw. Throws as filter_normalize does.
Tensor random_direction(const nn::Module& model, Rng& rng, const DirectionOptions& options = {});

}  // namespace theta::theory
