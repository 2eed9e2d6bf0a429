#pragma once
// The reverse-mode engine: grad() returns gradients (functional), backward() accumulates them
// into leaves' .grad (training convenience).

#include <optional>
#include <vector>

#include "autograd/var.hpp"

namespace theta::autograd {

struct GradOptions {
  /// Record the backward pass so the returned gradients can be differentiated again.
  bool create_graph = false;
  /// Keep the graph's buffers after the pass (defaults to create_graph).
  std::optional<bool> retain_graph = std::nullopt;
  /// Return an undefined Var for an input the outputs do not depend on, instead of throwing.
  bool allow_unused = false;
};

/// Gradients of sum_i <grad_outputs[i], outputs[i]> with respect to each input.
/// grad_outputs may be empty only when every output has one element (it then defaults to 1).
/// Visits only nodes on a path from the outputs to the inputs.
std::vector<Var> grad(const std::vector<Var>& outputs, const std::vector<Var>& inputs,
                      const std::vector<Var>& grad_outputs = {}, GradOptions options = {});

/// grad() for one output and one input.
Var grad(const Var& output, const Var& input, GradOptions options = {});

/// Accumulates d(loss)/d(leaf) into leaf.grad() for every leaf that requires a gradient
/// (detached tensors: .grad never has history). loss must have one element unless
/// grad_output is given.
void backward(const Var& loss, const Var& grad_output = Var(), bool retain_graph = false);

}  // namespace theta::autograd
