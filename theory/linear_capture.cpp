#include "theory/linear_capture.hpp"

#include <algorithm>
#include <set>

#include "autograd/engine.hpp"

namespace theta::theory::detail {

Var forward_captured(nn::Module& model, const Tensor& x, Captured& out) {
  THETA_CHECK(x.dim() == 2, ShapeError, "ntk: inputs must be [n, d], got ", shape_str(x.shape()));
  nn::LinearCapture capture;
  out.output = model.forward(Var(x));
  THETA_CHECK(out.output.dim() == 2 && out.output.size(0) == x.size(0), ShapeError,
              "ntk: the model must map [n, d] to [n, O], got ", shape_str(out.output.shape()));
  // A layer used more than once (shared weights) has cross terms: leave it to contraction.
  std::vector<const nn::Linear*> seen, repeated;
  for (const auto& r : capture.records()) {
    if (std::find(seen.begin(), seen.end(), r.layer) != seen.end()) repeated.push_back(r.layer);
    seen.push_back(r.layer);
  }
  std::set<autograd::VarImpl*> structured_ids;
  for (const auto& r : capture.records()) {
    if (std::find(repeated.begin(), repeated.end(), r.layer) != repeated.end()) continue;
    if (r.input.dim() != 2 || !r.output.requires_grad()) continue;
    out.layers.push_back(r);
    structured_ids.insert(r.layer->weight().id());
    if (r.layer->bias().defined()) structured_ids.insert(r.layer->bias().id());
  }
  for (const auto& [name, p] : model.named_parameters())
    if (!structured_ids.count(p.id())) out.other_params.emplace_back(name, p);
  return out.output;
}

std::int64_t numel_of(const std::vector<std::pair<std::string, Var>>& params) {
  std::int64_t p = 0;
  for (const auto& [name, v] : params) p += v.numel();
  return p;
}

Tensor jacobian_rows(nn::Module& model, const Tensor& x, std::int64_t begin, std::int64_t count,
                     const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs) {
  const std::int64_t p_total = numel_of(params);
  Tensor rows = Tensor::empty({count * outputs, p_total}, params.front().second.dtype());
  std::vector<Var> vars;
  for (const auto& [name, v] : params) vars.push_back(v);
  for (std::int64_t i = 0; i < count; ++i) {
    const Var f = model.forward(Var(x.slice(0, begin + i, begin + i + 1)));
    THETA_CHECK(f.dim() == 2 && f.size(1) == outputs, ShapeError, "ntk: model output ",
                shape_str(f.shape()), " for one sample, expected [1, ", outputs, "]");
    for (std::int64_t o = 0; o < outputs; ++o) {
      Tensor cot = zeros(f.shape(), f.dtype());
      cot.select(1, o).fill_(1.0);
      const auto g = autograd::grad({f}, vars, {Var(cot)}, {.retain_graph = o + 1 < outputs, .allow_unused = true});
      std::int64_t col = 0;
      const Tensor row = rows.select(0, i * outputs + o);
      for (std::size_t k = 0; k < vars.size(); ++k) {
        const std::int64_t len = vars[k].numel();
        const Tensor dst = row.slice(0, col, col + len);
        if (g[k].defined()) dst.copy_(g[k].value().reshape_copy({len}));
        else dst.fill_(0.0);
        col += len;
      }
    }
  }
  return rows;
}

std::int64_t samples_per_chunk(std::int64_t max_bytes, std::int64_t outputs, std::int64_t p_total, std::int64_t n) {
  const std::int64_t per_sample = std::max<std::int64_t>(1, outputs * p_total * 8);
  return std::clamp<std::int64_t>(max_bytes / (2 * per_sample), 1, std::max<std::int64_t>(n, 1));
}

std::int64_t output_count(nn::Module& model, const Tensor& x) {
  autograd::NoGradGuard guard;
  const Var f = model.forward(Var(x.slice(0, 0, 1)));
  THETA_CHECK(f.dim() == 2, ShapeError, "ntk: the model must map [n, d] to [n, O], got ", shape_str(f.shape()));
  return f.size(1);
}

}  // namespace theta::theory::detail
