#pragma once
// Residual networks (He et al. 2016): the Residual block y = body(x) + shortcut(x), the
// parameter-free Identity and Flatten layers, and the residual MLP builder.

#include <cstdint>
#include <memory>
#include <string>

#include "nn/layers.hpp"

namespace theta::nn {

/// Returns its input: x:[...] -> x (the same Var; nothing is recorded).
class Identity : public Cloneable<Identity> {
 public:
  Identity() = default;
  /// x:[...] -> x
  Var forward(const Var& x) override { return x; }
  std::string describe() const override { return "Identity"; }
};

/// Merges every axis after the first: x:[n, d1, d2, ...] -> [n, d1*d2*...] (x:[n] -> [n, 1]).
/// A view of x when its layout allows one (e.g. contiguous), a copy otherwise (e.g. transposed).
class Flatten : public Cloneable<Flatten> {
 public:
  Flatten() = default;
  /// x:[n, d1, ...] -> [n, d1*...]; a 0-d x is a ShapeError.
  Var forward(const Var& x) override;
  std::string describe() const override { return "Flatten"; }
};

/// y = body(x) + shortcut(x), where shortcut(x) = projection(x) when a projection is given and
/// x otherwise. The children are registered as "body" and "projection" (when given), so the
/// parameters are named "body.<name>" then "projection.<name>", and both are applied through
/// operator() (their forward hooks fire): body first, then the projection. No broadcasting:
/// body(x) and shortcut(x) must have the same shape and dtype.
class Residual : public Cloneable<Residual> {
 public:
  /// body: x -> [s]; projection (optional, null for the identity shortcut): x -> [s].
  explicit Residual(std::shared_ptr<Module> body, std::shared_ptr<Module> projection = nullptr);
  /// x:[...] -> [s] = body(x) + shortcut(x); ShapeError naming both shapes when they differ.
  Var forward(const Var& x) override;
  /// "Residual(<body>)" or "Residual(<body>, projection <projection>)".
  std::string describe() const override;
  /// The residual branch.
  Module& body() const { return child(0); }
  /// The shortcut's projection; null when the shortcut is the identity.
  Module* projection() const { return has_projection_ ? &child(1) : nullptr; }

 private:
  bool has_projection_;
};

struct ResidualMlpOptions {
  std::int64_t in_features = 1;
  std::int64_t width = 64;  // every hidden layer and every block
  std::int64_t out_features = 1;
  std::int64_t blocks = 2;  // may be 0: Linear -> activation -> Linear
  ActivationKind activation = ActivationKind::relu;
  bool bias = true;
  Parameterization parameterization = Parameterization::standard;
  double sigma_w = 1.0;  // ntk only, every Linear layer
  double sigma_b = 0.0;  // ntk only, every Linear layer
  DType dtype = DType::f64;
};

/// A pre-activation residual MLP, x:[n, in_features] -> [n, out_features]:
///
///   layers.0                    Linear(in_features -> width)
///   layers.1 ... layers.B       Residual(Sequential(activation, Linear(width -> width)))
///   layers.B+1                  activation
///   layers.B+2                  Linear(width -> out_features)
///
/// with B = blocks, so block b computes h + W_b act(h) + b_b and its parameters are named
/// "layers.<b>.body.layers.1.weight" / ".bias". Parameter count (with bias):
/// (in + 1) width + B (width + 1) width + (width + 1) out. The blocks' sums are not rescaled: in
/// NTK parameterisation the forward variance grows with B.
std::shared_ptr<Sequential> residual_mlp(const ResidualMlpOptions& options, Rng& rng);

}  // namespace theta::nn
