#include "theory/model_probe.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "autograd/engine.hpp"
#include "tensor/ops.hpp"
#include "theory/checks.hpp"

namespace theta::theory::detail {

Var forward_captured(nn::Module& model, const Tensor& x, Captured& out, const char* op, bool check_samples) {
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, op, ": inputs must be [n, d] with n > 0, got ",
              shape_str(x.shape()));
  check_finite_inputs(model, x, op);
  if (check_samples) check_single_sample(model, x, op);
  std::vector<StructuredCall> calls;
  {
    std::vector<nn::HookHandle> hooks;
    std::set<nn::Module*> hooked;
    for (const auto& [name, m] : model.named_modules()) {
      const auto* rule = dynamic_cast<const nn::StructuredLayer*>(m);
      if (rule == nullptr || !hooked.insert(m).second) continue;
      hooks.push_back(m->register_forward_hook([&calls, rule](nn::Module& layer, const Var& a, const Var& y) {
        calls.push_back({&layer, rule, a, y});
      }));
    }
    out.output = model(Var(x));
  }
  THETA_CHECK(out.output.dim() == 2 && out.output.size(0) == x.size(0), ShapeError, op,
              ": the model must map [n, d] to [n, O], got ", shape_str(x.shape()), " -> ",
              shape_str(out.output.shape()));
  if (check_samples) check_samples_independent(model, x, out.output.value(), op);
  // A layer used more than once (shared weights) has cross terms: leave it to contraction.
  std::map<nn::Module*, int> uses;
  for (const auto& c : calls) ++uses[c.layer];
  std::set<autograd::VarImpl*> structured_ids;
  for (const auto& c : calls) {
    if (uses[c.layer] > 1 || !c.rule->structured_input(c.input) || !c.output.requires_grad()) continue;
    out.layers.push_back(c);
    for (const Var& p : c.layer->parameters()) structured_ids.insert(p.id());
  }
  for (const auto& [name, p] : unique_parameters(model))
    if (!structured_ids.count(p.id())) out.other_params.emplace_back(name, p);
  return out.output;
}

std::vector<std::pair<std::string, Var>> unique_parameters(const nn::Module& model) {
  std::vector<std::pair<std::string, Var>> out;
  std::set<autograd::VarImpl*> seen;
  for (auto& [name, p] : model.named_parameters())
    if (seen.insert(p.id()).second) out.emplace_back(std::move(name), p);
  return out;
}

std::int64_t numel_of(const std::vector<std::pair<std::string, Var>>& params) {
  std::int64_t p = 0;
  for (const auto& [name, v] : params) p += v.numel();
  return p;
}

Tensor jacobian_rows(nn::Module& model, const Tensor& x, std::int64_t begin, std::int64_t count,
                     const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs) {
  THETA_ASSERT(!params.empty());
  const std::int64_t p_total = numel_of(params);
  Tensor rows = Tensor::empty({count * outputs, p_total}, params.front().second.dtype());
  std::vector<Var> vars;
  for (const auto& [name, v] : params) vars.push_back(v);
  for (std::int64_t i = 0; i < count; ++i) {
    const Var f = model(Var(x.slice(0, begin + i, begin + i + 1)));
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
  // A finite output can still have infinite derivatives (Note [Non-finite values]).
  require_finite(rows, "empirical_ntk", "Jacobian rows");
  return rows;
}

std::int64_t samples_per_chunk(std::int64_t max_bytes, std::int64_t outputs, std::int64_t p_total, std::int64_t n) {
  const std::int64_t per_sample = std::max<std::int64_t>(1, outputs * p_total * 8);
  return std::clamp<std::int64_t>(max_bytes / (2 * per_sample), 1, std::max<std::int64_t>(n, 1));
}

OutputInfo checked_output_info(nn::Module& model, const Tensor& x, const char* op) {
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, op, ": inputs must be [n, d] with n > 0, got ",
              shape_str(x.shape()));
  check_finite_inputs(model, x, op);
  check_single_sample(model, x, op);
  Tensor f;
  {
    autograd::NoGradGuard guard;
    f = model(Var(x)).value();
  }
  THETA_CHECK(f.dim() == 2 && f.size(0) == x.size(0), ShapeError, op, ": the model must map [n, d] to [n, O], got ",
              shape_str(x.shape()), " -> ", shape_str(f.shape()));
  check_samples_independent(model, x, f, op);
  return {f.size(1), f.dtype()};
}

