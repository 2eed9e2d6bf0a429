#include "theory/landscape_directions.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "tensor/ops.hpp"
#include "theory/checks.hpp"
#include "theory/hessian.hpp"

namespace theta::theory {

namespace {

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// Note [Filters]
// A filter is what one output unit of a layer owns: a row of a Linear weight [out, in], an output
// channel [C_in, k, k] of a Conv2d weight [C_out, C_in, k, k]; in both it is a slice along the
// first axis, so the rule is stated by rank, not by layer kind, and works for any module. If a
// layer feeds a scale-invariant normalisation (BatchNorm with eps = 0), only the direction of
// each unit's weights matters to the loss; scaling d_j to |theta_j| makes a step alpha d move each
// unit by the same relative amount whatever its scale, so L(c theta + alpha d(c theta)) =
// L(theta + alpha d(theta)) for a layer rescaled by c. Rank <= 1 parameters (biases and
// normalisation parameters) have no filters to speak of; by default they are zeroed, as in Li et
// al.'s own plots, so a slice moves the weights only.
Tensor normalized(const nn::Module& model, const Tensor& direction, const Tensor& origin, const FilterOptions& options,
                  const char* op) {
  const auto params = detail::unshared_parameters(model, op);
  const std::int64_t size = model.parameter_count();
  detail::require_parameter_vector(direction, size, op, "direction");
  detail::require_parameter_vector(origin, size, op, "origin");
  for (const auto& prefix : options.frozen) {
    const bool found =
        std::any_of(params.begin(), params.end(), [&](const auto& p) { return starts_with(p.first, prefix); });
    THETA_CHECK(found, std::invalid_argument, op, ": no parameter of ", model.describe(), " starts with '", prefix,
                "' (frozen)");
  }
  const Tensor out = direction.to(DType::f64).contiguous().clone();
  const Tensor theta = origin.to(DType::f64).contiguous();
  double* d = out.data<double>();
  const double* t = theta.data<double>();
  std::int64_t offset = 0;
  for (const auto& [name, p] : params) {
    const std::int64_t n = p.numel();
    const bool frozen = std::any_of(options.frozen.begin(), options.frozen.end(),
                                    [&](const std::string& prefix) { return starts_with(name, prefix); });
    if (frozen || (p.dim() <= 1 && options.zero_bias_and_norm)) {
      for (std::int64_t i = 0; i < n; ++i) d[offset + i] = 0.0;
    } else {
      const std::int64_t filters = p.dim() <= 1 ? 1 : p.size(0);
      const std::int64_t width = filters == 0 ? 0 : n / filters;
      for (std::int64_t j = 0; j < filters; ++j) {
        double* dj = d + offset + j * width;
        const double* tj = t + offset + j * width;
        double d_squares = 0.0, t_squares = 0.0;
        for (std::int64_t i = 0; i < width; ++i) {
          d_squares += dj[i] * dj[i];
          t_squares += tj[i] * tj[i];
        }
        const double scale = d_squares > 0.0 ? std::sqrt(t_squares) / std::sqrt(d_squares) : 0.0;
        for (std::int64_t i = 0; i < width; ++i) dj[i] *= scale;
      }
    }
    offset += n;
  }
  return out;
}

}  // namespace

Tensor parameter_vector(const nn::Module& model) {
  detail::unshared_parameters(model, "parameter_vector");
  return flatten_tensors(parameter_values(model));
}

Tensor filter_normalize(const nn::Module& model, const Tensor& direction, const Tensor& origin,
                        const FilterOptions& options) {
  return normalized(model, direction, origin, options, "filter_normalize");
}

Tensor random_direction(const nn::Module& model, Rng& rng, const DirectionOptions& options) {
  constexpr const char* op = "random_direction";
  detail::unshared_parameters(model, op);
  const Tensor draw = rng.normal({model.parameter_count()});
  if (options.normalization == DirectionNorm::none) return draw;
  const Tensor origin = options.origin.defined() ? options.origin : flatten_tensors(parameter_values(model));
  return normalized(model, draw, origin, options.filter, op);
}

}  // namespace theta::theory
