#pragma once
// The structured-Jacobian rule a layer kind states about itself, for the structured NTK and
// per-sample gradients in theory (Note [Structured Jacobians]).

#include <vector>

#include "autograd/var.hpp"

namespace theta::nn {

// Note [Structured Jacobians]
// Some layers y = layer(a; theta) have per-sample parameter Jacobians that factor through the
// layer's input: for Linear, d y_i / d W contracted with an output cotangent D_i is
// s_w D_i (outer) a_i. Then the layer's block of the empirical NTK between samples i and j is
//   K_in(a_i, a_j) * <D_i, D_j>      (K_in = s_w^2 <a_i, a_j> + s_b^2 for Linear),
// where D_i is d f_o(x_i) / d y_i, so the block costs one Gram of inputs and one of output
// cotangents and no [n, P] Jacobian; and sample i's gradient of a per-sample loss is the same
// factor with D_i = d loss_i / d y_i. A layer kind with such a structure implements this
// interface next to its forward; theory observes the layer's input and output with a forward hook
// and never knows the layer's formula. Every parameter of the layer is covered by its rule.

class StructuredLayer {
 public:
  virtual ~StructuredLayer() = default;

  /// Whether the rule covers a call of the layer with this input (Linear: 2-D inputs [n, in]).
  virtual bool structured_input(const autograd::Var& input) const = 0;

  /// The input factor K_in of the layer's NTK block: a1:[n1, in], a2:[n2, in] -> [n1, n2].
  /// When a1 and a2 are the same tensor the result is exactly symmetric.
  virtual Tensor input_kernel(const Tensor& a1, const Tensor& a2) const = 0;

  /// The diagonal K_in(a_i, a_i): a:[n, in] -> [n].
  virtual Tensor input_kernel_diagonal(const Tensor& a) const = 0;

  /// Per-sample gradients of the layer's parameters (in the layer's parameters() order) from its
  /// inputs a:[n, in] and output cotangents d:[n, out]: one [n, *param.shape] per parameter.
  virtual std::vector<Tensor> per_sample_gradients(const Tensor& a, const Tensor& d) const = 0;
};

}  // namespace theta::nn
