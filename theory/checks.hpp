#pragma once
// Internal to theta_theory: argument checks shared by the theory API. Every numeric argument is
// checked to be finite (an infinite time or step size would loop forever or return NaN), and
// tensors that feed a kernel or an operator are checked for NaN and Inf (Note [Non-finite values]
// in checks.cpp).

#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"
#include "tensor/tensor.hpp"

namespace theta::theory::detail {

/// Throws std::invalid_argument "<op>: <name> must be finite, got <value>" for NaN or +-Inf.
void require_finite(double value, const char* op, const char* name);

/// Throws std::invalid_argument naming `op`, `name` and the shape when any element of `t` is NaN
/// or +-Inf.
void require_finite(const Tensor& t, const char* op, const char* name);

/// The model's named parameters, after checking that there is at least one and that none is
/// listed twice (a module registered twice): tools that hold one flat entry per listed element
/// would give a shared parameter two independent values. Throws std::invalid_argument naming op.
std::vector<std::pair<std::string, autograd::Var>> unshared_parameters(const nn::Module& model, const char* op);

/// Checks that v is a finite floating vector [size] (a flat parameter vector of a model with
/// `size` parameters): ShapeError or DTypeError naming op, name and v's shape, or
/// std::invalid_argument for NaN or Inf.
void require_parameter_vector(const Tensor& v, std::int64_t size, const char* op, const std::string& name);

}  // namespace theta::theory::detail
