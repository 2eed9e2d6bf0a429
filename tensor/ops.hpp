#pragma once
// Eager tensor ops. Every op returns a new dense tensor that shares nothing with its operands
// (views live in tensor.hpp); elementwise results keep their operands' shared dense layout, so
// they are not always contiguous (Note [Output layout] in ops_elementwise.cpp).
// Binary ops broadcast with NumPy rules and require both operands to have the same dtype
// (convert explicitly with Tensor::to); a double operand takes the tensor's dtype.
// Math ops need a floating dtype; add, sub, mul, maximum, minimum, comparisons, where and the
// sum/max/min reductions also accept int64.

#include <cstdint>
#include <vector>

#include "tensor/tensor.hpp"

namespace theta {

// ---- unary (floating dtypes) ------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
/// 1 / sqrt(x), computed exactly (not an approximation instruction).
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
/// 1 / (1 + exp(-x)).
Tensor sigmoid(const Tensor& x);
/// max(x, 0); NaN stays NaN.
Tensor relu(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor square(const Tensor& x);
/// -1, 0 or 1 (0 keeps its sign bit; NaN stays NaN).
Tensor sign(const Tensor& x);
/// The Gauss error function.
Tensor erf(const Tensor& x);
/// 1 / x.
Tensor reciprocal(const Tensor& x);
/// x^p; integral p (|p| <= 64) is computed by repeated multiplication, exact for negative x.
Tensor pow(const Tensor& x, double p);
/// min(max(x, lo), hi); NaN stays NaN.
Tensor clamp(const Tensor& x, double lo, double hi);

// ---- binary (broadcasting) --------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
/// a^b elementwise (NaN for a negative base with a non-integral exponent).
Tensor pow(const Tensor& a, const Tensor& b);
/// Elementwise max; NaN if either is NaN.
Tensor maximum(const Tensor& a, const Tensor& b);
/// Elementwise min; NaN if either is NaN.
Tensor minimum(const Tensor& a, const Tensor& b);
/// Comparisons return a mask of the operands' dtype holding 1 where true and 0 where false.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
/// grad where x > 0, else 0 (broadcast together): relu's derivative at x applied to grad, in one
/// pass (relu'(0) = 0; a NaN x gives 0).
Tensor relu_grad(const Tensor& grad, const Tensor& x);
/// mask != 0 ? a : b elementwise, all three broadcast together (mask of any dtype).
Tensor where(const Tensor& mask, const Tensor& a, const Tensor& b);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions (axes may be negative; empty axes = all axes) ---------------------------------
/// Sum over `axes`. x:[..] -> reduced shape (size-1 axes kept when keepdim).
Tensor sum(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
/// Max over `axes` (NaN if any element is NaN); throws on an empty reduction.
Tensor max(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
/// Index of the first maximum along `axis` (int64). NaN counts as the maximum.
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim = false);
/// log(sum(exp(x))) computed stably; all -inf gives -inf.
Tensor logsumexp(const Tensor& x, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
/// Variance with divisor N - correction (correction 0: population, 1: sample).
Tensor var(const Tensor& x, const std::vector<std::int64_t>& axes = {}, std::int64_t correction = 0,
           bool keepdim = false);
/// p-norm over `axes` for p = 1, 2 or infinity.
Tensor norm(const Tensor& x, double p = 2.0, const std::vector<std::int64_t>& axes = {},
            bool keepdim = false);
/// Reduces `x` to `shape` by summing over broadcast axes (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- linear algebra (floating dtypes, OpenBLAS) -----------------------------------------------
/// NumPy matmul: [k]@[k] -> [], [m,k]@[k] -> [m], [k]@[k,n] -> [n], [m,k]@[k,n] -> [m,n],
/// batched [..., m, k] @ [..., k, n] -> [broadcast(...), m, n].
Tensor matmul(const Tensor& a, const Tensor& b);
/// a:[m], b:[n] -> [m, n].
Tensor outer(const Tensor& a, const Tensor& b);
/// a:[n], b:[n] -> [].
Tensor dot(const Tensor& a, const Tensor& b);
/// a:[m, k] -> a a^T [m, m], exactly symmetric (BLAS syrk: half the work of matmul). With
/// fill_upper false only the lower triangle (row >= column) is computed; the rest is zero.
Tensor gram(const Tensor& a, bool fill_upper = true);

// ---- indexing and joining ---------------------------------------------------------------------
/// Picks entries `index` (1-D int64) along `axis`: out.shape[axis] = index.numel().
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index);
/// out[i][j][k] = x[i][index[i][j][k]][k] for axis 1 (index has x's rank; int64).
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index);
/// A copy of x with src added at the positions index names along axis (inverse of gather).
Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& index, const Tensor& src);
/// Joins tensors along an existing axis.
Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis = 0);
/// Joins tensors along a new axis.
Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis = 0);

/// True when shapes and dtypes match and every element differs by at most atol + rtol * |b|
/// (NaN equals NaN only when equal_nan).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
              bool equal_nan = false);
/// True when no element is NaN or +-Inf (always true for int64 and empty tensors).
bool all_finite(const Tensor& x);

}  // namespace theta
