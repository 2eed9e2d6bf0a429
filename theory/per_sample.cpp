// Per-parameter Jacobians and per-sample gradients: the structured layers' terms from one
// forward and one backward pass (d loss_i / d W = s_w D[i] (outer) A[i], Note [Structured NTK] in
// ntk.cpp), the remaining parameters from Jacobian rows or one backward per sample.

#include "theory/ntk.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/engine.hpp"
#include "theory/linear_capture.hpp"

namespace theta::theory {

using namespace detail;

std::vector<std::pair<std::string, Tensor>> parameter_jacobians(nn::Module& model, const Tensor& x,
                                                                std::int64_t max_bytes) {
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, "parameter_jacobians: inputs must be [n, d], got ",
              shape_str(x.shape()));
  const auto params = model.named_parameters();
  const std::int64_t n = x.size(0), outputs = output_count(model, x);
  std::vector<std::pair<std::string, Tensor>> blocks;
  for (const auto& [name, p] : params) {
    Shape s{n, outputs};
    s.insert(s.end(), p.shape().begin(), p.shape().end());
    blocks.emplace_back(name, Tensor::empty(s, p.dtype()));
  }
  const std::int64_t chunk = samples_per_chunk(max_bytes, outputs, numel_of(params), n);
  for (std::int64_t s0 = 0; s0 < n; s0 += chunk) {
    const std::int64_t count = std::min(chunk, n - s0);
    const Tensor rows = jacobian_rows(model, x, s0, count, params, outputs).reshape({count, outputs, -1});
    std::int64_t col = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
      const std::int64_t len = params[k].second.numel();
      const Tensor dst = blocks[k].second.slice(0, s0, s0 + count).reshape({count, outputs, len});
      dst.copy_(rows.slice(2, col, col + len));
      col += len;
    }
  }
  return blocks;
}

namespace {
struct PerSampleParts {
  Captured captured;
  std::vector<Tensor> d;  // [n, out_l]: d(loss_i) / d y_l(x_i)
  Var losses;
};

PerSampleParts per_sample_parts(nn::Module& model, const Tensor& x, const PerSampleLoss& loss) {
  PerSampleParts parts;
  forward_captured(model, x, parts.captured);
  parts.losses = loss(parts.captured.output);
  THETA_CHECK(parts.losses.dim() == 1 && parts.losses.size(0) == x.size(0), ShapeError,
              "per_sample_gradients: the loss must return one value per sample [", x.size(0), "], got ",
              shape_str(parts.losses.shape()));
  std::vector<Var> targets;
  for (const auto& r : parts.captured.layers) targets.push_back(r.output);
  if (!targets.empty()) {
    const auto g = autograd::grad({autograd::sum(parts.losses)}, targets, {}, {.retain_graph = true, .allow_unused = true});
    for (std::size_t l = 0; l < g.size(); ++l)
      parts.d.push_back(g[l].defined() ? g[l].value() : zeros(targets[l].shape(), targets[l].dtype()));
  }
  return parts;
}

// Per-sample gradients of parameters outside the structured layers, one backward per sample.
std::vector<Tensor> fallback_per_sample(nn::Module& model, const Tensor& x, const PerSampleLoss& loss,
                                        const std::vector<std::pair<std::string, Var>>& params) {
  std::vector<Tensor> out;
  const std::int64_t n = x.size(0);
  for (const auto& [name, p] : params) {
    Shape s{n};
    s.insert(s.end(), p.shape().begin(), p.shape().end());
    out.push_back(zeros(s, p.dtype()));
  }
  if (params.empty()) return out;
  std::vector<Var> vars;
  for (const auto& [name, p] : params) vars.push_back(p);
  for (std::int64_t i = 0; i < n; ++i) {
    const Var li = loss(model.forward(Var(x.slice(0, i, i + 1))));
    const auto g = autograd::grad({autograd::sum(li)}, vars, {}, {.allow_unused = true});
    for (std::size_t k = 0; k < vars.size(); ++k)
      if (g[k].defined()) out[k].select(0, i).copy_(g[k].value());
  }
  return out;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> per_sample_gradients(nn::Module& model, const Tensor& x,
                                                                 const PerSampleLoss& loss) {
  const PerSampleParts parts = per_sample_parts(model, x, loss);
  const auto params = model.named_parameters();
  std::vector<std::pair<std::string, Tensor>> result;
  for (const auto& [name, p] : params) result.emplace_back(name, Tensor());
  auto slot = [&](const Var& p) -> Tensor& {
    for (std::size_t k = 0; k < params.size(); ++k)
      if (params[k].second.id() == p.id()) return result[k].second;
    THETA_THROW(InternalError, "per_sample_gradients: parameter not found");
  };
  for (std::size_t l = 0; l < parts.captured.layers.size(); ++l) {
    const auto& r = parts.captured.layers[l];
    const Tensor& d = parts.d[l];                 // [n, out]
    const Tensor& a = r.input.value();            // [n, in]
    slot(r.layer->weight()) = matmul(d.unsqueeze(2), a.unsqueeze(1)) * r.layer->weight_scale();  // [n, out, in]
    if (r.layer->bias().defined()) slot(r.layer->bias()) = d * r.layer->bias_scale();
  }
  const auto rest = fallback_per_sample(model, x, loss, parts.captured.other_params);
  for (std::size_t k = 0; k < rest.size(); ++k) slot(parts.captured.other_params[k].second) = rest[k];
  return result;
}

Tensor per_sample_gradient_norms(nn::Module& model, const Tensor& x, const PerSampleLoss& loss) {
  const PerSampleParts parts = per_sample_parts(model, x, loss);
  const std::int64_t n = x.size(0);
  Tensor sq = zeros({n}, parts.captured.output.dtype());
  for (std::size_t l = 0; l < parts.captured.layers.size(); ++l) {
    const auto& r = parts.captured.layers[l];
    const Tensor dn = sum(square(parts.d[l]), {1});  // |D_i|^2
    const double sw = r.layer->weight_scale();
    Tensor term = dn * sum(square(r.input.value()), {1}) * (sw * sw);
    if (r.layer->bias().defined()) term = term + dn * std::pow(r.layer->bias_scale(), 2);
    sq = sq + term;
  }
  for (const Tensor& g : fallback_per_sample(model, x, loss, parts.captured.other_params))
    sq = sq + sum(square(g.reshape_copy({n, -1})), {1});
  return sqrt(sq);
}

}  // namespace theta::theory
