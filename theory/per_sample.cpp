// Per-parameter Jacobians and per-sample gradients: the structured layers' terms from one
// forward and one backward pass through their rules (Note [Structured Jacobians] in
// nn/structured.hpp), the remaining parameters from Jacobian rows or one backward per sample.

#include "theory/ntk.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/engine.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/rng.hpp"
#include "theory/checks.hpp"
#include "theory/model_probe.hpp"

namespace theta::theory {

using namespace detail;

std::vector<std::pair<std::string, Tensor>> parameter_jacobians(nn::Module& model, const Tensor& x,
                                                                std::int64_t max_bytes) {
  const nn::BufferSnapshot keep_buffers(model);
  const OutputInfo info = checked_output_info(model, x, "parameter_jacobians");
  const auto params = model.named_parameters();
  const std::int64_t n = x.size(0), outputs = info.outputs;
  std::vector<std::pair<std::string, Tensor>> blocks;
  for (const auto& [name, p] : params) {
    Shape s{n, outputs};
    s.insert(s.end(), p.shape().begin(), p.shape().end());
    blocks.emplace_back(name, Tensor::empty(s, p.dtype()));
  }
  if (params.empty()) return blocks;
  const std::int64_t chunk = samples_per_chunk(max_bytes, outputs, numel_of(params), n);
  for (std::int64_t s0 = 0; s0 < n; s0 += chunk) {
    check_interrupt();
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

// Temporaries of a structured rule's per-sample norms stay under this (the layer's own features
// for a chunk of samples).
constexpr std::int64_t kNormChunkBytes = std::int64_t{256} << 20;

// Note [Per-sample losses]
// The loss sees the whole batch's outputs [n, O], exactly as written (it may close over per-row
// targets or labels), and must return [n] with loss_i depending on row i alone. Then row i of
// d(sum loss) / d f(X) is d loss_i / d f(x_i), and because the model treats samples independently
// (Note [Sample independence] in model_probe.cpp), d loss_i / d p is the model's vector-Jacobian
// product at x_i with that row as the cotangent: for the structured Linear layers it is read off
// the batch's backward pass, for every other parameter it is one backward pass of the model on
// x_i alone. A loss that mixes rows (a batch mean inside, say) is detected by a second backward
// pass of the loss alone with random per-sample weights r: for a per-sample loss its gradient
// with respect to f(X) is row i times r_i.
struct PerSampleParts {
  Captured captured;
  std::vector<Tensor> d;      // [n, out_l]: d(loss_i) / d y_l(x_i) for each structured layer
  Tensor output_cotangent;    // [n, O]: d(loss_i) / d f(x_i)
};

void check_loss_per_sample(const Var& losses, const Var& output, const Tensor& cotangent) {
  const std::int64_t n = losses.size(0);
  Rng rng(0x5eed);
  const Tensor weights = rng.uniform({n}, 0.5, 1.5, losses.dtype());
  const auto g = autograd::grad({autograd::sum(losses * Var(weights))}, {output}, {}, {.retain_graph = true});
  const Tensor expected = cotangent * weights.unsqueeze(1);
  const double tolerance = losses.dtype() == DType::f32 ? 1e-4 : 1e-10;
  const double scale = max(abs(expected)).item() + 1e-300;
  THETA_CHECK(max(abs(g[0].value() - expected)).item() <= tolerance * scale, std::invalid_argument,
              "per_sample_gradients: the loss is not per-sample: loss_i must depend on row i of the outputs only "
              "(no batch means or other rows inside)");
}

PerSampleParts per_sample_parts(nn::Module& model, const Tensor& x, const PerSampleLoss& loss) {
  PerSampleParts parts;
  const Var output = forward_captured(model, x, parts.captured, "per_sample_gradients");
  const Var losses = loss(output);
  THETA_CHECK(losses.defined() && losses.dim() == 1 && losses.size(0) == x.size(0), ShapeError,
              "per_sample_gradients: the loss must return one value per sample [", x.size(0), "], got ",
              losses.defined() ? shape_str(losses.shape()) : std::string("an undefined Var"));
  require_finite(losses.value(), "per_sample_gradients", "losses");
  if (!output.requires_grad()) return parts;  // no parameters: every gradient is empty
  std::vector<Var> targets;
  for (const auto& r : parts.captured.layers) targets.push_back(r.output);
  targets.push_back(output);
  const auto g = autograd::grad({autograd::sum(losses)}, targets, {}, {.retain_graph = true, .allow_unused = true});
  auto value_or_zeros = [](const Var& grad, const Var& like) {
    return grad.defined() ? grad.value() : zeros(like.shape(), like.dtype());
  };
  for (std::size_t l = 0; l + 1 < g.size(); ++l) parts.d.push_back(value_or_zeros(g[l], targets[l]));
  parts.output_cotangent = value_or_zeros(g.back(), output);
  if (losses.requires_grad()) check_loss_per_sample(losses, output, parts.output_cotangent);
  return parts;
}

// Per-sample gradients of parameters outside the structured layers: one backward pass of the
// model on each sample alone, with that sample's row of the loss gradient as cotangent.
std::vector<Tensor> fallback_per_sample(nn::Module& model, const Tensor& x, const Tensor& output_cotangent,
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
    check_interrupt();
    const Var fi = model(Var(x.slice(0, i, i + 1)));
    const auto g = autograd::grad({fi}, vars, {Var(output_cotangent.slice(0, i, i + 1))}, {.allow_unused = true});
    for (std::size_t k = 0; k < vars.size(); ++k)
      if (g[k].defined()) out[k].select(0, i).copy_(g[k].value());
  }
  return out;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> per_sample_gradients(nn::Module& model, const Tensor& x,
                                                                 const PerSampleLoss& loss) {
  const nn::BufferSnapshot keep_buffers(model);
  const PerSampleParts parts = per_sample_parts(model, x, loss);
  const auto params = model.named_parameters();
  std::vector<std::pair<std::string, Tensor>> result;
  for (const auto& [name, p] : params) result.emplace_back(name, Tensor());
  if (params.empty()) return result;
  // Every name of the parameter gets its block (a module registered twice names it twice).
  auto assign = [&](const Var& p, const Tensor& block) {
    for (std::size_t k = 0; k < params.size(); ++k)
      if (params[k].second.id() == p.id()) result[k].second = block;
  };
  for (std::size_t l = 0; l < parts.captured.layers.size(); ++l) {
    const StructuredCall& call = parts.captured.layers[l];
    const std::vector<Tensor> grads = call.rule->per_sample_gradients(call.input.value(), parts.d[l]);
    const std::vector<Var> owned = call.layer->parameters();
    THETA_ASSERT(grads.size() == owned.size());
    for (std::size_t k = 0; k < owned.size(); ++k) assign(owned[k], grads[k]);
  }
  const auto rest = fallback_per_sample(model, x, parts.output_cotangent, parts.captured.other_params);
  for (std::size_t k = 0; k < rest.size(); ++k) assign(parts.captured.other_params[k].second, rest[k]);
  return result;
}

Tensor per_sample_gradient_norms(nn::Module& model, const Tensor& x, const PerSampleLoss& loss) {
  const nn::BufferSnapshot keep_buffers(model);
  const PerSampleParts parts = per_sample_parts(model, x, loss);
  const std::int64_t n = x.size(0);
  Tensor sq = zeros({n}, parts.captured.output.dtype());
  // |grad_i|^2 = <J_i^T D_i, J_i^T D_i>: the rule's kernel diagonal with one cotangent per sample
  // (K_in(a_i, a_i) |D_i|^2 for Linear; Note [Structured Jacobians]).
  for (std::size_t l = 0; l < parts.captured.layers.size(); ++l) {
    const StructuredCall& call = parts.captured.layers[l];
    const Tensor own = call.rule->cotangent_kernel_diagonal(call.input.value(), parts.d[l].unsqueeze(1), kNormChunkBytes);
    sq = sq + own.reshape({n});
  }
  for (const Tensor& g : fallback_per_sample(model, x, parts.output_cotangent, parts.captured.other_params))
    sq = sq + sum(square(g.reshape_copy({n, -1})), {1});
  return sqrt(sq);
}

}  // namespace theta::theory
