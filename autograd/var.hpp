#pragma once
// Var: a tensor value that remembers how it was computed, for reverse-mode differentiation.
//
// Each differentiable op returns a Var whose Node holds the op's inputs and its backward rule.
// Backward rules are written with Var ops only (never raw tensor arithmetic), so a backward pass
// can itself be recorded and differentiated again: that is what makes Hessian-vector products,
// JVPs and Jacobians of gradients work (Note [Differentiable backward]).

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/inline_list.hpp"
#include "tensor/tensor.hpp"

namespace theta::autograd {

// Note [Differentiable backward]
// A Node's backward maps the gradient of its output to gradients of its inputs using Var ops.
// With grad mode off (the default while a backward runs), those ops compute plain tensors and
// record nothing. With create_graph, grad mode stays on, the ops record Nodes, and the returned
// gradients are Vars with their own history, ready to be differentiated again.
// Backward rules read their inputs from the Node (node.inputs) and never capture the op's own
// output: output -> Node -> closure -> output would be a reference cycle and leak.

class Var;
struct Node;
struct VarImpl;

/// A Node's inputs, or the gradients its backward returns (one per input, in order).
using VarList = InlineList<Var, 2>;

/// Which inputs of a Node need a gradient in the current backward pass.
using InputMask = InlineList<bool, 4>;

/// grads_in = backward(grad_out, node, mask); an entry may be an undefined Var (no gradient).
using BackwardFn = std::function<VarList(const Var& grad_out, const Node& node, const InputMask& needs)>;

/// Gradient buffers a backward pass owns, one per input of a Node (undefined: none offered).
using GradBuffers = InlineList<Tensor, 2>;

/// The optional accumulating form of a backward rule (Note [Accumulating backward]): adds the
/// gradient of each needed input i with a defined into[i] to into[i] in place, and returns the
/// gradients of the other needed inputs as BackwardFn does (undefined where it accumulated).
using BackwardIntoFn =
    std::function<VarList(const Var& grad_out, const Node& node, const InputMask& needs, const GradBuffers& into)>;

class Var {
 public:
  /// An undefined Var (e.g. the gradient of an unused input).
  Var() = default;
  /// A leaf holding `value`; only float tensors may require gradients.
  Var(Tensor value, bool requires_grad = false);  // NOLINT: implicit constants are convenient

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  bool requires_grad() const;
  /// The Node that produced this Var, or null for a leaf.
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }

  /// Gradient accumulated by backward() on a leaf (undefined until the first backward).
  const Tensor& grad() const;
  void set_grad(const Tensor& g) const;
  /// Drops the accumulated gradient.
  void zero_grad() const;

  /// The same value without history (shares storage).
  Var detach() const;
  /// Makes this leaf require (or stop requiring) gradients; throws on a non-leaf.
  void set_requires_grad(bool enabled) const;

  const Shape& shape() const { return value().shape(); }
  DType dtype() const { return value().dtype(); }
  std::int64_t dim() const { return value().dim(); }
  std::int64_t numel() const { return value().numel(); }
  std::int64_t size(std::int64_t axis) const { return value().size(axis); }
  /// The single element as a double.
  double item() const { return value().item<double>(); }

  /// Identity of the underlying variable (copies of a Var share it).
  VarImpl* id() const { return impl_.get(); }
  /// Number of Var handles sharing this variable.
  long use_count() const { return impl_.use_count(); }

 private:
  [[noreturn]] static void throw_undefined();
  static const std::shared_ptr<Node>& no_node();

  friend Var make_result(Tensor value, const char* name, VarList inputs, BackwardFn backward);
  std::shared_ptr<VarImpl> impl_;
};

struct Node {
  Node(const char* op_name, VarList op_inputs, BackwardFn fn);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const char* name;
  VarList inputs;
  /// Storage versions of the inputs when the op ran (Note [Saved tensor versions]).
  InlineList<std::uint64_t, 2> input_versions;
  BackwardFn backward;
  /// Optional; used only by passes that record nothing (no create_graph).
  BackwardIntoFn backward_into;
  /// Set once backward ran without retain_graph: the buffers are gone.
  bool released = false;
};

struct VarImpl {
  // User-provided, so creating one does not zero the whole object first.
  VarImpl(Tensor v, bool needs_grad) : value(std::move(v)), requires_grad(needs_grad) {}

  Tensor value;
  std::shared_ptr<Node> grad_fn;
  bool requires_grad = false;
  Tensor grad;
  // Forward mode (Note [Forward mode]): the tangent carried at level `tangent_level` (undefined:
  // zero), or, when `missing_tangent` names an op, the note that the op that produced this Var
  // from inputs with tangents has no tangent rule.
  Var tangent;
  std::uint64_t tangent_level = 0;
  const char* missing_tangent = nullptr;
};

// Hot accessors, inline: every op and every step of the engine reads them.
inline const Tensor& Var::value() const {
  if (!impl_) [[unlikely]]
    throw_undefined();
  return impl_->value;
}
inline bool Var::requires_grad() const { return impl_ && impl_->requires_grad; }
inline const std::shared_ptr<Node>& Var::grad_fn() const { return impl_ ? impl_->grad_fn : no_node(); }

/// Prints a Var like its value, plus its autograd state (as PyTorch does):
/// var([1, 2], dtype=float64, shape=[2], requires_grad=true) for a leaf that requires gradients,
/// var([2, 4], dtype=float64, shape=[2], grad_fn=mul_scalar) for an op's result (grad_fn names the
/// op that produced it), var([1, 2], dtype=float64, shape=[2]) for a constant.
std::ostream& operator<<(std::ostream& out, const Var& v);

