#include "nn/layers.hpp"

#include "nn/layer_support.hpp"

#include <cmath>
#include <sstream>

#include "tensor/ops.hpp"

namespace theta::nn {

namespace detail {
// Note [Layer input dtypes]
// A layer's parameters and buffers fix its dtype. An input of another dtype would fail deep
// inside an op, under that op's name ("matmul: dtype mismatch"), which the user never called;
// each layer checks it first and names itself, both dtypes and the two ways out.
void check_input_dtype(const Module& layer, const Var& x, DType dtype) {
  if (x.dtype() == dtype) return;
  const char* convert = dtype == DType::f32 ? "x.to(DType::f32)" : "x.to(DType::f64)";
  THETA_CHECK(is_floating(x.dtype()), DTypeError, layer.describe(), ": input is ", dtype_name(x.dtype()), " ",
              shape_str(x.shape()), " but the layer's parameters are ", dtype_name(dtype), ": convert the input (",
              convert, ")");
  THETA_THROW(DTypeError, layer.describe(), ": input is ", dtype_name(x.dtype()), " ", shape_str(x.shape()),
              " but the layer's parameters are ", dtype_name(dtype), ": convert the input (", convert,
              ") or build the layer with dtype ", dtype_name(x.dtype()));
}

Var batch_norm(const Var& x, const std::vector<std::int64_t>& axes, const Shape& param_shape,
               const BatchNormState& state) {
  Var normalized;
  const Shape stat_shape{shape_numel(param_shape)};
  if (state.training) {
    std::int64_t count = 1;
    for (const std::int64_t a : axes) count *= x.size(a);
    THETA_CHECK(count > 1, ShapeError, state.layer, ": training needs more than one value per channel in a batch, got ",
                shape_str(x.shape()));
    const Var mu = autograd::mean(x, axes, true);
    const Var centered = x - mu;
    const Var variance = autograd::mean(autograd::square(centered), axes, true);
    normalized = centered * autograd::rsqrt(variance + state.eps);
    // Running estimates use the unbiased variance, like PyTorch.
    const double m = state.momentum;
    const Tensor batch_var =
        variance.value().reshape(stat_shape) * (static_cast<double>(count) / static_cast<double>(count - 1));
    state.running_mean.copy_(theta::add(state.running_mean * (1.0 - m), mu.value().reshape(stat_shape) * m));
    state.running_var.copy_(theta::add(state.running_var * (1.0 - m), batch_var * m));
  } else {
    normalized = (x - Var(state.running_mean.reshape(param_shape))) *
                 Var(theta::rsqrt(state.running_var.reshape(param_shape) + state.eps));
  }
  if (!state.weight.defined()) return normalized;
  return normalized * autograd::reshape(state.weight, param_shape) + autograd::reshape(state.bias, param_shape);
}
}  // namespace detail

using detail::check_input_dtype;

// ---- Linear ---------------------------------------------------------------------------------

Linear::Linear(std::int64_t in_features, std::int64_t out_features, Rng& rng, LinearOptions options)
    : in_(in_features), out_(out_features), options_(options) {
  THETA_CHECK(in_features > 0 && out_features > 0, ShapeError, "Linear: sizes must be positive, got ",
              in_features, " -> ", out_features);
  THETA_CHECK(is_floating(options.dtype), DTypeError, "Linear: dtype must be floating");
  if (options.parameterization == Parameterization::ntk) {
    register_parameter("weight", rng.normal({out_, in_}, 0.0, 1.0, options.dtype));
    if (options.bias) register_parameter("bias", rng.normal({out_}, 0.0, 1.0, options.dtype));
  } else {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
    register_parameter("weight", rng.uniform({out_, in_}, -bound, bound, options.dtype));
    if (options.bias) register_parameter("bias", rng.uniform({out_}, -bound, bound, options.dtype));
  }
}

double Linear::weight_scale() const {
  return options_.parameterization == Parameterization::ntk
             ? options_.sigma_w / std::sqrt(static_cast<double>(in_))
             : 1.0;
}

double Linear::bias_scale() const {
  return options_.parameterization == Parameterization::ntk ? options_.sigma_b : 1.0;
}

Var Linear::forward(const Var& x) {
  THETA_CHECK(x.dim() >= 1 && x.size(-1) == in_, ShapeError, "Linear(", in_, " -> ", out_,
              "): input ", shape_str(x.shape()), " does not end in ", in_);
  check_input_dtype(*this, x, options_.dtype);
  Var y = autograd::linear(x, weight());
  if (options_.parameterization == Parameterization::ntk) y = y * weight_scale();
  if (options_.bias) {
    const Var b = options_.parameterization == Parameterization::ntk ? bias() * bias_scale() : bias();
    y = y + b;
  }
  return y;
}

Tensor Linear::input_kernel(const Tensor& a1, const Tensor& a2) const {
  const bool same = a1.storage() == a2.storage() && a1.offset() == a2.offset() && a1.shape() == a2.shape() &&
                    a1.strides() == a2.strides();
  const double sw = weight_scale();
  Tensor k = (same ? gram(a1) : matmul(a1, a2.t())) * (sw * sw);
  if (options_.bias) k = k + bias_scale() * bias_scale();
  return k;
}

Tensor Linear::input_kernel_diagonal(const Tensor& a) const {
  const double sw = weight_scale();
  Tensor k = sum(square(a), {1}) * (sw * sw);
  if (options_.bias) k = k + bias_scale() * bias_scale();
  return k;
}

Tensor Linear::input_cotangents(const Tensor& a, const Cotangents& cotangents) const {
  const Tensor d = cotangents.dense();
  THETA_CHECK(a.dim() == 2 && a.size(1) == in_ && d.dim() == 3 && d.size(0) == a.size(0) && d.size(2) == out_,
              ShapeError, describe(), ": cotangents ", shape_str(d.shape()), " do not match the output of input ",
              shape_str(a.shape()));
  const Tensor& w = weight().value();
  return matmul(d, weight_scale() == 1.0 ? w : w * weight_scale());  // [n, m, out] @ [out, in]
}

std::vector<Tensor> Linear::per_sample_gradients(const Tensor& a, const Tensor& d) const {
  std::vector<Tensor> out{matmul(d.unsqueeze(2), a.unsqueeze(1)) * weight_scale()};  // [n, out, in]
  if (options_.bias) out.push_back(d * bias_scale());                                 // [n, out]
  return out;
}

std::string Linear::describe() const {
  std::ostringstream out;
  out << "Linear(" << in_ << " -> " << out_ << (options_.bias ? ", bias" : ", no bias")
      << (options_.parameterization == Parameterization::ntk ? ", ntk" : "") << ")";
  return out.str();
}

// ---- Sequential -----------------------------------------------------------------------------

Sequential& Sequential::add(std::shared_ptr<Module> layer) {
  register_module("layers." + std::to_string(child_count()), std::move(layer));
  return *this;
}

Var Sequential::forward(const Var& x) { return forward_prefix(x, child_count()); }

Var Sequential::forward_prefix(const Var& x, std::size_t count) {
  THETA_CHECK(count <= child_count(), IndexError, "Sequential: prefix of ", count,
              " layers requested from ", child_count());
  Var h = x;
  for (std::size_t i = 0; i < count; ++i) h = child(i)(h);
  return h;
}

std::string Sequential::describe() const {
  std::ostringstream out;
  out << "Sequential(";
  for (std::size_t i = 0; i < child_count(); ++i) out << (i ? ", " : "") << child(i).describe();
  out << ")";
  return out.str();
}

std::shared_ptr<Sequential> mlp(const std::vector<std::int64_t>& widths, Rng& rng, MlpOptions options) {
  THETA_CHECK(widths.size() >= 2, std::invalid_argument, "mlp: need at least input and output widths, got ",
              widths.size());
  auto net = std::make_shared<Sequential>();
  const LinearOptions linear{.bias = options.bias,
                             .parameterization = options.parameterization,
                             .sigma_w = options.sigma_w,
                             .sigma_b = options.sigma_b,
                             .dtype = options.dtype};
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    net->add(std::make_shared<Linear>(widths[i], widths[i + 1], rng, linear));
    if (i + 2 < widths.size()) net->add(std::make_shared<Activation>(options.activation));
  }
  return net;
}

