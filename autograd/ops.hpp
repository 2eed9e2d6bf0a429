#pragma once
// Differentiable ops on Var. Each primitive's forward and backward sit side by side in one of
// autograd/ops_*.cpp; composites (softmax, log_softmax, var, ...) are built from primitives.
// Shapes, broadcasting and dtype rules are those of the tensor ops in tensor/ops.hpp.
//
// Conventions at non-differentiable points: relu'(0) = 0, |x|'(0) = 0, sign' = 0,
// clamp' = 1 inside [lo, hi] (bounds included), 0 outside; maximum/minimum and max/min
// reductions split the gradient evenly between tied elements. sqrt, rsqrt, log, reciprocal, div
// and pow return a zero gradient where the incoming gradient is zero and the input is singular
// (x <= 0, a zero denominator), and norm a zero gradient at the origin, so the untaken branch of
// a where() never turns 0 * inf into NaN (to second order).

#include <array>
#include <cstdint>
#include <vector>

#include "autograd/var.hpp"
#include "tensor/conv.hpp"
#include "tensor/ops.hpp"
#include "tensor/pool.hpp"

namespace theta::autograd {

// ---- elementwise ---------------------------------------------------------------------------
Var neg(const Var& x);
Var abs(const Var& x);
Var exp(const Var& x);
Var log(const Var& x);
Var log1p(const Var& x);
Var expm1(const Var& x);
Var sqrt(const Var& x);
Var rsqrt(const Var& x);
Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var relu(const Var& x);
Var sin(const Var& x);
Var cos(const Var& x);
Var square(const Var& x);
Var sign(const Var& x);
Var erf(const Var& x);
Var reciprocal(const Var& x);
Var pow(const Var& x, double p);
Var clamp(const Var& x, double lo, double hi);

Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);
/// a^b for a > 0 (the gradient with respect to b uses log a). Outside that domain, points where
/// the incoming gradient is 0 (an untaken where() branch) get gradient 0, not NaN.
Var pow(const Var& a, const Var& b);
Var maximum(const Var& a, const Var& b);
Var minimum(const Var& a, const Var& b);
/// grad where x > 0, else 0: relu's backward as one primitive; x is a constant (relu's derivative
/// has no derivative of its own), the result is linear in grad.
Var relu_grad(const Var& grad, const Tensor& x);
/// mask != 0 ? a : b; mask is a constant (no gradient).
Var where(const Tensor& mask, const Var& a, const Var& b);

Var operator-(const Var& x);
Var operator+(const Var& a, const Var& b);
Var operator-(const Var& a, const Var& b);
Var operator*(const Var& a, const Var& b);
Var operator/(const Var& a, const Var& b);
/// x + c, x * c and x / c for a constant c (the operators with a double use these).
Var add_scalar(const Var& x, double c);
Var mul_scalar(const Var& x, double c);
Var div_scalar(const Var& x, double c);
Var operator+(const Var& a, double b);
Var operator-(const Var& a, double b);
Var operator*(const Var& a, double b);
Var operator/(const Var& a, double b);
Var operator+(double a, const Var& b);
Var operator-(double a, const Var& b);
Var operator*(double a, const Var& b);
Var operator/(double a, const Var& b);