/// Creates the result of a differentiable op. Records a Node only when grad mode is on and some
/// input requires a gradient; otherwise returns a constant. An op made this way has no tangent
/// rule: forward mode through it throws when its output's tangent is read.
Var make_result(Tensor value, const char* name, VarList inputs, BackwardFn backward);

/// Whether ops currently record history (thread-local; on by default).
bool grad_mode_enabled();
void set_grad_mode(bool enabled);

/// Disables recording in a scope: NoGradGuard guard; ... (restores the previous mode).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_mode_enabled()) { set_grad_mode(false); }
  ~NoGradGuard() { set_grad_mode(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Sets grad mode to `enabled` in a scope.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : previous_(grad_mode_enabled()) { set_grad_mode(enabled); }
  ~GradModeGuard() { set_grad_mode(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// Note [Forward mode]
// Inside a DualLevel (autograd/forward.hpp) a Var may carry a tangent: the directional
// derivative of its value along the tangents given to make_dual. Each primitive states, next to
// its forward and backward, a tangent rule rule(tangents, inputs) -> tangent of the output, where
// tangents[i] is undefined when input i's tangent is zero. Rules are written in Var ops, like
// backward rules, and run with tangent propagation suspended, so:
// - when grad mode is on the rule is recorded, and reverse mode differentiates tangents
//   (reverse-over-forward: linearised models train by backpropagation); a transform that never
//   does (forward-over-reverse HVPs) turns detail::record_tangents off and keeps no such graph;
// - a backward pass run inside a level propagates tangents through the backward rules' ops, so
//   the gradient's tangent is a Hessian-vector product (forward-over-reverse).
// Tangents are tagged with the level they belong to: a Var kept from a closed level carries
// none in the next. Levels do not nest (no forward-over-forward).

namespace detail {
/// The open forward-mode level on this thread; 0 when none (Note [Forward mode]).
inline thread_local std::uint64_t forward_level = 0;

/// Collects the tangents of `inputs` at the open level into `tangents` (undefined: zero) and
/// returns whether any is defined. Throws when an input came from an op with no tangent rule.
bool input_tangents(const VarList& inputs, VarList& tangents);

/// Stores `tangent` (undefined: zero) as out's tangent at the open level; `op` names the rule in
/// the error when its shape or dtype is not out's.
void set_tangent(const Var& out, const Var& tangent, const char* op);

/// Whether tangent rules record their ops for reverse mode when grad mode is on (the default; a
/// transform that never differentiates tangents turns it off, Note [Forward mode]).
inline thread_local bool record_tangents = true;

/// Sets record_tangents in a scope.
class RecordTangentsGuard {
 public:
  explicit RecordTangentsGuard(bool enabled) : previous_(record_tangents) { record_tangents = enabled; }
  ~RecordTangentsGuard() { record_tangents = previous_; }
  RecordTangentsGuard(const RecordTangentsGuard&) = delete;
  RecordTangentsGuard& operator=(const RecordTangentsGuard&) = delete;

 private:
  bool previous_;
};

/// Suspends tangent propagation in a scope (tangent rules run under it).
class SuspendForward {
 public:
  SuspendForward() : level_(forward_level) { forward_level = 0; }
  ~SuspendForward() { forward_level = level_; }
  SuspendForward(const SuspendForward&) = delete;
  SuspendForward& operator=(const SuspendForward&) = delete;

 private:
  std::uint64_t level_;
};
}  // namespace detail

/// make_result with a tangent rule: rule(const VarList& tangents, const VarList& inputs) -> Var,
/// the output's tangent (undefined for zero) given the inputs' tangents (undefined where zero).
/// Outside forward mode this costs one thread-local read.
template <class TangentRule>
Var make_result(Tensor value, const char* name, VarList inputs, BackwardFn backward, TangentRule&& rule) {
  if (detail::forward_level == 0) return make_result(std::move(value), name, std::move(inputs), std::move(backward));
  VarList tangents;
  if (!detail::input_tangents(inputs, tangents))
    return make_result(std::move(value), name, std::move(inputs), std::move(backward));
  const VarList kept = inputs;
  Var out = make_result(std::move(value), name, std::move(inputs), std::move(backward));
  Var tangent;
  {
    const detail::SuspendForward suspend;
    const GradModeGuard recording(grad_mode_enabled() && detail::record_tangents);
    tangent = rule(std::as_const(tangents), kept);
  }
  detail::set_tangent(out, tangent, name);
  return out;
}

/// Anomaly mode: every op checks its forward output, and the engine every gradient, for NaN/Inf
/// and throws AnomalyError naming the op. Off by default (it costs a pass over each result).
void set_anomaly_mode(bool enabled);
bool anomaly_mode_enabled();

/// Thrown in anomaly mode when an op's forward or backward produced NaN or Inf.
class AnomalyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Number of Nodes alive in this process (for leak tests).
std::int64_t live_node_count();

/// Names of every differentiable primitive, registered by the op files (for test coverage).
const std::vector<std::string>& primitive_names();

namespace detail {
/// Registers a primitive name at static-initialisation time.
struct PrimitiveRegistrar {
  explicit PrimitiveRegistrar(const char* name);
};
}  // namespace detail

}  // namespace theta::autograd

/// Declares a differentiable primitive so the test suite can check that it is gradchecked.
#define THETA_PRIMITIVE(id, name) \
  static const ::theta::autograd::detail::PrimitiveRegistrar theta_primitive_registrar_##id(name)
