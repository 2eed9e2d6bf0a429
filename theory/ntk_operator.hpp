#pragma once
// The empirical NTK as an operator, v -> K v, for kernels too large to form.

#include <cstdint>
#include <memory>

#include "nn/module.hpp"
#include "theory/hessian.hpp"

namespace theta::theory {

// Note [NTK operator]
// K = J J^T for the Jacobian J [n O, P] of the model's outputs on n points in its parameters. K v
// is J (J^T v): J^T v is a VJP of the outputs with cotangent v (reverse passes over chunks of
// samples, summed into one P-vector u), and J u a JVP along u (forward-mode passes over the same
// chunks). Neither K [n O, n O] nor J is ever formed: peak memory is one chunk's activations and
// their tangents, plus a few P-vectors, whatever n is. A product costs about a gradient over the
// n points plus a forward-mode pass; Lanczos on it gives the top of the NTK's spectrum and
// Hutchinson its trace (hessian.hpp), at n where the kernel itself would not fit in memory.

struct NtkOperatorOptions {
  /// Samples per forward and backward pass (>= 1): peak memory grows with it, per-pass overhead
  /// shrinks.
  std::int64_t chunk = 1024;
};

/// The empirical NTK of `model` on x:[n, ...] as a LinearOperator on float64 vectors of size
/// n O, v[(i, a)] at i O + a -> (K v) likewise, with K[(i, a), (j, b)] = <d f_a(x_i)/dw,
/// d f_b(x_j)/dw> (Note [NTK operator]). The model's outputs must be [n, O]; products run in its
/// dtype. Its parameters and buffers are read, never written; the operator holds the model and x.
LinearOperator ntk_operator(std::shared_ptr<nn::Module> model, const Tensor& x, NtkOperatorOptions options = {});

}  // namespace theta::theory
