#pragma once
// Internal helpers for writing primitives: a primitive is make_result() with its value and a
// backward rule written in Var ops (Note [Differentiable backward] in var.hpp).

#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/var.hpp"

namespace theta::autograd::detail {

/// A constant Var (no gradient) of `value`.
inline Var constant(const Tensor& value) { return Var(value, false); }

/// A 0-d constant of x's dtype.
inline Var scalar_like(double value, const Var& x) { return Var(scalar_tensor(value, x.dtype())); }

/// a + b where both are defined, else the defined one (undefined tangents are zero).
inline Var add_defined(const Var& a, const Var& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return a + b;
}

/// One-input primitive: rule(g, x) -> gradient of x; tangent(t, x) -> tangent of the output for
/// the input tangent t (Note [Forward mode] in var.hpp).
template <class Rule, class Tangent>
Var unary_primitive(const char* name, const Var& x, Tensor value, Rule rule, Tangent tangent) {
  return make_result(
      std::move(value), name, {x},
      [rule](const Var& g, const Node& n, const InputMask&) { return VarList{rule(g, n.inputs[0])}; },
      [&tangent](const VarList& t, const VarList& in) { return tangent(t[0], in[0]); });
}

// Note [Elementwise tangents]
// An elementwise op has a diagonal Jacobian, J = diag(f'(x)), so J^T g and J t are the same
// product: the backward rule g -> g f'(x), applied to a tangent, is the tangent rule. For a
// broadcasting binary op the rule of each operand, applied to that operand's tangent, gives its
// term at the output's shape before any sum_to (the terms broadcast where an operand does).

/// One-input elementwise primitive: rule(g, x) = g f'(x) is both its backward and its tangent.
template <class Rule> Var elementwise_unary(const char* name, const Var& x, Tensor value, Rule rule) {
  return unary_primitive(name, x, std::move(value), rule, rule);
}

/// Two-input broadcasting elementwise primitive: rule_a(g, a, b), rule_b(g, a, b) give the
/// gradients before they are summed back to each input's shape; only the needed ones are
/// computed. Applied to the inputs' tangents they give the output's tangent (Note [Elementwise
/// tangents]).
template <class RuleA, class RuleB>
Var binary_primitive(const char* name, const Var& a, const Var& b, Tensor value, RuleA rule_a,
                     RuleB rule_b) {
  const Shape out_shape = value.shape();
  return make_result(
      std::move(value), name, {a, b},
      [rule_a, rule_b](const Var& g, const Node& n, const InputMask& needs) {
        const Var& x = n.inputs[0];
        const Var& y = n.inputs[1];
        return VarList{needs[0] ? sum_to(rule_a(g, x, y), x.shape()) : Var(),
                       needs[1] ? sum_to(rule_b(g, x, y), y.shape()) : Var()};
      },
      [&](const VarList& t, const VarList& in) {
        const Var ta = t[0].defined() ? rule_a(t[0], in[0], in[1]) : Var();
        const Var tb = t[1].defined() ? rule_b(t[1], in[0], in[1]) : Var();
        const Var sum = add_defined(ta, tb);
        return sum.shape() == out_shape ? sum : expand(sum, out_shape);
      });
}

/// The reduced gradient g reshaped with size-1 axes where `axes` were reduced, expanded to shape.
Var expand_reduced(const Var& g, const Shape& shape, const std::vector<std::int64_t>& axes, bool keepdim);

}  // namespace theta::autograd::detail
