#pragma once
// Empirical and analytic neural tangent kernels, per-parameter Jacobians and per-sample
// gradients (Note [Structured NTK] in ntk_blocks.cpp).
//
// The empirical NTK of a model f: R^d -> R^O is Theta(x1, x2)[o1, o2] = sum over parameters p
// of <d f_o1(x1) / dp, d f_o2(x2) / dp>. Models must treat samples independently (a row of the
// output depends only on the same row of the input: MLPs, or BatchNorm in eval mode); every tool
// here checks this with one extra two-sample forward pass and throws std::invalid_argument for a
// model that mixes samples (BatchNorm in training mode). A model without parameters has the zero
// kernel. Inputs, parameters and results holding NaN or Inf are refused with std::invalid_argument.
// The model's buffers (BatchNorm running statistics) are left as they were.

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "nn/functional.hpp"
#include "nn/module.hpp"

namespace theta::theory {

enum class NtkMethod {
  /// Jacobian contraction: per-sample Jacobians J [n*O, P] and K = J1 J2^T by gemm (the
  /// reference; memory bounded by NtkOptions::max_bytes through chunking).
  contraction,
  /// Per layer with a structured-Jacobian rule, with no [n, P] Jacobian: for Linear
  /// (A1 A2^T) * (D1 D2^T) from captured inputs A and output gradients D, two gemms; for Conv2d
  /// Note [Conv2d NTK routes] in nn/conv_ntk.cpp. Other parameters fall back to contraction.
  structured,
};

struct NtkOptions {
  NtkMethod method = NtkMethod::structured;
  /// Upper bound on the bytes of the temporaries held at once besides the result and the layers'
  /// cotangents: Jacobian chunks (contraction and fallback) and the chunks of the layers' rules
  /// (Conv2d's feature chunks, pixel-pair partners and channel groups, the latter also at most
  /// the full kernel's bytes or 16 MiB), and the blocks of samples the structured factors are
  /// formed in (about 8 MiB of cotangents each). Smaller budgets cost time.
  std::int64_t max_bytes = std::int64_t{1} << 30;
};

/// Full kernel: x1:[n1, d], x2:[n2, d] -> [n1, n2, O, O] (float64 when the model is).
Tensor empirical_ntk(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options = {});
/// Trace over outputs: -> [n1, n2] = sum_o Theta[:, :, o, o].
Tensor empirical_ntk_trace(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options = {});
/// The kernel of a one-output model as a plain matrix: x1:[n1, d], x2:[n2, d] -> [n1, n2], equal
/// to empirical_ntk(...) reshaped from [n1, n2, 1, 1] (computed as its output trace). A model
/// with O != 1 outputs is refused with ShapeError before the kernel is formed.
Tensor empirical_ntk_matrix(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options = {});
/// Diagonal blocks: x:[n, d] -> [n, O, O] = Theta(x_i, x_i).
Tensor empirical_ntk_diagonal(nn::Module& model, const Tensor& x, NtkOptions options = {});

/// Per-parameter Jacobians of the model's outputs: one block per named parameter, each
/// [n, O, *param.shape]. Computed sample by sample; temporaries stay under max_bytes.
std::vector<std::pair<std::string, Tensor>> parameter_jacobians(nn::Module& model, const Tensor& x,
                                                                std::int64_t max_bytes = std::int64_t{1} << 30);

/// Per-sample losses as a function of the model's outputs [n, O] -> [n]. The loss is always
/// called with the whole batch's outputs (so it may close over [n, ...] targets or labels), and
/// loss_i must depend on row i alone: a loss that mixes rows (a batch mean inside) is detected
/// and refused with std::invalid_argument.
using PerSampleLoss = std::function<autograd::Var(const autograd::Var& outputs)>;

/// Per-sample gradients: one block per named parameter, [n, *param.shape], block i the gradient
/// of loss_i alone; their sum over samples is the gradient of sum(losses).
std::vector<std::pair<std::string, Tensor>> per_sample_gradients(nn::Module& model, const Tensor& x,
                                                                 const PerSampleLoss& loss);
/// Norms |grad_i| of the per-sample gradients over all parameters, [n], without forming them.
Tensor per_sample_gradient_norms(nn::Module& model, const Tensor& x, const PerSampleLoss& loss);

/// The inputs of ntk_regression, by name:
///   theory::ntk_regression({.k_test_train = k_xX, .k_train_train = k_XX, .y_train = y,
///                           .f0_train = f0_X, .f0_test = f0_x, .eta = 0.1, .t = 1000});
struct NtkRegressionInputs {
  Tensor k_test_train{};   // K(x, X): [m, n], e.g. empirical_ntk_matrix(model, x_test, x_train)
  Tensor k_train_train{};  // K(X, X): [n, n]
  Tensor y_train{};        // Y: [n, k] targets
  Tensor f0_train{};       // f_0(X): [n, k], the model at initialisation on the training inputs
  Tensor f0_test{};        // f_0(x): [m, k], and on the test inputs
  double eta = 1.0;        // learning rate
  /// Training time in steps; +infinity (the default) gives the converged prediction
  /// f_0(x) + K(x, X) K(X, X)^{-1} (Y - f_0(X)), which needs K(X, X) positive definite.
  double t = std::numeric_limits<double>::infinity();
  /// false: gradient flow for time t (exp(-eta K t)). true: t steps of gradient descent
  /// f <- f - eta K (f - Y), exactly ((I - eta K)^t, t a whole number), which is what a
  /// linearised model trained by plain GD follows; t = infinity then needs eta lambda_max < 2.
  bool discrete = false;
};

/// The linearised model's prediction after gradient flow for time t on the loss
/// 1/2 sum |f(X) - Y|^2 with learning rate eta (t counts steps):
/// f_t(x) = f_0(x) + K(x, X) K(X, X)^{-1} (I - exp(-eta K(X, X) t)) (Y - f_0(X)) -> [m, k],
/// or, with `discrete`, after t steps of gradient descent: (I - eta K(X, X))^t in place of the
/// exponential. Uses an eigendecomposition of K(X, X); at finite t, directions with eigenvalue
/// <= 0 contribute eta t. Every tensor must be set; shapes are checked and named in errors.
Tensor ntk_regression(const NtkRegressionInputs& inputs);
/// The same with positional arguments (k_test_train, k_train_train, y_train, f0_train, f0_test,
/// eta, t); the named form above reads better at a call site.
Tensor ntk_regression(const Tensor& k_test_train, const Tensor& k_train_train, const Tensor& y_train,
                      const Tensor& f0_train, const Tensor& f0_test, double eta, double t);

struct AnalyticKernels {
  Tensor nngp{};  // [n1, n2]
  Tensor ntk{};   // [n1, n2]
};

/// Infinite-width NNGP and NTK of an MLP with `linear_layers` Linear layers in NTK
/// parameterisation (weights sigma_w / sqrt(fan_in), bias sigma_b) and `activation` (relu or
/// erf) between them: Sigma^1 = sigma_w^2 x.x'/d + sigma_b^2, then per layer the arc-cosine
/// (relu) or arcsine (erf) expectations. x1:[n1, d], x2:[n2, d].
AnalyticKernels analytic_ntk(const Tensor& x1, const Tensor& x2, std::int64_t linear_layers,
                             nn::ActivationKind activation, double sigma_w, double sigma_b);

}  // namespace theta::theory
