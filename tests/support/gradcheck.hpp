#pragma once
// Finite-difference checks of first and second derivatives of autograd functions.
//
// gradcheck compares the analytic Jacobian of f (one backward pass per output element with a
// one-hot cotangent, plus one VJP with a random cotangent) against central differences.
// gradgradcheck compares the derivative of the recorded VJP (create_graph) with respect to the
// inputs and to the cotangent against central differences of the first-order VJP.
// Both evaluate the analytic side on the caller's tensors exactly as laid out (transposed,
// sliced and expanded views reach the ops), and perturb contiguous copies for the numerical
// side, so the caller's tensors are never written to.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/var.hpp"
#include "tensor/tensor.hpp"

namespace theta::testing {

/// A function under test: any number of inputs, one output of any shape.
using GradFunction = std::function<autograd::Var(const std::vector<autograd::Var>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  /// Seed of the random cotangents.
  std::uint64_t seed = 0x5eed;
};

struct GradcheckResult {
  bool ok = true;
  /// Largest |analytic - numerical| over every compared element.
  double max_error = 0.0;
  /// Empty when ok; otherwise names the worst element: which derivative, input and index.
  std::string message;
};

/// Checks d f / d inputs against central differences (float64 inputs of any layout).
GradcheckResult gradcheck(const GradFunction& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

/// Checks the derivative of the VJP u -> J(x)^T u with respect to x and u against central
/// differences of the first-order VJP, at a fixed random cotangent u.
GradcheckResult gradgradcheck(const GradFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

}  // namespace theta::testing
