#pragma once
// Internal to theta_theory: the passes theory makes over a model. One forward pass that records,
// through forward hooks, every single-use layer with a structured-Jacobian rule (its input, its
// output, its rule; Note [Structured Jacobians] in nn/structured.hpp), per-sample Jacobian rows
// for the parameters outside such layers, and the checks every per-sample tool runs first. The
// structured NTK (ntk.cpp) and the per-sample gradients (per_sample.cpp) are built on these.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "nn/module.hpp"
#include "nn/structured.hpp"

namespace theta::theory::detail {

using autograd::Var;

/// One call of a layer with a structured-Jacobian rule, as its forward hook saw it.
struct StructuredCall {
  nn::Module* layer = nullptr;
  const nn::StructuredLayer* rule = nullptr;
  Var input{};   // a:[n, in]
  Var output{};  // y:[n, out]
};

struct Captured {
  Var output{};                                             // f(x): [n, O]
  std::vector<StructuredCall> layers{};                     // single-use structured layers
  std::vector<std::pair<std::string, Var>> other_params{};  // everything else
};

/// Runs `model` on x [n, d] and records its single-use structured layers; returns f(x) [n, O].
/// Checks x and the parameters for NaN/Inf and, unless check_samples is false (a caller that
/// checked an earlier block of the same batch), the model for sample independence (a forward
/// pass of two samples); `op` names the caller in errors.
Var forward_captured(nn::Module& model, const Tensor& x, Captured& out, const char* op, bool check_samples = true);

/// The model's named parameters with each parameter once: a module registered twice in the tree
/// (shared weights) lists its parameters under both names, and a kernel must count them once.
std::vector<std::pair<std::string, Var>> unique_parameters(const nn::Module& model);

/// Total element count of `params`.
std::int64_t numel_of(const std::vector<std::pair<std::string, Var>>& params);

/// Per-sample Jacobian rows [count * O, P] of samples [begin, begin + count) for `params`
/// (named parameters of `model`, in order), one forward pass per sample.
Tensor jacobian_rows(nn::Module& model, const Tensor& x, std::int64_t begin, std::int64_t count,
                     const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs);

/// How many samples' Jacobian rows fit in max_bytes (two chunks live at a time), in [1, n].
std::int64_t samples_per_chunk(std::int64_t max_bytes, std::int64_t outputs, std::int64_t p_total, std::int64_t n);

struct OutputInfo {
  std::int64_t outputs = 0;  // O
  DType dtype = DType::f64;
};

/// Checks x:[n, d] (n > 0, finite), the parameters (finite) and the model's sample independence
/// with one forward pass of the batch without recording a graph; returns the output width O and
/// dtype. `op` names the caller in errors.
OutputInfo checked_output_info(nn::Module& model, const Tensor& x, const char* op);

/// Throws unless the model treats samples independently: row 0 of `batch_output` (the model on
/// all of x:[n, d]) must equal the model's output on a batch made of two copies of x[0] (Note
/// [Sample independence]). `op` names the caller in the message.
void check_samples_independent(nn::Module& model, const Tensor& x, const Tensor& batch_output, const char* op);

/// For a one-sample batch x:[1, d], the sample-independence check on x[0] beside a second,
/// different sample, before the model ever runs on x alone (Note [Sample independence]); a no-op
/// for larger batches, which the check sees as they are.
void check_single_sample(nn::Module& model, const Tensor& x, const char* op);

/// Throws when the inputs x or any parameter of `model` hold NaN or Inf (Note [Non-finite values]
/// in checks.cpp).
void check_finite_inputs(const nn::Module& model, const Tensor& x, const char* op);


}  // namespace theta::theory::detail
