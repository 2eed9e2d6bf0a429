#include "theory/ntk.hpp"

#include "theory/model_probe.hpp"
#include "theory/ntk_blocks.hpp"

namespace theta::theory {

using autograd::Var;
using namespace detail;

namespace {

Tensor kernel(nn::Module& model, const Tensor& x1, const Tensor& x2, const NtkOptions& options, bool trace) {
  const char* op = trace ? "empirical_ntk_trace" : "empirical_ntk";
  THETA_CHECK(x1.dim() == 2 && x2.dim() == 2 && x1.size(1) == x2.size(1), ShapeError, op, ": inputs ",
              shape_str(x1.shape()), " and ", shape_str(x2.shape()), " must be [n1, d] and [n2, d]");
  THETA_CHECK(x1.size(0) > 0 && x2.size(0) > 0, ShapeError, op, ": empty input batch ", shape_str(x1.shape()),
              " or ", shape_str(x2.shape()));
  const nn::BufferSnapshot keep_buffers(model);
  const bool same = same_view(x1, x2);
  const KernelForm form = trace ? KernelForm::trace : KernelForm::full;
  if (options.method == NtkMethod::contraction)
    return contraction_kernel(model, x1, x2, same, form, options.max_bytes, op);
  const BlockFactors f1 = block_factors(model, x1, op);
  if (same) return structured_block_kernel(model, f1, f1, true, form, options.max_bytes);
  return structured_block_kernel(model, f1, block_factors(model, x2, op), false, form, options.max_bytes);
}

}  // namespace

Tensor empirical_ntk(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options) {
  return kernel(model, x1, x2, options, false);
}

Tensor empirical_ntk_trace(nn::Module& model, const Tensor& x1, const Tensor& x2, NtkOptions options) {
  return kernel(model, x1, x2, options, true);
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
    for (std::int64_t i = 0; i < n && !params.empty(); ++i)
      out.select(0, i).copy_(gram(jacobian_rows(model, x, i, 1, params, info.outputs)));
    return out;
  }
  const BlockFactors f = block_factors(model, x, op);
  const Captured& c = f.captured;
  const std::vector<Tensor>& d = f.output_grads;
  const std::int64_t outputs = f.outputs();
  Tensor out = zeros({n, outputs, outputs}, f.dtype());
  for (std::size_t l = 0; l < c.layers.size(); ++l) {
    const Tensor scale = c.layers[l].rule->input_kernel_diagonal(c.layers[l].input.value());  // [n]
    const Tensor dd = matmul(d[l], d[l].transpose(1, 2));  // [n, O, O]
    out = out + dd * scale.reshape({n, 1, 1});
  }
  for (std::int64_t i = 0; i < n && !c.other_params.empty(); ++i) {
    const Tensor j = jacobian_rows(model, x, i, 1, c.other_params, outputs);
    out.select(0, i).add_(gram(j));
  }
  return out;
}

}  // namespace theta::theory
