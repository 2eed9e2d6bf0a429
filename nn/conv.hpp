#pragma once
// Convolutional layers on NCHW images: Conv2d (standard and NTK parameterisation), AvgPool2d,
// GlobalAvgPool2d, Unflatten (flat rows to images), the pre-activation residual convolution block
// and the small CNN builder (BatchNorm2d sits with the other normalisation layers in layers.hpp).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.hpp"
#include "nn/residual.hpp"
#include "nn/structured.hpp"
#include "tensor/conv.hpp"

namespace theta::nn {

/// How Conv2d's structured-NTK rule evaluates its kernel block (Note [Conv2d NTK routes] in
/// conv_ntk.cpp); both give the same kernel.
enum class ConvNtkRoute {
  automatic,         ///< the cheaper of the two by operation count, or the channel-factored form
                     ///< when the cotangents allow it (Note [Channel-factored cotangents])
  weight_gradients,  ///< per-sample weight gradients D_i^T patches_i, then their Gram
  pixel_pairs,       ///< sum over output pixel pairs of <D_p, D'_q> <patch_p, patch'_q>
};

struct ConvOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;  ///< on each side of both spatial axes
  std::int64_t dilation = 1;
  Padding padding_mode = Padding::zeros;
  bool bias = true;
  Parameterization parameterization = Parameterization::standard;
  double sigma_w = 1.0;  ///< ntk only
  double sigma_b = 0.0;  ///< ntk only
  DType dtype = DType::f64;
};

/// 2-D convolution: x:[n, C_in, H, W] -> [n, C_out, H_out, W_out] (sizes as theta::conv2d).
/// weight: [C_out, C_in, k, k] (PyTorch's layout), bias: [C_out]. Standard parameterisation is
/// y = conv(x, W) + b with PyTorch's default init, W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
/// fan_in = C_in k^2; NTK parameterisation is y = sigma_w / sqrt(fan_in) conv(x, W) + sigma_b b
/// with W, b ~ N(0, 1). Its structured-Jacobian rule (Note [Structured Jacobians]) gives the NTK
/// block and per-sample gradients from the layer's input and output cotangents.
class Conv2d : public Cloneable<Conv2d>, public StructuredLayer {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, Rng& rng,
         ConvOptions options = {});
  Var forward(const Var& x) override;
  std::string describe() const override;

  bool structured_input(const Var& input) const override { return input.dim() == 4; }
  void add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Cotangents& d1, const Tensor& a2,
                            const Cotangents& d2, bool same, bool trace, std::int64_t max_bytes) const override;
  Tensor cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t max_bytes) const override;
  Tensor input_cotangents(const Tensor& a, const Cotangents& d) const override;
  std::vector<Tensor> per_sample_gradients(const Tensor& a, const Tensor& d) const override;
  /// The weight-gradient route's features when they are fewer than the cotangents (a filter with
  /// fewer taps than the output has pixels) and the cotangents do not factor by channel (Note
  /// [Conv2d NTK routes] in conv_ntk.cpp).
  bool prefers_features(const Tensor& a, const Cotangents& d) const override;
  /// [n, m, C_out (C_in k^2 + bias)]: J_i^T d[i, a], weight and bias gradients scaled as in forward.
  Tensor cotangent_features(const Tensor& a, const Cotangents& d) const override;

  const Var& weight() const { return param(0); }
  /// Undefined when the layer has no bias.
  Var bias() const { return options_.bias ? param(1) : Var(); }
  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  std::int64_t kernel_size() const { return kernel_; }
  const ConvOptions& options() const { return options_; }
  /// The geometry passed to theta::conv2d.
  Conv2dOptions geometry() const;
  /// The factor multiplying conv(x, W) in forward (1 in standard parameterisation).
  double weight_scale() const;
  /// The factor multiplying b in forward (1 in standard parameterisation).
  double bias_scale() const;
  /// The route the structured NTK takes (automatic unless set, for comparisons).
  ConvNtkRoute ntk_route = ConvNtkRoute::automatic;

 private:
  std::int64_t in_, out_, kernel_;
  ConvOptions options_;
};

/// Mean over k x k windows: x:[n, C, H, W] -> [n, C, H_out, W_out] (theta::avg_pool2d; stride
/// defaults to the kernel size, zero padding counts in the mean).
class AvgPool2d : public Cloneable<AvgPool2d> {
 public:
  explicit AvgPool2d(std::int64_t kernel_size, std::int64_t stride = 0, std::int64_t padding = 0);
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  std::int64_t kernel_, stride_, padding_;
};

/// Mean over the image: x:[n, C, H, W] -> [n, C].
class GlobalAvgPool2d : public Cloneable<GlobalAvgPool2d> {
 public:
  GlobalAvgPool2d() = default;
  Var forward(const Var& x) override;
  std::string describe() const override { return "GlobalAvgPool2d"; }
};

/// Rows to images: x:[n, C H W] -> [n, C, H, W] (a view when x is contiguous), so a CNN takes the
/// [n, d] inputs that theory's tools and the data loaders use.
class Unflatten : public Cloneable<Unflatten> {
 public:
  /// image = {C, H, W}.
  explicit Unflatten(std::array<std::int64_t, 3> image);
  Var forward(const Var& x) override;
  std::string describe() const override;

 private:
  std::array<std::int64_t, 3> image_;
};

/// A pre-activation residual block on [n, C, H, W]: x + conv(act(conv(act(x)))) with two k x k
/// convolutions of `channels` channels and padding k / 2 (k odd), so the shape is kept. With
/// batch_norm, a BatchNorm2d precedes each activation. conv options other than padding apply.
std::shared_ptr<Residual> residual_conv_block(std::int64_t channels, std::int64_t kernel_size, Rng& rng,
                                              ConvOptions conv = {}, ActivationKind activation = ActivationKind::relu,
                                              bool batch_norm = false);

enum class CnnReadout {
  global_average,  ///< GlobalAvgPool2d, then Linear(C_last -> out)
  flatten,         ///< Flatten, then Linear(C_last H W -> out)
};

struct CnnOptions {
  std::array<std::int64_t, 3> image = {1, 8, 8};  ///< {C, H, W} of one input
  std::vector<std::int64_t> channels = {32, 64};  ///< one k x k Conv2d (padding k / 2) per entry
  std::int64_t kernel_size = 3;                   ///< odd
  std::int64_t out_features = 10;
  CnnReadout readout = CnnReadout::global_average;
  ActivationKind activation = ActivationKind::relu;
  Padding padding_mode = Padding::zeros;
  bool bias = true;
  Parameterization parameterization = Parameterization::standard;
  double sigma_w = 1.0;  ///< ntk only, every Conv2d and the Linear head
  double sigma_b = 0.0;  ///< ntk only
  DType dtype = DType::f64;
};

/// A plain CNN on flat inputs x:[n, C H W] -> [n, out_features]: Unflatten, then per entry of
/// channels Conv2d + activation, then the readout. Layer names: "layers.0" Unflatten,
/// "layers.1", "layers.3", ... Conv2d, the head last.
std::shared_ptr<Sequential> cnn(const CnnOptions& options, Rng& rng);

}  // namespace theta::nn
