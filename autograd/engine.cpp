#include "autograd/engine.hpp"

#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "autograd/ops.hpp"

namespace theta::autograd {

namespace {

// Note [Saved tensor versions]
// A Node records the storage version of each input when the op runs; in-place writes
// (Tensor::copy_, fill_, optimizer updates) bump it. A backward that would read a changed input
// throws instead of returning a silently wrong gradient.
void check_versions(const Node& node) {
  for (std::size_t i = 0; i < node.inputs.size(); ++i) {
    const Var& in = node.inputs[i];
    if (!in.defined()) continue;
    const std::uint64_t now = in.value().storage()->version();
    THETA_CHECK(now == node.input_versions[i], std::logic_error, "backward of ", node.name,
                ": input ", i, " ", shape_str(in.shape()),
                " was modified in place after the op used it (version ", node.input_versions[i],
                " -> ", now, "); clone it before modifying");
  }
}

void check_finite_gradient(const Var& g, const Node& node, std::size_t input) {
  for (double v : to_vector(g.value()))
    if (!std::isfinite(v))
      throw AnomalyError(std::string("anomaly: backward of ") + node.name +
                         " produced NaN or Inf in the gradient of input " + std::to_string(input));
}

// Slot index of each VarImpl in a pass: open addressing with linear probing over a power-of-two
// table (a pass touches tens to thousands of impls; std::unordered_map would allocate per entry).
class SlotMap {
 public:
  static constexpr std::size_t kUnset = static_cast<std::size_t>(-1);

  SlotMap() : entries_(64) {}

  /// Adds `key` with slot kUnset; false when it is already present.
  bool insert(VarImpl* key) {
    if (2 * (count_ + 1) > entries_.size()) grow();
    Entry& e = entries_[find(key)];
    if (e.key == key) return false;
    e = {key, kUnset};
    ++count_;
    return true;
  }

  /// The slot of a key that was inserted.
  std::size_t& at(VarImpl* key) { return checked(key).slot; }
  std::size_t at(VarImpl* key) const { return checked(key).slot; }

 private:
  struct Entry {
    VarImpl* key = nullptr;
    std::size_t slot = kUnset;
  };

  // Index of the entry holding `key`, or of the empty entry where it belongs.
  std::size_t find(const VarImpl* key) const {
    const std::size_t mask = entries_.size() - 1;
    // Fibonacci hashing of the address: the low bits of heap pointers carry no information.
    std::size_t i = (reinterpret_cast<std::uintptr_t>(key) * 0x9E3779B97F4A7C15ull) >> 20 & mask;
    while (entries_[i].key != nullptr && entries_[i].key != key) i = (i + 1) & mask;
    return i;
  }

  Entry& checked(const VarImpl* key) { return const_cast<Entry&>(std::as_const(*this).checked(key)); }
  const Entry& checked(const VarImpl* key) const {
    const Entry& e = entries_[find(key)];
    THETA_ASSERT(e.key == key);
    return e;
  }

  void grow() {
    std::vector<Entry> old(entries_.size() * 2);
    old.swap(entries_);
    for (const Entry& e : old)
      if (e.key) entries_[find(e.key)] = e;
  }