// ---- normalisation --------------------------------------------------------------------------

template <class Derived>
BatchNormBase<Derived>::BatchNormBase(const char* kind, std::int64_t channels, NormOptions options)
    : kind_(kind), channels_(channels), options_(options) {
  THETA_CHECK(channels > 0, ShapeError, kind, ": channels must be positive, got ", channels);
  THETA_CHECK(options.eps >= 0, std::invalid_argument, kind, ": eps must be >= 0, got ", options.eps);
  THETA_CHECK(options.momentum >= 0 && options.momentum <= 1, std::invalid_argument, kind,
              ": momentum must be in [0, 1], got ", options.momentum);
  if (options.affine) {
    this->register_parameter("weight", ones({channels}, options.dtype));
    this->register_parameter("bias", zeros({channels}, options.dtype));
  }
  this->register_buffer("running_mean", zeros({channels}, options.dtype));
  this->register_buffer("running_var", ones({channels}, options.dtype));
}

template <class Derived>
Var BatchNormBase<Derived>::normalize(const Var& x, const std::vector<std::int64_t>& axes, const Shape& param_shape) {
  check_input_dtype(*this, x, options_.dtype);
  return detail::batch_norm(x, axes, param_shape,
                            {.layer = describe(),
                             .training = this->training(),
                             .running_mean = this->buffer(0),
                             .running_var = this->buffer(1),
                             .weight = options_.affine ? this->param(0) : Var(),
                             .bias = options_.affine ? this->param(1) : Var(),
                             .eps = options_.eps,
                             .momentum = options_.momentum});
}

