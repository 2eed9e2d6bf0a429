#include "theory/ntk.hpp"

#include "tensor/interrupt.hpp"
#include "theory/model_probe.hpp"
#include "theory/ntk_blocks.hpp"

namespace theta::theory {

using autograd::Var;
using namespace detail;

namespace {

// Which form of the kernel a caller asked for.
enum class Form {
  full,    // [n1, n2, O, O]
  trace,   // [n1, n2]: sum over o of the diagonal output blocks
  matrix,  // [n1, n2] of a one-output model (its trace), refused for O != 1
};

// Refuses a model with more than one output when the [n1, n2] matrix form was asked for.
void check_form(Form form, std::int64_t outputs) {
  THETA_CHECK(form != Form::matrix || outputs == 1, ShapeError,
              "empirical_ntk_matrix: the model has ", outputs, " outputs; the [n1, n2] matrix form is for "
              "one-output models. Use empirical_ntk (-> [n1, n2, ", outputs, ", ", outputs,
              "]) or empirical_ntk_trace (-> [n1, n2], summed over outputs)");
}

Tensor kernel(nn::Module& model, const Tensor& x1, const Tensor& x2, const NtkOptions& options, Form kind) {
  const char* op = kind == Form::full    ? "empirical_ntk"
                   : kind == Form::trace ? "empirical_ntk_trace"
                                         : "empirical_ntk_matrix";
  THETA_CHECK(x1.dim() == 2 && x2.dim() == 2 && x1.size(1) == x2.size(1), ShapeError, op, ": inputs ",
              shape_str(x1.shape()), " and ", shape_str(x2.shape()), " must be [n1, d] and [n2, d]");
  THETA_CHECK(x1.size(0) > 0 && x2.size(0) > 0, ShapeError, op, ": empty input batch ", shape_str(x1.shape()),
              " or ", shape_str(x2.shape()));
  const nn::BufferSnapshot keep_buffers(model);
  const bool same = same_view(x1, x2);
  // For one output the trace is the kernel itself.
  const KernelForm form = kind == Form::full ? KernelForm::full : KernelForm::trace;
  if (options.method == NtkMethod::contraction) {
    if (kind == Form::matrix) check_form(kind, checked_output_info(model, x1, op).outputs);
    return contraction_kernel(model, x1, x2, same, form, options.max_bytes, op);
  }
  // The factors serve this one kernel: formed compact, consumed as the rules run.
  BlockFactors f1 = compact_block_factors(model, x1, op, options.max_bytes);
  check_form(kind, f1.outputs());
  const FactorUse use = FactorUse::consume;
  if (same) return structured_block_kernel(model, f1, f1, true, form, options.max_bytes, 0, use);
  BlockFactors f2 = compact_block_factors(model, x2, op, options.max_bytes);
  return structured_block_kernel(model, f1, f2, false, form, options.max_bytes, 0, use);
}

}  // namespace

Tensor empirical_ntk(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options) {
  return kernel(model, x1, x2, options, Form::full);
}

Tensor empirical_ntk_trace(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options) {
  return kernel(model, x1, x2, options, Form::trace);
}

Tensor empirical_ntk_matrix(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options) {
  return kernel(model, x1, x2, options, Form::matrix);
}

Tensor empirical_ntk_diagonal(nn::Module& model, const Tensor& x, NtkOptions options) {
  const char* op = "empirical_ntk_diagonal";
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, op, ": inputs must be [n, d] with n > 0, got ",
              shape_str(x.shape()));
  const nn::BufferSnapshot keep_buffers(model);
  const std::int64_t n = x.size(0);
  if (options.method == NtkMethod::contraction) {
    const OutputInfo info = checked_output_info(model, x, op);
    const auto params = unique_parameters(model);
    Tensor out = zeros({n, info.outputs, info.outputs}, info.dtype);
    for (std::int64_t i = 0; i < n && !params.empty(); ++i) {
      check_interrupt();
      out.select(0, i).copy_(gram(jacobian_rows(model, x, i, 1, params, info.outputs)));
    }
    return out;
  }
  const BlockFactors f = block_factors(model, x, op);
  const Captured& c = f.captured;
  const std::vector<nn::Cotangents>& d = f.output_grads;
  const std::int64_t outputs = f.outputs();
  Tensor out = zeros({n, outputs, outputs}, f.dtype());
  for (std::size_t l = 0; l < c.layers.size(); ++l)
    out = out + c.layers[l].rule->cotangent_kernel_diagonal(c.layers[l].input.value(), d[l].dense(), options.max_bytes);
  for (std::int64_t i = 0; i < n && !c.other_params.empty(); ++i) {
    check_interrupt();
    const Tensor j = jacobian_rows(model, x, i, 1, c.other_params, outputs);
    out.select(0, i).add_(gram(j));
  }
  return out;
}

}  // namespace theta::theory