  std::vector<Entry> entries_;
  std::size_t count_ = 0;
};

// One backward pass over the graph: every VarImpl reachable from the outputs through inputs that
// require grad gets a slot; per-slot state lives in flat vectors (one hash lookup per edge).
struct Pass {
  std::vector<Var> order;            // post-order: inputs before their users (owned, Note [Releasing inputs])
  SlotMap slot;                      // position in `order`
  const char* released = nullptr;    // the first released Node met, if any
};

[[noreturn]] void throw_released(const char* op) {
  THETA_THROW(std::logic_error, "backward through ", op,
              " a second time: its buffers were freed by the first backward; pass retain_graph (or "
              "create_graph) to the first call");
}

// Iterative DFS from the outputs; children are the inputs of each impl's Node.
Pass topological_order(const std::vector<Var>& outputs) {
  Pass pass;
  // An impl enters `slot` when first reached (slot unset) and gets its position when its inputs
  // are done: one table serves as both the visited set and the slot index.
  struct Frame {
    const Var* var;
    std::size_t next_child;
  };
  std::vector<Frame> stack;
  stack.reserve(32);
  pass.order.reserve(64);
  for (const Var& out : outputs) {
    if (!out.requires_grad() || !pass.slot.insert(out.id())) continue;
    stack.push_back({&out, 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      const auto& fn = f.var->grad_fn();
      // A released Node has no inputs left to walk (Note [Releasing inputs]); a pass that needed
      // them reports it.
      if (fn && fn->released && f.next_child == 0 && !pass.released) pass.released = fn->name;
      if (fn && f.next_child < fn->inputs.size()) {
        const Var& child = fn->inputs[f.next_child++];
        if (child.requires_grad() && pass.slot.insert(child.id())) stack.push_back({&child, 0});
        continue;
      }
      pass.slot.at(f.var->id()) = pass.order.size();
      pass.order.push_back(*f.var);
      stack.pop_back();
    }
  }
  return pass;
}

void accumulate(Var& acc, const Var& g) { acc = acc.defined() ? add(acc, g) : g; }

// Note [Accumulating backward]
// A gradient slot that already holds a contribution gets the next one added. For a product
// (matmul, linear) the addition can be the gemm's own: the rule's backward_into form writes into
// the slot's tensor with beta 1 (Note [Accumulating gemm]) instead of forming the product and
// adding it. The engine offers a slot's tensor only when nothing else can see it: the pass
// records no graph, the Var is a constant held by this slot alone, its storage is referenced by
// that Var alone (not a caller's grad_output, not a view shared with another slot). Anomaly mode
// checks each contribution, and in forward mode the contributions carry tangents (Note [Forward
// mode]), so both take the plain form.
bool offer_buffer(const Var& slot_grad) {
  return slot_grad.defined() && slot_grad.use_count() == 1 && slot_grad.is_leaf() &&
         slot_grad.value().storage().use_count() == 1;
}

// The input gradients of `fn` for this pass: the accumulating form when it exists and some slot
// can take its contribution in place, the plain backward otherwise.
VarList node_backward(const Var& g, const Node& fn, const InputMask& needs, std::vector<Var>& grads,
                      const InlineList<std::size_t, 4>& input_slots, bool accumulate_in_place) {
  if (accumulate_in_place && fn.backward_into) {
    GradBuffers into(fn.inputs.size());
    bool offered = false;
    for (std::size_t i = 0; i < into.size(); ++i)
      if (needs[i] && offer_buffer(grads[input_slots[i]])) {
        into[i] = grads[input_slots[i]].value();
        offered = true;
      }
    if (offered) return fn.backward_into(g, fn, needs, into);
  }
  return fn.backward(g, fn, needs);
}

// Note [Releasing inputs]
// A pass that does not retain the graph drops each Node's inputs once its backward has run, so
// the activations (and, in forward mode, their tangents) a backward rule read are freed as the
// pass moves down the graph instead of when the caller drops the output. The pass holds its own
// handle to every Var it visits (pass.order) and drops each once its slot is done, so a Var
// stays valid until then whichever Node held it; targets are returned as Vars, so a leaf the
// graph alone held stays alive for the caller.
void release_inputs(Node& fn) { fn.inputs = VarList(); }

// The shared core of grad() and backward(): the gradient of every impl in `targets` (or of every
// leaf when `all_leaves`), as (target, gradient) pairs.
std::vector<std::pair<Var, Var>> run_backward(const std::vector<Var>& outputs,
                                                   const std::vector<Var>& grad_outputs,
                                                   const std::unordered_set<VarImpl*>& targets,
                                                   bool all_leaves, bool create_graph, bool retain_graph) {
  Pass pass = topological_order(outputs);
  const std::size_t count = pass.order.size();
  auto slot_of = [&](const Var& v) { return pass.slot.at(v.id()); };

  // is_target[s]: a requested gradient; needed[s]: a target is reachable from s.
  std::vector<char> is_target(count, 0), needed(count, 0);
  for (std::size_t s = 0; s < count; ++s) {  // children come before parents in post-order
    const Var& var = pass.order[s];
    is_target[s] = (!targets.empty() && targets.count(var.id()) > 0) || (all_leaves && var.is_leaf());
    bool need = is_target[s];
    if (const auto& fn = var.grad_fn())
      for (const Var& in : fn->inputs)
        if (in.requires_grad() && needed[slot_of(in)]) need = true;
    needed[s] = need;
  }

  GradModeGuard mode(create_graph);
  std::vector<Var> grads(count);
  for (std::size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].requires_grad()) accumulate(grads[slot_of(outputs[i])], grad_outputs[i]);

  const bool anomaly = anomaly_mode_enabled();
  // In forward mode gradients carry tangents, which an in-place accumulation would drop.
  const bool in_place = !create_graph && !anomaly && detail::forward_level == 0;
  bool reached_target = false;
  for (std::size_t s = 0; s < count; ++s) reached_target = reached_target || (is_target[s] && needed[s]);
  if (pass.released && !reached_target) throw_released(pass.released);
  std::vector<std::pair<Var, Var>> result;
  result.reserve(16);
  for (std::size_t s = count; s-- > 0;) {
    const Var var = std::move(pass.order[s]);  // nothing reads this slot's Var after this iteration
    if (!needed[s] || !grads[s].defined()) continue;
    const Var g = std::move(grads[s]);  // free intermediate gradients as soon as they are consumed
    grads[s] = Var();
    if (is_target[s]) result.emplace_back(var, g);
    const auto& fn = var.grad_fn();
    if (!fn) continue;
    if (fn->released) throw_released(fn->name);
    check_versions(*fn);
    InputMask needs(fn->inputs.size());
    InlineList<std::size_t, 4> input_slots(fn->inputs.size());
    for (std::size_t i = 0; i < needs.size(); ++i) {
      needs[i] = fn->inputs[i].requires_grad() && needed[slot_of(fn->inputs[i])];
      if (needs[i]) input_slots[i] = slot_of(fn->inputs[i]);
    }
    VarList in_grads;
    try {
      in_grads = node_backward(g, *fn, needs, grads, input_slots, in_place);
    } catch (const AnomalyError& e) {  // name the node whose backward failed, not the inner op
      throw AnomalyError(std::string("anomaly: in the backward of ") + fn->name + ": " + e.what());
    }
    THETA_ASSERT(in_grads.size() == fn->inputs.size());
    for (std::size_t i = 0; i < in_grads.size(); ++i) {
      if (!needs[i] || !in_grads[i].defined()) continue;
      const Var& in = fn->inputs[i];
      THETA_CHECK(in_grads[i].shape() == in.shape(), InternalError, "backward of ", fn->name,
                  " returned a gradient of shape ", shape_str(in_grads[i].shape()), " for input ",
                  i, " of shape ", shape_str(in.shape()));
      if (anomaly) check_finite_gradient(in_grads[i], *fn, i);
      accumulate(grads[slot_of(in)], in_grads[i]);
    }
    if (!retain_graph) {
      fn->backward = nullptr;
      fn->backward_into = nullptr;
      fn->released = true;
      release_inputs(*fn);
    }
  }
  return result;
}

std::vector<Var> default_grad_outputs(const std::vector<Var>& outputs,
                                      const std::vector<Var>& grad_outputs, const char* op) {
  if (grad_outputs.empty()) {
    std::vector<Var> ones_list;
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      THETA_CHECK(outputs[i].numel() == 1, ShapeError, op, ": output ", i, " has shape ",
                  shape_str(outputs[i].shape()),
                  "; a non-scalar output needs an explicit grad_output");
      ones_list.emplace_back(ones(outputs[i].shape(), outputs[i].dtype()));
    }
    return ones_list;
  }
  THETA_CHECK(grad_outputs.size() == outputs.size(), ShapeError, op, ": ",
              grad_outputs.size(), " grad_outputs for ", outputs.size(), " outputs");
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    THETA_CHECK(grad_outputs[i].defined(), std::invalid_argument, op, ": grad_output ", i,
                " is undefined");
    THETA_CHECK(grad_outputs[i].shape() == outputs[i].shape(), ShapeError, op, ": grad_output ",
                i, " has shape ", shape_str(grad_outputs[i].shape()), " but output ", i, " has ",
                shape_str(outputs[i].shape()));
    THETA_CHECK(grad_outputs[i].dtype() == outputs[i].dtype(), DTypeError, op, ": grad_output ",
                i, " is ", dtype_name(grad_outputs[i].dtype()), " but output ", i, " is ",
                dtype_name(outputs[i].dtype()));
  }
  return grad_outputs;
}

}  // namespace