template <class Derived> std::string BatchNormBase<Derived>::describe() const {
  std::ostringstream out;
  out << kind_ << "(" << channels_ << ", eps=" << options_.eps << ")";
  return out.str();
}

template class BatchNormBase<BatchNorm1d>;
template class BatchNormBase<BatchNorm2d>;

BatchNorm1d::BatchNorm1d(std::int64_t features, NormOptions options)
    : BatchNormBase("BatchNorm1d", features, options) {}

Var BatchNorm1d::forward(const Var& x) {
  THETA_CHECK(x.dim() == 2 && x.size(1) == channels(), ShapeError, "BatchNorm1d(", channels(),
              "): expected input [n, ", channels(), "], got ", shape_str(x.shape()));
  return normalize(x, {0}, {channels()});
}

BatchNorm2d::BatchNorm2d(std::int64_t channels, NormOptions options)
    : BatchNormBase("BatchNorm2d", channels, options) {}

Var BatchNorm2d::forward(const Var& x) {
  THETA_CHECK(x.dim() == 4 && x.size(1) == channels(), ShapeError, describe(), ": expected input [n, ", channels(),
              ", H, W], got ", shape_str(x.shape()));
  return normalize(x, {0, 2, 3}, {channels(), 1, 1});
}

LayerNorm::LayerNorm(std::int64_t features, NormOptions options) : features_(features), options_(options) {
  THETA_CHECK(features > 0, ShapeError, "LayerNorm: features must be positive, got ", features);
  if (options.affine) {
    register_parameter("weight", ones({features}, options.dtype));
    register_parameter("bias", zeros({features}, options.dtype));
  }
}

Var LayerNorm::forward(const Var& x) {
  THETA_CHECK(x.dim() >= 1 && x.size(-1) == features_, ShapeError, "LayerNorm(", features_,
              "): input ", shape_str(x.shape()), " does not end in ", features_);
  if (options_.affine) check_input_dtype(*this, x, options_.dtype);
  const Var centered = x - autograd::mean(x, {-1}, true);
  const Var variance = autograd::mean(autograd::square(centered), {-1}, true);
  const Var normalized = centered * autograd::rsqrt(variance + options_.eps);
  if (!options_.affine) return normalized;
  return normalized * param(0) + param(1);
}

std::string LayerNorm::describe() const {
  std::ostringstream out;
  out << "LayerNorm(" << features_ << ", eps=" << options_.eps << ")";
  return out.str();
}

}  // namespace theta::nn
