#pragma once
// Module: a container of named parameters (leaf Vars that require gradients), buffers (tensors
// that are state but not trained, e.g. BatchNorm's running statistics) and child modules.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"

namespace theta::nn {

using autograd::Var;

/// A named tensor, as stored in checkpoints and state lists.
using NamedTensor = std::pair<std::string, Tensor>;

class Module {
 public:
  virtual ~Module() = default;

  /// Applies the module to a batch.
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }

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

  /// Copies every parameter and buffer of `other` (same structure) into this module.
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

  /// After copy construction: replaces shared parameters, buffers and children with deep copies.
  void make_deep();

 private:
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
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
