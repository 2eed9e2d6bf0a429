#include "nn/module.hpp"

#include <algorithm>

namespace theta::nn {

// Note [Forward hooks]
// A hook observes a module from outside: theory registers hooks on the layers whose structure it
// exploits (the structured NTK reads a Linear layer's input and output), instead of layers
// reporting to a side channel. The list lives behind a shared_ptr so that a handle can outlive
// its module (weak_ptr), and operator() iterates over a copy, so a hook may remove itself or
// register another while it runs; such changes take effect from the next call. A hook that
// throws propagates its exception out of operator() and leaves the module as it was.
namespace detail {
struct HookList {
  std::vector<std::pair<std::uint64_t, ForwardHook>> hooks;
  std::uint64_t next_id = 1;
};
}  // namespace detail

HookHandle::HookHandle(HookHandle&& other) noexcept : list_(std::move(other.list_)), id_(other.id_) {
  other.list_.reset();
}

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    remove();
    list_ = std::move(other.list_);
    id_ = other.id_;
    other.list_.reset();
  }
  return *this;
}

void HookHandle::remove() {
  if (const auto list = list_.lock())
    std::erase_if(list->hooks, [this](const auto& entry) { return entry.first == id_; });
  list_.reset();
}

Var Module::operator()(const Var& x) {
  Var y = forward(x);
  if (hooks_ && !hooks_->hooks.empty()) {
    const auto hooks = hooks_->hooks;  // a copy: hooks may add or remove hooks
    for (const auto& [id, hook] : hooks) hook(*this, x, y);
  }
  return y;
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  THETA_CHECK(static_cast<bool>(hook), std::invalid_argument, "register_forward_hook: empty hook for ", describe());
  if (!hooks_) hooks_ = std::make_shared<detail::HookList>();
  const std::uint64_t id = hooks_->next_id++;
  hooks_->hooks.emplace_back(id, std::move(hook));
  return HookHandle(hooks_, id);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, c] : children_)
    for (auto& [sub, m] : c->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out = params_;
  for (const auto& [name, c] : children_)
    for (auto& [sub, p] : c->named_parameters()) out.emplace_back(name + "." + sub, p);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out = buffers_;
  for (const auto& [name, c] : children_)
    for (auto& [sub, b] : c->named_buffers()) out.emplace_back(name + "." + sub, b);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void Module::zero_grad() const {
  for (const auto& p : parameters()) p.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, c] : children_) c->train(on);
}

namespace {

// Entry i of `mine` and `theirs` must agree in name, shape and dtype; `kind` names them in errors.
template <class Entry, class ValueOf>
void check_same_entries(const std::vector<Entry>& mine, const std::vector<Entry>& theirs, const char* kind,
                        ValueOf value_of) {
  THETA_CHECK(mine.size() == theirs.size(), ShapeError, "copy_state_from: ", theirs.size(), " ", kind,
              "s given for a module with ", mine.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    const Tensor& a = value_of(mine[i].second);
    const Tensor& b = value_of(theirs[i].second);
    THETA_CHECK(mine[i].first == theirs[i].first && a.shape() == b.shape(), ShapeError, "copy_state_from: ", kind,
                " ", mine[i].first, " ", shape_str(a.shape()), " does not match ", theirs[i].first, " ",
                shape_str(b.shape()));
    THETA_CHECK(a.dtype() == b.dtype(), DTypeError, "copy_state_from: ", kind, " ", mine[i].first, " is ",
                dtype_name(a.dtype()), ", the source's ", dtype_name(b.dtype()));
  }
}

}  // namespace

void Module::copy_state_from(const Module& other) {
  const auto mine = named_parameters();
  const auto theirs = other.named_parameters();
  const auto my_buffers = named_buffers();
  const auto their_buffers = other.named_buffers();
  // Everything is checked before anything is copied: a refused copy leaves this module as it was.
  check_same_entries(mine, theirs, "parameter", [](const Var& v) -> const Tensor& { return v.value(); });
  check_same_entries(my_buffers, their_buffers, "buffer", [](const Tensor& t) -> const Tensor& { return t; });
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i].second.value().copy_(theirs[i].second.value());
  for (std::size_t i = 0; i < my_buffers.size(); ++i) my_buffers[i].second.copy_(their_buffers[i].second);
}

std::size_t Module::register_parameter(std::string name, Tensor value) {
  params_.emplace_back(std::move(name), Var(std::move(value), true));
  return params_.size() - 1;
}

std::size_t Module::register_buffer(std::string name, Tensor value) {
  buffers_.emplace_back(std::move(name), std::move(value));
  return buffers_.size() - 1;
}

std::size_t Module::register_module(std::string name, std::shared_ptr<Module> module) {
  THETA_CHECK(module != nullptr, std::invalid_argument, "register_module: ", name, " is null");
  children_.emplace_back(std::move(name), std::move(module));
  return children_.size() - 1;
}

void Module::make_deep() {
  for (auto& [name, p] : params_) p = Var(p.value().clone(), true);
  for (auto& [name, b] : buffers_) b = b.clone();
  for (auto& [name, c] : children_) c = std::shared_ptr<Module>(c->clone());
  hooks_.reset();
}

void Module::collect_parameter_slots(std::vector<Var*>& out) {
  for (auto& [name, p] : params_) out.push_back(&p);
  for (auto& [name, c] : children_) c->collect_parameter_slots(out);
}

Var functional_call(Module& module, const std::vector<Var>& params, const Var& x, const char* op) {
  std::vector<Var*> slots;
  module.collect_parameter_slots(slots);
  THETA_CHECK(params.size() == slots.size(), ShapeError, op, ": ", params.size(),
              " parameters given for ", module.describe(), ", which has ", slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Var& given = params[i];
    THETA_CHECK(given.defined() && given.shape() == slots[i]->shape() && given.dtype() == slots[i]->dtype(),
                ShapeError, op, ": parameter ", i, " must be ", dtype_name(slots[i]->dtype()), " ",
                shape_str(slots[i]->shape()), ", got ",
                given.defined() ? dtype_name(given.dtype()) + std::string(" ") + shape_str(given.shape())
                                : std::string("an undefined Var"));
    // A module registered twice has one parameter under two names: both must get the same Var.
    for (std::size_t j = 0; j < i; ++j)
      THETA_CHECK(slots[j] != slots[i] || params[j].id() == given.id(), std::invalid_argument, op,
                  ": parameters ", j, " and ", i, " are one parameter (a module registered twice); "
                  "pass the same Var for both");
  }
  // Swaps the given Vars in; the destructor swaps the module's own back (in reverse order, so a
  // slot listed twice ends with its own Var), also on an exception.
  struct Swap {
    std::vector<Var*>& slots;
    std::vector<Var> held;
    ~Swap() {
      for (std::size_t i = slots.size(); i-- > 0;) std::swap(*slots[i], held[i]);
    }
  } swap{slots, params};
  for (std::size_t i = 0; i < slots.size(); ++i) std::swap(*slots[i], swap.held[i]);
  return module(x);
}

BufferSnapshot::BufferSnapshot(const Module& module) {
  for (const auto& [name, buffer] : module.named_buffers())
    saved_.push_back({buffer, buffer.clone(), buffer.storage()->version()});
}

// Only buffers that were written are restored: an untouched buffer may be part of a recorded
// graph (BatchNorm in eval mode reads its running statistics), and writing it would invalidate
// that graph.
BufferSnapshot::~BufferSnapshot() {
  for (const auto& s : saved_)
    if (s.buffer.storage()->version() != s.version) s.buffer.copy_(s.values);
}

}  // namespace theta::nn
