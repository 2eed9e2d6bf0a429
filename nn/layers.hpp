#pragma once
// Layers: Linear (standard and NTK parameterisation), Activation, Sequential, the MLP builder,
// BatchNorm1d, BatchNorm2d and LayerNorm.

#include <memory>
#include <string>
#include <vector>

#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/structured.hpp"
#include "tensor/rng.hpp"

namespace theta::nn {

enum class Parameterization {
  /// y = x W^T + b with PyTorch's default init: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  standard,
  /// y = sigma_w / sqrt(fan_in) x W^T + sigma_b b with W, b ~ N(0, 1) (Jacot et al. 2018).
  ntk,
};

struct LinearOptions {
  bool bias = true;
  Parameterization parameterization = Parameterization::standard;
  double sigma_w = 1.0;  // ntk only
  double sigma_b = 0.0;  // ntk only (0 keeps the bias out of the forward pass' scale)
  DType dtype = DType::f64;
};

/// Fully connected layer. weight: [out, in] (PyTorch layout), bias: [out]. x:[n, in] -> [n, out].
/// Its structured-Jacobian rule (Note [Structured Jacobians]): K_in(a, a') = s_w^2 <a, a'> + s_b^2.
class Linear : public Cloneable<Linear>, public FactoredLayer {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, Rng& rng, LinearOptions options = {});
  Var forward(const Var& x) override;
  std::string describe() const override;

  bool structured_input(const Var& input) const override { return input.dim() == 2; }
  Tensor input_kernel(const Tensor& a1, const Tensor& a2) const override;
  Tensor input_kernel_diagonal(const Tensor& a) const override;
  Tensor input_cotangents(const Tensor& a, const Cotangents& d) const override;
  std::vector<Tensor> per_sample_gradients(const Tensor& a, const Tensor& d) const override;

  const Var& weight() const { return param(0); }
  /// Undefined when the layer has no bias.
  Var bias() const { return options_.bias ? param(1) : Var(); }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  const LinearOptions& options() const { return options_; }
  /// The factor multiplying x W^T in forward (1 in standard parameterisation).
  double weight_scale() const;
  /// The factor multiplying b in forward (1 in standard parameterisation).
  double bias_scale() const;

 private:
  std::int64_t in_, out_;
  LinearOptions options_;
};

/// An elementwise activation as a module.
class Activation : public Cloneable<Activation> {
 public:
  explicit Activation(ActivationKind kind, double negative_slope = 0.01) : kind_(kind), slope_(negative_slope) {}
  Var forward(const Var& x) override { return activate(x, kind_, slope_); }
  std::string describe() const override { return activation_name(kind_); }
  ActivationKind kind() const { return kind_; }

 private:
  ActivationKind kind_;
  double slope_;
};

/// Applies its children in order; parameters are named "layers.<i>.<name>".
class Sequential : public Cloneable<Sequential> {
 public:
  Sequential() = default;
  /// Appends a layer (registered as "layers.<i>").
  Sequential& add(std::shared_ptr<Module> layer);
  Var forward(const Var& x) override;
  std::string describe() const override;
  std::size_t size() const { return child_count(); }
  Module& at(std::size_t i) const { return child(i); }
  /// Runs the first `count` layers only (for probing hidden representations).
  Var forward_prefix(const Var& x, std::size_t count);
};

struct MlpOptions {
  ActivationKind activation = ActivationKind::relu;
  bool bias = true;
  Parameterization parameterization = Parameterization::standard;
  double sigma_w = 1.0;
  double sigma_b = 0.0;
  DType dtype = DType::f64;
};

/// widths = {in, hidden..., out}: Linear layers with the activation between them (none after
/// the last). Layer i of the result is Linear at even positions: "layers.0.weight", ...
std::shared_ptr<Sequential> mlp(const std::vector<std::int64_t>& widths, Rng& rng, MlpOptions options = {});

struct NormOptions {
  double eps = 1e-5;      // may be 0: BatchNorm is then exactly invariant to scaling its input
  double momentum = 0.1;  // running statistics: r = (1 - momentum) r + momentum batch_stat
  bool affine = true;
  DType dtype = DType::f64;
};

/// What BatchNorm1d and BatchNorm2d share: per-channel parameters weight/bias [C] (when affine),
/// buffers running_mean/running_var [C], batch statistics in training (biased variance for
/// normalising, unbiased for the running estimate, as PyTorch) and running statistics in eval.
template <class Derived> class BatchNormBase : public Cloneable<Derived> {
 public:
  const NormOptions& options() const { return options_; }
  std::int64_t channels() const { return channels_; }
  std::string describe() const override;

 protected:
  /// kind names the layer in errors and describe(): "BatchNorm1d", "BatchNorm2d".
  BatchNormBase(const char* kind, std::int64_t channels, NormOptions options);
  /// x normalised per channel over `axes`, the [C] statistics and parameters reshaped to
  /// `param_shape`; the caller has checked x's shape.
  Var normalize(const Var& x, const std::vector<std::int64_t>& axes, const Shape& param_shape);

 private:
  const char* kind_;
  std::int64_t channels_;
  NormOptions options_;
};

/// BatchNorm over the batch axis of x:[n, features] (BatchNormBase's statistics).
class BatchNorm1d : public BatchNormBase<BatchNorm1d> {
 public:
  BatchNorm1d(std::int64_t features, NormOptions options = {});
  Var forward(const Var& x) override;
};

/// BatchNorm over the batch and spatial axes of images x:[n, C, H, W], per channel
/// (BatchNormBase's statistics). eps may be 0: the layer is then exactly invariant to scaling its
/// input.
class BatchNorm2d : public BatchNormBase<BatchNorm2d> {
 public:
  BatchNorm2d(std::int64_t channels, NormOptions options = {});
  Var forward(const Var& x) override;
};

/// LayerNorm over the last axis of x:[..., features].
class LayerNorm : public Cloneable<LayerNorm> {
 public:
  LayerNorm(std::int64_t features, NormOptions options = {});
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  std::int64_t features_;
  NormOptions options_;
};

}  // namespace theta::nn
