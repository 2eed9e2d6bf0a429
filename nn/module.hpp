#pragma once
// Module: a container of named parameters (leaf Vars that require gradients), buffers (tensors
// that are state but not trained, e.g. BatchNorm's running statistics) and child modules.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"

namespace theta::nn {

using autograd::Var;

/// A named tensor, as stored in checkpoints and state lists.
using NamedTensor = std::pair<std::string, Tensor>;

class Module;

/// Called after a module's forward pass with the module, its input and its output.
using ForwardHook = std::function<void(Module& module, const Var& input, const Var& output)>;

namespace detail {
struct HookList;
}

/// Owns one registered forward hook and removes it when destroyed (or on remove()). Move-only;
/// outliving the module is safe.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<detail::HookList> list, std::uint64_t id) : list_(std::move(list)), id_(id) {}
  HookHandle(HookHandle&& other) noexcept;
  HookHandle& operator=(HookHandle&& other) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() { remove(); }
  /// Unregisters the hook now (no effect when already removed).
  void remove();

 private:
  std::weak_ptr<detail::HookList> list_;
  std::uint64_t id_ = 0;
};

class Module {
 public:
  virtual ~Module() = default;

  /// The module's computation on a batch. Call the module through operator(), which also runs
  /// its forward hooks; containers apply their children that way.
  virtual Var forward(const Var& x) = 0;
  /// forward(x), then every forward hook in registration order (Note [Forward hooks]).
  Var operator()(const Var& x);

  /// Registers `hook` to run after every call of this module through operator(); it stays
  /// registered while the returned handle lives. Hooks see the module itself, not its children
  /// (register on a child to observe it).
  [[nodiscard]] HookHandle register_forward_hook(ForwardHook hook);

  /// This module and every descendant, depth first, named like parameters ("" for this one,
  /// "layers.0", ...). A module registered twice appears twice.
  std::vector<std::pair<std::string, Module*>> named_modules();

  /// A deep copy: same configuration, parameters and buffers copied, nothing shared.
  virtual std::unique_ptr<Module> clone() const = 0;

  /// Parameters in registration order, children's prefixed "child.": "layers.0.weight".
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  /// Buffers, named like parameters.
  std::vector<NamedTensor> named_buffers() const;
  /// Total number of scalar parameters.
  std::int64_t parameter_count() const;

  /// Drops every parameter's accumulated gradient.
  void zero_grad() const;

  /// Training mode (the default) or evaluation mode, recursively.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  /// Copies every parameter and buffer of `other` into this module. Both must list the same names
  /// with the same shapes and dtypes (ShapeError or DTypeError otherwise, before anything is copied).
  void copy_state_from(const Module& other);

  /// Human-readable one-line description (for logs).
  virtual std::string describe() const = 0;

 protected:
  Module() = default;
  Module(const Module&) = default;
  Module& operator=(const Module&) = default;

  /// Registers a trainable parameter; returns its index for param().
  std::size_t register_parameter(std::string name, Tensor value);
  /// Registers a buffer; returns its index for buffer().
  std::size_t register_buffer(std::string name, Tensor value);
  /// Registers a child module; returns its index for child().
  std::size_t register_module(std::string name, std::shared_ptr<Module> module);

  const Var& param(std::size_t index) const { return params_[index].second; }
  Tensor& buffer(std::size_t index) { return buffers_[index].second; }
  const Tensor& buffer(std::size_t index) const { return buffers_[index].second; }
  Module& child(std::size_t index) const { return *children_[index].second; }
  std::size_t child_count() const { return children_.size(); }

  /// After copy construction: replaces shared parameters, buffers and children with deep copies
  /// (the copy has no forward hooks).
  void make_deep();

 private:
  friend Var functional_call(Module& module, const std::vector<Var>& params, const Var& x, const char* op);
  /// Every parameter slot of this module and its descendants, in named_parameters() order.
  void collect_parameter_slots(std::vector<Var*>& out);

  std::vector<std::pair<std::string, Var>> params_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::shared_ptr<detail::HookList> hooks_;  // null until the first hook is registered
};

/// Runs module(x) with its parameters replaced, for this call only, by `params` (one Var per
/// named parameter, in named_parameters() order, same shapes and dtypes; typically fresh leaves).
/// The module's own forward runs, with its buffers as they are, so the result is differentiable
/// with respect to `params` through exactly the graph that training differentiates. The module's
/// parameters are restored on return, also when forward throws. Not for concurrent use of the
/// same module from several threads. `op` names the caller in errors about `params` (module_loss
/// passes its own name).
Var functional_call(Module& module, const std::vector<Var>& params, const Var& x,
                    const char* op = "functional_call");

/// Saves a module's buffers (BatchNorm running statistics, ...) and, when it goes out of scope,
/// restores those that were written meanwhile: for evaluating a module without side effects.
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const Module& module);
  ~BufferSnapshot();
  /// Keeps the buffers as they are now: nothing is restored.
  void discard() { saved_.clear(); }
  BufferSnapshot(const BufferSnapshot&) = delete;
  BufferSnapshot& operator=(const BufferSnapshot&) = delete;

 private:
  struct Saved {
    Tensor buffer;          // the module's buffer (shares its storage)
    Tensor values;          // a copy of its values
    std::uint64_t version;  // its storage version when saved
  };
  std::vector<Saved> saved_;
};

/// CRTP helper implementing clone() by copy construction + make_deep().
template <class Derived> class Cloneable : public Module {
 public:
  std::unique_ptr<Module> clone() const override {
    auto copy = std::make_unique<Derived>(static_cast<const Derived&>(*this));
    copy->make_deep();
    return copy;
  }
};

}  // namespace theta::nn
