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

/// One-input primitive: rule(g, x) -> gradient of x.
template <class Rule> Var unary_primitive(const char* name, const Var& x, Tensor value, Rule rule) {
  return make_result(std::move(value), name, {x},
                     [rule](const Var& g, const Node& n, const InputMask&) {
                       return VarList{rule(g, n.inputs[0])};
                     });
}

/// Two-input broadcasting primitive: rule_a(g, a, b), rule_b(g, a, b) give the gradients before
/// they are summed back to each input's shape; only the needed ones are computed.
template <class RuleA, class RuleB>
Var binary_primitive(const char* name, const Var& a, const Var& b, Tensor value, RuleA rule_a,
                     RuleB rule_b) {
  return make_result(std::move(value), name, {a, b},
                     [rule_a, rule_b](const Var& g, const Node& n, const InputMask& needs) {
                       const Var& x = n.inputs[0];
                       const Var& y = n.inputs[1];
                       return VarList{
                           needs[0] ? sum_to(rule_a(g, x, y), x.shape()) : Var(),
                           needs[1] ? sum_to(rule_b(g, x, y), y.shape()) : Var()};
                     });
}

/// The reduced gradient g reshaped with size-1 axes where `axes` were reduced, expanded to shape.
Var expand_reduced(const Var& g, const Shape& shape, const std::vector<std::int64_t>& axes, bool keepdim);

}  // namespace theta::autograd::detail
