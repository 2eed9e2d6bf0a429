#pragma once
// The structured-Jacobian rule a layer kind states about itself, for the structured NTK and
// per-sample gradients in theory (Note [Structured Jacobians]).

#include <cstdint>
#include <vector>

#include "autograd/var.hpp"
#include "nn/cotangents.hpp"

namespace theta::nn {

// Note [Structured Jacobians]
// Some layers y = layer(a; theta) have per-sample parameter Jacobians J_i = d y_i / d theta that
// are cheap to contract with output cotangents without ever being formed: for Linear, J_i^T D_i is
// s_w D_i (outer) a_i, so the layer's block of the empirical NTK between samples i and j is
//   <J_i^T D_i, J_j^T D_j> = K_in(a_i, a_j) * <D_i, D_j>    (K_in = s_w^2 <a_i, a_j> + s_b^2),
// where D_i is d f_o(x_i) / d y_i: one Gram of inputs and one of output cotangents, no [n, P]
// Jacobian. A convolution's block does not factor that way, but has its own cheap forms (Note
// [Conv2d NTK routes] in conv_ntk.cpp). A layer kind with such a structure implements this
// interface next to its forward; theory observes the layer's input and output with a forward hook
// and never knows the layer's formula. Every parameter of the layer is covered by its rule.
//
// Cotangents come m per sample: d:[n, m, *y.shape[1:]] holds d[i, a] for sample i (m = O outputs
// for the NTK, m = 1 for one output or a per-sample loss), dense or factored by channel
// (Cotangents in cotangents.hpp); a rule may use the factors or ask for the dense tensor.

class StructuredLayer {
 public:
  virtual ~StructuredLayer() = default;

  /// Whether the rule covers a call of the layer with this input (Linear: 2-D inputs [n, in]).
  virtual bool structured_input(const autograd::Var& input) const = 0;

  /// Adds the layer's NTK block for inputs a1 (n1 samples) and a2 (n2) with cotangents
  /// d1:[n1, m, ...], d2:[n2, m, ...] to k: K[i, j, a, b] = <J_i^T d1[i, a], J_j^T d2[j, b]> into
  /// k:[n1, n2, m, m] (the layout of the empirical NTK), or with `trace` its sum over a = b into
  /// k:[n1, n2]; k is contiguous. `same` says a2, d2 are a1, d1. Then in the full form only the
  /// blocks k[i, j] with j <= i must be right afterwards (diagonal blocks in full): the caller
  /// completes the kernel with mirror_lower_blocks, and the rule may add anything above the
  /// diagonal; in the trace form the rule adds an exactly symmetric [n1, n1]. Temporaries stay
  /// under about max_bytes where the rule can chunk.
  virtual void add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Cotangents& d1, const Tensor& a2,
                                    const Cotangents& d2, bool same, bool trace, std::int64_t max_bytes) const = 0;

  /// The block alone: a new [n1, n2, m, m] (or [n1, n2] with `trace`) holding what
  /// add_cotangent_kernel adds, exactly symmetric with `same`.
  Tensor cotangent_kernel(const Tensor& a1, const Cotangents& d1, const Tensor& a2, const Cotangents& d2, bool same,
                          bool trace, std::int64_t max_bytes) const;

  /// The per-sample diagonal: [n, m, m] with K[i, a, b] = <J_i^T d[i, a], J_i^T d[i, b]>.
  virtual Tensor cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t max_bytes) const = 0;

  /// Whether the layer's NTK block for cotangents like d is best formed from per-sample features
  /// (cotangent_features) that take fewer numbers than the cotangents themselves. A kernel that
  /// forms its factors a block of samples at a time (Note [Compact factors] in
  /// theory/ntk_compact_factors.cpp) asks once, on its first block, and then keeps the features
  /// of every block instead of its cotangents. False unless a rule says otherwise.
  virtual bool prefers_features(const Tensor& a, const Cotangents& d) const;

  /// Per-sample features of the cotangents, phi:[n, m, w] with
  /// <phi[i, a], phi[j, b]> = <J_i^T d[i, a], J_j^T d[j, b]>: the layer's NTK block is their
  /// Gram. Only for rules whose prefers_features can be true (others throw std::logic_error).
  virtual Tensor cotangent_features(const Tensor& a, const Cotangents& d) const;

  /// Cotangents of the layer's input from cotangents of its output: the vector-Jacobian product of
  /// every d[:, a] at input a, d:[n, m, *y.shape[1:]] -> [n, m, *a.shape[1:]]. Theory carries
  /// output gradients from one structured layer to the one before with it, for all m at once
  /// (Note [Cotangent pullback] in theory/ntk_blocks.cpp).
  virtual Tensor input_cotangents(const Tensor& a, const Cotangents& d) const = 0;

  /// Per-sample gradients of the layer's parameters (in the layer's parameters() order) from its
  /// inputs a:[n, ...] and output cotangents d:[n, *y.shape[1:]]: one [n, *param.shape] per parameter.
  virtual std::vector<Tensor> per_sample_gradients(const Tensor& a, const Tensor& d) const = 0;
};

/// A rule whose NTK block factors as K_in(a_i, a_j) <D_i, D_j> (Linear): the layer states the
/// input factor, the block is derived from it here (one Gram of inputs, one of cotangents,
/// multiplied straight into the kernel's layout).
class FactoredLayer : public StructuredLayer {
 public:
  /// The input factor K_in of the layer's NTK block: a1:[n1, in], a2:[n2, in] -> [n1, n2].
  /// When a1 and a2 are the same tensor the result is exactly symmetric.
  virtual Tensor input_kernel(const Tensor& a1, const Tensor& a2) const = 0;

  /// The diagonal K_in(a_i, a_i): a:[n, in] -> [n].
  virtual Tensor input_kernel_diagonal(const Tensor& a) const = 0;

  void add_cotangent_kernel(const Tensor& k, const Tensor& a1, const Cotangents& d1, const Tensor& a2,
                            const Cotangents& d2, bool same, bool trace, std::int64_t max_bytes) const final;
  Tensor cotangent_kernel_diagonal(const Tensor& a, const Tensor& d, std::int64_t max_bytes) const final;
};

/// Completes a kernel k:[n, n, m, m] of samples with themselves from its lower half: block [j, i]
/// becomes the transpose of block [i, j] for j < i, and each diagonal block [i, i] its symmetric
/// part, so k is exactly symmetric.
void mirror_lower_blocks(const Tensor& k);

/// k[i, j, a, b] += <f1[i m + a], f2[j m + b]> * scale[i, j] for k:[n1, n2, m, m] (a view whose
/// [m, m] blocks are contiguous), features f1:[n1 m, w], f2:[n2 m, w] and scale:[n1, n2] with
/// unit inner stride (undefined: 1). With `same` (f2 is f1), only the blocks j <= i are updated,
/// the diagonal ones in full. The products are formed a panel of rows at a time, added while in
/// cache: no [n1 m, n2 m] product, no [n1, m, n2, m] temporary.
void add_feature_gram(const Tensor& k, const Tensor& f1, const Tensor& f2, const Tensor& scale, bool same);

}  // namespace theta::nn
