#include "autograd/forward.hpp"

#include <atomic>

namespace theta::autograd {

namespace {
// Level ids are never reused, so a tangent kept from a closed level never matches a new one.
std::atomic<std::uint64_t> next_level{1};
}  // namespace

DualLevel::DualLevel() {
  THETA_CHECK(detail::forward_level == 0, std::logic_error,
              "DualLevel: a forward-mode level is already open on this thread (forward-over-forward "
              "is not supported; forward-over-reverse is: run grad inside one level)");
  detail::forward_level = next_level.fetch_add(1, std::memory_order_relaxed);
}

DualLevel::~DualLevel() { detail::forward_level = 0; }

bool forward_mode_enabled() { return detail::forward_level != 0; }

Var make_dual(const Var& primal, const Var& tangent) {
  THETA_CHECK(detail::forward_level != 0, std::logic_error,
              "make_dual: no forward-mode level is open (create a DualLevel first)");
  THETA_CHECK(primal.defined(), std::invalid_argument, "make_dual: the primal is undefined");
  THETA_CHECK(is_floating(primal.dtype()), DTypeError, "make_dual: the primal must be floating, got ",
              dtype_name(primal.dtype()));
  if (tangent.defined())
    THETA_CHECK(tangent.shape() == primal.shape() && tangent.dtype() == primal.dtype(), ShapeError,
                "make_dual: tangent ", dtype_name(tangent.dtype()), " ", shape_str(tangent.shape()),
                " does not match primal ", dtype_name(primal.dtype()), " ", shape_str(primal.shape()));
  // An identity op, so that gradients reach `primal`; it is a transform's entry point, not a
  // function of its input in the forward-mode sense (its tangent is the given one).
  Var out = make_result(primal.value(), "make_dual", {primal}, [](const Var& g, const Node&, const InputMask&) {
    return VarList{g};
  });
  detail::set_tangent(out, tangent, "make_dual");
  return out;
}

Var tangent(const Var& x) {
  THETA_CHECK(detail::forward_level != 0, std::logic_error,
              "tangent: no forward-mode level is open (create a DualLevel first)");
  THETA_CHECK(x.defined(), std::invalid_argument, "tangent: the Var is undefined");
  VarList tangents;
  detail::input_tangents(VarList{x}, tangents);
  return tangents[0];
}

}  // namespace theta::autograd
