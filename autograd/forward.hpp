#pragma once
// Forward mode: Vars that carry tangents (Note [Forward mode] in var.hpp).
//
//   DualLevel level;
//   Var x = make_dual(primal, direction);   // x's value is primal's, its tangent `direction`
//   Var y = f(x);                           // every op propagates the tangent
//   Tensor jv = tangent(y).value();         // J(primal) direction (check defined(): zero if not)
//
// Most users want the transforms built on this (jvp, hvp, linearize in transforms.hpp).

#include <cstdint>

#include "autograd/var.hpp"

namespace theta::autograd {

/// Opens a forward-mode level on this thread for its lifetime; tangents set inside belong to it
/// and are invisible once it closes. Throws when a level is already open (no nesting).
class DualLevel {
 public:
  DualLevel();
  ~DualLevel();
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
};

/// Whether a forward-mode level is open on this thread (and not suspended by a tangent rule).
bool forward_mode_enabled();

/// A Var with primal's value (shared storage) and `tangent` as its tangent; gradients flow to
/// primal unchanged. tangent must have primal's shape and dtype; an undefined tangent is zero.
/// Requires an open DualLevel.
Var make_dual(const Var& primal, const Var& tangent);

/// x's tangent at the open level: undefined when it is zero (x does not depend on any dual).
/// Throws when x came from an op with no tangent rule, or when no level is open.
Var tangent(const Var& x);

}  // namespace theta::autograd
