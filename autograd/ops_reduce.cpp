// Reduction primitives (sum, max, min, logsumexp, 2-norm, sum_to, expand) and composites built
// on them (mean, var, norm, softmax, log_softmax, vdot).

#include <algorithm>
#include <cmath>

#include "autograd/primitive.hpp"

namespace theta::autograd {

using detail::constant;

THETA_PRIMITIVE(sum, "sum");
THETA_PRIMITIVE(max, "max");
THETA_PRIMITIVE(min, "min");
THETA_PRIMITIVE(logsumexp, "logsumexp");
THETA_PRIMITIVE(norm2, "norm2");
THETA_PRIMITIVE(sum_to, "sum_to");
THETA_PRIMITIVE(expand, "expand");

namespace detail {
Var expand_reduced(const Var& g, const Shape& shape, const std::vector<std::int64_t>& axes,
                   bool keepdim) {
  if (keepdim || axes.empty()) return expand(g, shape);
  Shape kept = shape;  // the reduced shape with its size-1 axes back in place: one view
  for (auto a : axes) kept[static_cast<std::size_t>(a)] = 1;
  return expand(reshape(g, kept), shape);
}
}  // namespace detail

namespace {
std::vector<std::int64_t> axes_of(const Var& x, const std::vector<std::int64_t>& axes, const char* op) {
  return normalize_axes(axes, x.dim(), op);
}

// Weights of max/min's derivative: split evenly between the elements equal to the extreme value.
Tensor extreme_share(const Tensor& x, const std::vector<std::int64_t>& axes, bool is_max) {
  const Tensor ext = is_max ? theta::max(x, axes, true) : theta::min(x, axes, true);
  const Tensor hit = theta::eq(x, ext);
  return theta::div(hit, theta::sum(hit, axes, true));
}

// The tangent is the same weighted sum of the input's tangent (the mean over ties).
Var extreme(const Var& x, const std::vector<std::int64_t>& axes_in, bool keepdim, bool is_max) {
  const auto axes = axes_of(x, axes_in, is_max ? "max" : "min");
  Tensor value = is_max ? theta::max(x.value(), axes, keepdim) : theta::min(x.value(), axes, keepdim);
  return make_result(
      std::move(value), is_max ? "max" : "min", {x},
      [axes, keepdim, is_max](const Var& g, const Node& n, const InputMask&) {
        const Var& in = n.inputs[0];
        const Tensor share = extreme_share(in.value(), axes, is_max);
        return VarList{detail::expand_reduced(g, in.shape(), axes, keepdim) * constant(share)};
      },
      [&](const VarList& t, const VarList& in) {
        return sum(t[0] * constant(extreme_share(in[0].value(), axes, is_max)), axes, keepdim);
      });
}
}  // namespace

Var sum(const Var& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  const auto axes = axes_of(x, axes_in, "sum");
  return make_result(theta::sum(x.value(), axes, keepdim), "sum", {x},
                     [axes, keepdim](const Var& g, const Node& n, const InputMask&) {
                       return VarList{detail::expand_reduced(g, n.inputs[0].shape(), axes, keepdim)};
                     },
                     [&](const VarList& t, const VarList&) { return sum(t[0], axes, keepdim); });
}

Var mean(const Var& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  const auto axes = axes_of(x, axes_in, "mean");
  std::int64_t count = 1;
  for (auto a : axes) count *= x.size(a);
  return sum(x, axes, keepdim) / static_cast<double>(count);
}

Var max(const Var& x, const std::vector<std::int64_t>& axes, bool keepdim) { return extreme(x, axes, keepdim, true); }

Var min(const Var& x, const std::vector<std::int64_t>& axes, bool keepdim) { return extreme(x, axes, keepdim, false); }

namespace {
// softmax = exp(x - lse) over `axes`, kept at x's shape; a non-finite lse (all -inf) is replaced
// by 0 so the weights are exp(-inf) = 0 instead of NaN.
Var softmax_weights(const Var& x, const std::vector<std::int64_t>& axes) {
  const Var lse = logsumexp(x, axes, true);
  const Tensor bad = theta::eq(theta::abs(lse.value()), full({}, INFINITY, x.dtype()));
  const Var safe = where(bad, constant(zeros({}, x.dtype())), lse);
  return exp(x - safe);
}
}  // namespace

Var logsumexp(const Var& x, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  const auto axes = axes_of(x, axes_in, "logsumexp");
  return make_result(
      theta::logsumexp(x.value(), axes, keepdim), "logsumexp", {x},
      [axes, keepdim](const Var& g, const Node& n, const InputMask&) {
        const Var& in = n.inputs[0];
        return VarList{detail::expand_reduced(g, in.shape(), axes, keepdim) * softmax_weights(in, axes)};
      },
      [&](const VarList& t, const VarList& in) { return sum(t[0] * softmax_weights(in[0], axes), axes, keepdim); });
}

Var var(const Var& x, const std::vector<std::int64_t>& axes_in, std::int64_t correction, bool keepdim) {
  const auto axes = axes_of(x, axes_in, "var");
  std::int64_t count = 1;
  for (auto a : axes) count *= x.size(a);
  THETA_CHECK(count - correction > 0, ShapeError, "var: ", count, " elements with correction ",
              correction, " leave no degrees of freedom");
  const Var d = x - mean(x, axes, true);
  return sum(square(d), axes, keepdim) / static_cast<double>(count - correction);
}

namespace {
Var norm2(const Var& x, const std::vector<std::int64_t>& axes, bool keepdim);

// d|x|/dx = x / |x|, taken as 0 at the origin: divide by 1 there instead.
Var unit_direction(const Var& x, const std::vector<std::int64_t>& axes) {
  const Var nrm = norm2(x, axes, true);
  const Tensor at_origin = theta::eq(nrm.value(), zeros({}, x.dtype()));
  return x / where(at_origin, constant(ones({}, x.dtype())), nrm);
}

Var norm2(const Var& x, const std::vector<std::int64_t>& axes, bool keepdim) {
  return make_result(
      theta::norm(x.value(), 2.0, axes, keepdim), "norm2", {x},
      [axes, keepdim](const Var& g, const Node& n, const InputMask&) {
        const Var& in = n.inputs[0];
        return VarList{detail::expand_reduced(g, in.shape(), axes, keepdim) * unit_direction(in, axes)};
      },
      [&](const VarList& t, const VarList& in) { return sum(t[0] * unit_direction(in[0], axes), axes, keepdim); });
}
}  // namespace

Var norm(const Var& x, double p, const std::vector<std::int64_t>& axes_in, bool keepdim) {
  const auto axes = axes_of(x, axes_in, "norm");
  if (std::isinf(p) && p > 0) return max(abs(x), axes, keepdim);
  if (p == 1.0) return sum(abs(x), axes, keepdim);
  THETA_CHECK(p == 2.0, std::invalid_argument, "norm: differentiable norm supports p = 1, 2, inf; got ", p);
  return norm2(x, axes, keepdim);
}

Var sum_to(const Var& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  return make_result(theta::sum_to(x.value(), shape), "sum_to", {x},
                     [](const Var& g, const Node& n, const InputMask&) {
                       return VarList{expand(g, n.inputs[0].shape())};
                     },
                     [&shape](const VarList& t, const VarList&) { return sum_to(t[0], shape); });
}

Var expand(const Var& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  return make_result(x.value().expand(shape), "expand", {x},
                     [](const Var& g, const Node& n, const InputMask&) {
                       return VarList{sum_to(g, n.inputs[0].shape())};
                     },
                     [&shape](const VarList& t, const VarList&) { return expand(t[0], shape); });
}

namespace {
// softmax and log_softmax of integers would fail inside abs or exp, under a name the caller never
// used.
void check_floating(const Var& x, const char* op) {
  THETA_CHECK(is_floating(x.dtype()), DTypeError, op, ": expected a floating tensor, got ", dtype_name(x.dtype()),
              " ", shape_str(x.shape()));
}
}  // namespace

Var log_softmax(const Var& x, std::int64_t axis) {
  check_floating(x, "log_softmax");
  // Shift by the row maximum first: (x - m) - log sum exp(x - m) is accurate to a few ulps of the
  // result, while x - logsumexp(x) rounds m + log sum at the magnitude of the logits (about 1e-12
  // absolute at 1e4). The shift is a constant and log_softmax does not depend on it, so every
  // derivative is unchanged. A row without a finite maximum (all -inf) is not shifted.
  Tensor m = theta::max(x.value(), {axis}, true);
  const Tensor bad = theta::eq(theta::abs(m), full({}, INFINITY, m.dtype()));
  m = theta::where(bad, zeros({}, m.dtype()), m);
  const Var shifted = x - constant(m);
  return shifted - logsumexp(shifted, {axis}, true);
}

Var softmax(const Var& x, std::int64_t axis) {
  check_floating(x, "softmax");
  return exp(log_softmax(x, axis));
}

Var vdot(const Var& a, const Var& b) {
  THETA_CHECK(a.shape() == b.shape(), ShapeError, "vdot: shapes differ: ", shape_str(a.shape()),
              " vs ", shape_str(b.shape()));
  return sum(a * b);
}

}  // namespace theta::autograd