// Note [Sample independence]
// The empirical NTK, per-sample gradients and Jacobians are defined per sample: f(x_i) must
// depend on x_i alone. A model that mixes samples (BatchNorm in training mode) has no such
// per-sample function; the structured methods would silently return cross-sample terms and
// contraction would differentiate a different function (one-sample batches). The check runs the
// model on a batch of two copies of x[0] and compares with row 0 of the real batch: equal up to
// rounding for a sample-wise model (gemms of different heights round differently, hence a
// tolerance relative to the batch's largest output), different for batch statistics (the
// copies' variance is 0), at the cost of one forward pass of two samples. A batch of one sample
// shows nothing (and BatchNorm in training mode refuses it outright, with an error about batch
// sizes that says nothing of why a kernel needs it): check_single_sample() then runs the same
// check first on a batch of x[0] and a different second sample, x[0] + 1.
namespace {

// The batch of two copies of x[0] that check_samples_independent compares against.
Tensor probe_batch(const Tensor& x) {
  const Tensor row = x.slice(0, 0, 1);
  return concat({row, row}, 0);
}

// Whether both rows of `probe` equal row 0 of `batch` up to a tolerance relative to |batch|.
bool rows_agree(const Tensor& batch, const Tensor& probe) {
  if (batch.dim() == 0 || probe.dim() != batch.dim() || probe.size(0) != 2) return false;
  for (std::int64_t d = 1; d < batch.dim(); ++d)
    if (probe.size(d) != batch.size(d)) return false;
  const double tolerance = batch.dtype() == DType::f32 ? 1e-4 : 1e-8;
  const double scale = max(abs(batch)).item() + 1e-300;
  return max(abs(probe - batch.slice(0, 0, 1))).item() <= tolerance * scale;
}

// The innermost module whose output for x[0] differs between the batch and the probe: both are
// run again with a hook on every module (hooks fire innermost first), and the first call whose
// outputs disagree names the culprit. Only called once the check has failed.
std::string module_mixing_samples(nn::Module& model, const Tensor& x) {
  struct Call {
    std::string name;
    Tensor output;
  };
  auto run = [&model](const Tensor& input) {
    std::vector<Call> calls;
    std::vector<nn::HookHandle> hooks;
    std::set<nn::Module*> hooked;
    for (const auto& [name, m] : model.named_modules()) {
      if (!hooked.insert(m).second) continue;
      const std::string label = name.empty() ? m->describe() : name + " (" + m->describe() + ")";
      hooks.push_back(m->register_forward_hook(
          [&calls, label](nn::Module&, const Var&, const Var& y) { calls.push_back({label, y.value()}); }));
    }
    model(Var(input));
    return calls;
  };
  const std::vector<Call> batch = run(x), probe = run(probe_batch(x));
  for (std::size_t i = 0; i < batch.size() && i < probe.size(); ++i)
    if (!rows_agree(batch[i].output, probe[i].output)) return batch[i].name;
  return model.describe();
}

}  // namespace

void check_samples_independent(nn::Module& model, const Tensor& x, const Tensor& batch_output, const char* op) {
  require_finite(batch_output, op, "model output");
  const nn::BufferSnapshot keep_buffers(model);
  autograd::NoGradGuard no_grad;
  if (rows_agree(batch_output, model(Var(probe_batch(x))).value())) return;
  THETA_THROW(std::invalid_argument, op, ": the model does not treat samples independently: the output of ",
              module_mixing_samples(model, x),
              " for a sample depends on the other samples of the batch, so per-sample quantities (kernels, "
              "Jacobians, per-sample gradients) are undefined for it. BatchNorm in training mode couples the "
              "samples of a batch through the batch statistics: call eval() on the model first (nn::EvalGuard "
              "does it for a scope)");
}

void check_single_sample(nn::Module& model, const Tensor& x, const char* op) {
  if (x.size(0) != 1) return;
  const Tensor pair = concat({x, x + 1.0}, 0);
  Tensor f;
  {
    const nn::BufferSnapshot keep_buffers(model);
    autograd::NoGradGuard no_grad;
    f = model(Var(pair)).value();
  }
  check_samples_independent(model, pair, f, op);
}

void check_finite_inputs(const nn::Module& model, const Tensor& x, const char* op) {
  require_finite(x, op, "inputs");
  for (const auto& [name, p] : model.named_parameters()) require_finite(p.value(), op, name.c_str());
}

}  // namespace theta::theory::detail
