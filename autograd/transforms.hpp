#pragma once
// Function transforms in the style of JAX / torch.func: they take a function of Vars and
// tensors, and return tensors. None of them mutates its arguments.

#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/forward.hpp"
#include "autograd/ops.hpp"

namespace theta::autograd {

/// A function of several Vars returning several Vars.
using Function = std::function<std::vector<Var>(const std::vector<Var>&)>;
/// A function of several Vars returning one scalar Var (a loss).
using ScalarFunction = std::function<Var(const std::vector<Var>&)>;

struct VjpResult {
  std::vector<Tensor> outputs{};  // f(primals)
  std::vector<Tensor> grads{};    // J^T cotangents, one per primal
};

/// Vector-Jacobian product: cotangents has one tensor per output of f, of its shape.
VjpResult vjp(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& cotangents);

struct JvpResult {
  std::vector<Tensor> outputs{};   // f(primals)
  std::vector<Tensor> tangents{};  // J tangents, one per output
};

/// How jvp computes J t.
enum class JvpMethod {
  forward,     ///< one forward pass carrying tangents (Note [Forward mode] in var.hpp)
  double_vjp,  ///< two reverse passes (Note [JVP by double VJP]); kept for cross-checks
};

/// Jacobian-vector product: f's outputs and J(primals) tangents, one tangent per primal (of its
/// shape and dtype). With the forward method f sees its primals as constants carrying tangents
/// (they do not require grad) and records no graph of its own.
JvpResult jvp(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents,
              JvpMethod method = JvpMethod::forward);

/// How hvp computes H v.
enum class HvpMethod {
  forward_over_reverse,  ///< the tangent of the gradient along v: one forward and one backward pass
                         ///< carrying tangents, no recorded backward graph
  reverse_over_reverse,  ///< a backward pass through the recorded gradient graph (double backward)
};

/// Hessian-vector product H v of a scalar f at params. One tensor per param.
std::vector<Tensor> hvp(const ScalarFunction& f, const std::vector<Tensor>& params, const std::vector<Tensor>& v,
                        HvpMethod method = HvpMethod::forward_over_reverse);

/// v^T H. Equal to hvp for the symmetric Hessian of a twice continuously differentiable f; it is
/// computed through a different graph for cross-checks: it differentiates the scalar
/// <v, grad f>, where hvp takes the VJP of grad f with cotangent v (Note [Second derivatives as
/// one VJP] in transforms.cpp).
std::vector<Tensor> vhp(const ScalarFunction& f, const std::vector<Tensor>& params, const std::vector<Tensor>& v);

/// Repeated Hessian-vector products at fixed params: the gradient graph is built once and each
/// apply() is one backward pass through it (for Lanczos and other iterative solvers).
class HessianVectorOperator {
 public:
  HessianVectorOperator(const ScalarFunction& f, const std::vector<Tensor>& params);
  /// H v, one tensor per param.
  std::vector<Tensor> apply(const std::vector<Tensor>& v) const;
  /// The loss value at params.
  double loss() const { return loss_; }
  /// The gradient at params, one tensor per param.
  std::vector<Tensor> gradient() const;
  /// Number of scalar parameters.
  std::int64_t size() const { return size_; }

 private:
  std::vector<Var> params_;
  std::vector<Var> grads_;
  double loss_ = 0.0;
  std::int64_t size_ = 0;
};

struct JacobianOptions {
  /// Rows (output elements) per forward pass; 0 computes every row from one forward pass.
  /// Smaller chunks bound how long one graph stays alive, at the cost of re-running f.
  std::int64_t chunk_size = 0;
};

/// jac[i][j] = d outputs[i] / d inputs[j], shape outputs[i].shape + inputs[j].shape
/// (zeros where an output does not depend on an input).
std::vector<std::vector<Tensor>> jacobian(const Function& f, const std::vector<Tensor>& inputs,
                                          JacobianOptions options = {});

/// Dense Hessian of a scalar f: [P, P] over the params flattened and concatenated in order
/// (for small problems, tests and oracles).
Tensor hessian(const ScalarFunction& f, const std::vector<Tensor>& params);

/// Leaves requiring grad whose values share storage with `values` (the transforms above never
/// write to them; an in-place write by the caller is caught by the version check).
std::vector<Var> make_leaves(const std::vector<Tensor>& values);

}  // namespace theta::autograd
