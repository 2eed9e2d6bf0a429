#pragma once
// Test support: the op registry's table, one or more gradcheck cases per differentiable primitive
// and composite (op_registry_cases.cpp), and the memory layouts each case's inputs come in.

#include <string>
#include <vector>

#include "autograd/var.hpp"
#include "tensor/rng.hpp"
#include "tests/support/gradcheck.hpp"

namespace theta::test::op_registry {

using autograd::Var;
using theta::testing::GradFunction;

enum class Layout { contiguous, transposed, sliced, broadcast };

/// Printable name of a layout.
inline const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::sliced: return "sliced";
    case Layout::broadcast: return "broadcast";
  }
  return "?";
}

// Value sets that keep every case away from kinks and ties.
enum class Domain {
  real,      // normal(0, 1)
  positive,  // uniform [0.5, 2]: log, sqrt, rsqrt, reciprocal, pow bases, denominators
  distinct,  // +-(k + 0.5) * 0.1 for distinct k: distinct magnitudes, |x| >= 0.05, no ties
  grid,      // multiples of 0.1: at least 0.05 away from every `distinct` value
};

struct InputSpec {
  Shape shape;
  Domain domain = Domain::real;
};

struct OpCase {
  std::string op;  // primitive name (as registered) or composite name
  std::string label;
  std::vector<InputSpec> inputs;
  GradFunction f;
  std::vector<Layout> layouts = {Layout::contiguous, Layout::transposed, Layout::sliced, Layout::broadcast};
};

inline const std::vector<Layout> kNoBroadcast = {Layout::contiguous, Layout::transposed, Layout::sliced};
inline const std::vector<Layout> kContiguousOnly = {Layout::contiguous};


/// A tensor of `shape` with the given memory layout; its values come from `domain`.
/// transposed: a permuted view of a contiguous tensor of the reversed shape.
/// sliced: every other element (offset 1) along every axis of a tensor twice as large.
/// broadcast: a stride-0 expansion of axis 0 (all rows equal).
Tensor make_input(const InputSpec& spec, Layout layout, Rng& rng);

/// The op table, built once.
const std::vector<OpCase>& cases();

}  // namespace theta::test::op_registry