// ---- reductions (empty axes = all axes) -----------------------------------------------------
Var sum(const Var& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Var mean(const Var& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Var max(const Var& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Var min(const Var& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Var logsumexp(const Var& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Var var(const Var& x, const std::vector<std::int64_t>& axes = {}, std::int64_t correction = 0,
        bool keepdim = false);
/// p-norm for p = 1, 2 or infinity (gradient 0 at the origin).
Var norm(const Var& x, double p = 2.0, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
/// Sums broadcast axes away so the result has `shape`.
Var sum_to(const Var& x, const Shape& shape);
/// Broadcasts x to `shape` (a view; the gradient sums back).
Var expand(const Var& x, const Shape& shape);
/// Softmax along `axis`.
Var softmax(const Var& x, std::int64_t axis = -1);
/// log(softmax(x)) along `axis`, computed as x - logsumexp(x).
Var log_softmax(const Var& x, std::int64_t axis = -1);
/// sum(a * b) over all elements: a and b of the same shape -> [].
Var vdot(const Var& a, const Var& b);

// ---- linear algebra --------------------------------------------------------------------------
/// NumPy matmul semantics (1-D, 2-D and broadcast batched), as tensor/ops.hpp.
Var matmul(const Var& a, const Var& b);
/// x W^T for a weight W of shape [out, in] and x of shape [..., in] (a dense layer without bias).
/// Same value as matmul(x, t(W)), recorded as one node.
Var linear(const Var& x, const Var& weight);

// ---- convolution and pooling (NCHW; shapes and options as tensor/conv.hpp, tensor/pool.hpp) ------
/// Cross-correlation of x:[N, C_in, H, W] with weight:[C_out, C_in, kh, kw] -> [N, C_out, H_out, W_out].
/// Its backward is made of conv2d_input_grad and conv2d_weight_grad, which are differentiable in
/// turn (each of the three is bilinear, and the adjoint of each is one of the others).
Var conv2d(const Var& x, const Var& weight, const Conv2dOptions& options = {});
/// The adjoint of conv2d in its input, for an input of `input_shape`: differentiable in grad_out
/// and in weight.
Var conv2d_input_grad(const Var& grad_out, const Var& weight, const Shape& input_shape,
                      const Conv2dOptions& options = {});
/// The adjoint of conv2d in its weight, for a weight of `weight_shape`: differentiable in x and
/// in grad_out.
Var conv2d_weight_grad(const Var& x, const Var& grad_out, const Shape& weight_shape,
                       const Conv2dOptions& options = {});
/// Mean over kernel windows of x:[N, C, H, W] (zero padding counted in the mean).
Var avg_pool2d(const Var& x, std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
               std::array<std::int64_t, 2> padding = {0, 0});
/// The adjoint of avg_pool2d for an input of `input_shape` (itself differentiable).
Var avg_pool2d_grad(const Var& grad_out, const Shape& input_shape, std::array<std::int64_t, 2> kernel,
                    std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding = {0, 0});
/// Mean over the image: x:[N, C, H, W] -> [N, C].
Var global_avg_pool2d(const Var& x);
/// The adjoint of global_avg_pool2d for an input of `input_shape` (itself differentiable).
Var global_avg_pool2d_grad(const Var& grad_out, const Shape& input_shape);

// ---- views and joins -------------------------------------------------------------------------
Var reshape(const Var& x, const Shape& shape);
Var permute(const Var& x, const std::vector<std::int64_t>& perm);
Var transpose(const Var& x, std::int64_t a, std::int64_t b);
/// Transpose of a 2-D Var.
Var t(const Var& x);
Var slice(const Var& x, std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
Var select(const Var& x, std::int64_t axis, std::int64_t index);
Var squeeze(const Var& x, std::int64_t axis);
Var unsqueeze(const Var& x, std::int64_t axis);
Var flatten(const Var& x);
Var concat(const std::vector<Var>& xs, std::int64_t axis = 0);
Var stack(const std::vector<Var>& xs, std::int64_t axis = 0);
/// Picks entries `index` (1-D int64) along axis.
Var index_select(const Var& x, std::int64_t axis, const Tensor& index);
/// out[..i..] = x[..index[..i..]..] along axis (index has x's rank).
Var gather(const Var& x, std::int64_t axis, const Tensor& index);
/// x with src added at index positions along axis.
Var scatter_add(const Var& x, std::int64_t axis, const Tensor& index, const Var& src);
/// The inverse of slice: a zero tensor of `shape` with x written at the sliced positions.
Var slice_backward(const Var& x, const Shape& shape, std::int64_t axis, std::int64_t start,
                   std::int64_t stop, std::int64_t step);

}  // namespace theta::autograd
