#include "autograd/var.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "tensor/block_pool.hpp"

namespace theta::autograd {

namespace {
thread_local bool grad_mode = true;
std::atomic<bool> anomaly_mode{false};
std::atomic<std::int64_t> live_nodes{0};

// Note [Iterative graph destruction]
// Destroying the last Var of a long chain destroys its Node, which releases the previous Var,
// whose Node releases the one before... recursively, one stack frame pair per op: a 100k-op
// chain would overflow the stack. Node's destructor therefore moves its inputs onto a
// thread-local list; the outermost destructor drains that list in a loop.
thread_local std::vector<Var>* graveyard = nullptr;

bool has_non_finite(const Tensor& t) {
  if (!is_floating(t.dtype())) return false;
  for (double v : to_vector(t))
    if (!std::isfinite(v)) return true;
  return false;
}

std::vector<std::string>& registry() {
  static std::vector<std::string> names;
  return names;
}
}  // namespace

Var::Var(Tensor value, bool requires_grad) {
  THETA_CHECK(value.defined(), std::invalid_argument, "Var: value tensor is undefined");
  THETA_CHECK(!requires_grad || is_floating(value.dtype()), DTypeError,
              "Var: only floating tensors can require gradients, got ", dtype_name(value.dtype()));
  impl_ = make_pooled<VarImpl>(std::move(value), requires_grad);
}

void Var::throw_undefined() { THETA_THROW(std::logic_error, "Var: undefined"); }

std::ostream& operator<<(std::ostream& out, const Var& v) {
  if (!v.defined()) return out << "var(undefined)";
  std::string state;
  if (v.grad_fn()) state = std::string(", grad_fn=") + v.grad_fn()->name;
  else if (v.requires_grad()) state = ", requires_grad=true";
  print_tensor(out, v.value(), "var", state);
  return out;
}

const std::shared_ptr<Node>& Var::no_node() {
  static const std::shared_ptr<Node> none;
  return none;
}

const Tensor& Var::grad() const {
  THETA_CHECK(impl_, std::logic_error, "Var: undefined");
  return impl_->grad;
}

void Var::set_grad(const Tensor& g) const {
  THETA_CHECK(impl_, std::logic_error, "Var: undefined");
  THETA_CHECK(!g.defined() || g.shape() == shape(), ShapeError, "set_grad: gradient ",
              shape_str(g.shape()), " does not match value ", shape_str(shape()));
  THETA_CHECK(!g.defined() || g.dtype() == value().dtype(), DTypeError, "set_grad: gradient ", dtype_name(g.dtype()),
              " ", shape_str(g.shape()), " does not match value ", dtype_name(value().dtype()), " ",
              shape_str(shape()));
  impl_->grad = g;
}

void Var::zero_grad() const {
  if (impl_) impl_->grad = Tensor();
}

Var Var::detach() const { return Var(value(), false); }

void Var::set_requires_grad(bool enabled) const {
  THETA_CHECK(impl_, std::logic_error, "Var: undefined");
  THETA_CHECK(is_leaf(), std::logic_error,
              "set_requires_grad: only leaves can change requires_grad; use detach()");
  THETA_CHECK(!enabled || is_floating(value().dtype()), DTypeError,
              "set_requires_grad: only floating tensors can require gradients, got ",
              dtype_name(value().dtype()));
  impl_->requires_grad = enabled;
}

Node::Node(const char* op_name, VarList op_inputs, BackwardFn fn)
    : name(op_name), inputs(std::move(op_inputs)), input_versions(inputs.size()), backward(std::move(fn)) {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    input_versions[i] = inputs[i].defined() ? inputs[i].value().storage()->version() : 0;
  live_nodes.fetch_add(1, std::memory_order_relaxed);
}

Node::~Node() {
  live_nodes.fetch_sub(1, std::memory_order_relaxed);
  const bool outermost = graveyard == nullptr;
  std::vector<Var> local;
  if (outermost) graveyard = &local;
  for (auto& in : inputs) graveyard->push_back(std::move(in));
  backward = nullptr;
  backward_into = nullptr;
  if (!outermost) return;
  while (!local.empty()) {
    Var v = std::move(local.back());
    local.pop_back();
  }  // each destroyed Var may push more inputs onto `local`
  graveyard = nullptr;
}

Var make_result(Tensor value, const char* name, VarList inputs, BackwardFn backward) {
  if (anomaly_mode.load(std::memory_order_relaxed) && has_non_finite(value))
    throw AnomalyError(std::string("anomaly: forward of ") + name + " produced NaN or Inf");
  bool any = false;
  if (grad_mode)
    for (const auto& in : inputs) any = any || in.requires_grad();
  Var out(std::move(value), false);
  if (detail::forward_level != 0)
    for (const auto& in : inputs)
      if (in.defined() && in.impl_->tangent_level == detail::forward_level &&
          (in.impl_->tangent.defined() || in.impl_->missing_tangent != nullptr)) {
        // A rule-carrying make_result overwrites this with the tangent (Note [Forward mode]).
        out.impl_->tangent_level = detail::forward_level;
        out.impl_->missing_tangent = name;
        break;
      }
  if (!any) return out;
  out.impl_->requires_grad = true;
  out.impl_->grad_fn = make_pooled<Node>(name, std::move(inputs), std::move(backward));
  return out;
}

namespace detail {
bool input_tangents(const VarList& inputs, VarList& tangents) {
  tangents = VarList(inputs.size());
  bool any = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Var& in = inputs[i];
    if (!in.defined() || in.id()->tangent_level != forward_level) continue;
    THETA_CHECK(in.id()->missing_tangent == nullptr, std::logic_error, "forward mode: the op ",
                in.id()->missing_tangent, " has no tangent rule, so the tangent of its output ",
                shape_str(in.shape()), " is unknown");
    tangents[i] = in.id()->tangent;
    any = any || tangents[i].defined();
  }
  return any;
}

void set_tangent(const Var& out, const Var& tangent, const char* op) {
  THETA_ASSERT(out.defined() && forward_level != 0);
  if (tangent.defined()) {
    THETA_CHECK(tangent.shape() == out.shape() && tangent.dtype() == out.dtype(), InternalError,
                "tangent rule of ", op, " returned ", dtype_name(tangent.dtype()), " ",
                shape_str(tangent.shape()), " for an output ", dtype_name(out.dtype()), " ",
                shape_str(out.shape()));
  }
  VarImpl* impl = out.id();
  impl->tangent = tangent;
  impl->tangent_level = forward_level;
  impl->missing_tangent = nullptr;
}
}  // namespace detail

bool grad_mode_enabled() { return grad_mode; }
void set_grad_mode(bool enabled) { grad_mode = enabled; }

void set_anomaly_mode(bool enabled) { anomaly_mode.store(enabled); }
bool anomaly_mode_enabled() { return anomaly_mode.load(); }

std::int64_t live_node_count() { return live_nodes.load(); }

const std::vector<std::string>& primitive_names() { return registry(); }

namespace detail {
PrimitiveRegistrar::PrimitiveRegistrar(const char* name) {
  auto& r = registry();
  if (std::find(r.begin(), r.end(), name) == r.end()) r.emplace_back(name);
}
}  // namespace detail

}  // namespace theta::autograd