std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Var>& grad_outputs, GradOptions options) {
  THETA_CHECK(!outputs.empty(), std::invalid_argument, "grad: no outputs given");
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    THETA_CHECK(outputs[i].defined(), std::invalid_argument, "grad: output ", i, " is undefined");
    THETA_CHECK(outputs[i].requires_grad(), std::invalid_argument, "grad: output ", i,
                " does not require grad (no input of its computation requires grad, or it was "
                "computed under NoGradGuard)");
  }
  std::unordered_set<VarImpl*> targets;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    THETA_CHECK(inputs[i].defined(), std::invalid_argument, "grad: input ", i, " is undefined");
    THETA_CHECK(inputs[i].requires_grad(), std::invalid_argument, "grad: input ", i,
                " does not require grad");
    targets.insert(inputs[i].id());
  }
  const auto gos = default_grad_outputs(outputs, grad_outputs, "grad");
  const bool retain = options.retain_graph.value_or(options.create_graph);
  std::unordered_map<VarImpl*, Var> result;
  for (auto& [target, g] : run_backward(outputs, gos, targets, false, options.create_graph, retain))
    result.emplace(target.id(), std::move(g));
  std::vector<Var> out;
  out.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto it = result.find(inputs[i].id());
    if (it == result.end()) {
      THETA_CHECK(options.allow_unused, std::invalid_argument, "grad: input ", i, " ",
                  shape_str(inputs[i].shape()),
                  " is not reachable from the outputs (pass allow_unused to get an undefined "
                  "gradient instead)");
      out.emplace_back();
    } else {
      out.push_back(it->second);
    }
  }
  return out;
}

Var grad(const Var& output, const Var& input, GradOptions options) {
  return grad(std::vector<Var>{output}, std::vector<Var>{input}, {}, options).front();
}

void backward(const Var& loss, const Var& grad_output, bool retain_graph) {
  THETA_CHECK(loss.defined() && loss.requires_grad(), std::invalid_argument,
              "backward: the loss does not require grad");
  std::vector<Var> gos;
  if (grad_output.defined()) gos.push_back(grad_output);
  gos = default_grad_outputs({loss}, gos, "backward");
  auto result = run_backward({loss}, gos, {}, true, false, retain_graph);
  for (auto& [leaf, g] : result) {
    VarImpl* impl = leaf.id();
    if (impl->grad_fn) continue;
    const Tensor gv = g.value();
    // g may be the caller's grad_output or shared with another leaf's gradient: copy it unless
    // this pass holds the only handles to it (one Var, whose value and gv share the storage).
    const bool exclusive = g.use_count() == 1 && gv.storage().use_count() <= 2;
    impl->grad = impl->grad.defined() ? add(impl->grad, gv) : exclusive ? gv : gv.clone();
  }
}

}  // namespace theta::autograd
