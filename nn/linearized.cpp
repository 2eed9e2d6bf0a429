#include "nn/linearized.hpp"

#include "autograd/engine.hpp"
#include "autograd/forward.hpp"

namespace theta::nn {

namespace {

// J(w0, x) d by two reverse passes (for use inside an open forward-mode level): the VJP
// u -> J^T u is recorded at a dummy cotangent u and <J^T u, d> differentiated in u.
Var jvp_by_double_vjp(Module& base, const std::vector<Tensor>& origin, const std::vector<Var>& d, const Var& x,
                      Var& out) {
  std::vector<Var> w0;
  for (const auto& o : origin) w0.emplace_back(o, true);
  out = functional_call(base, w0, x, "Linearized");
  const Var u(zeros(out.shape(), out.dtype()), true);
  const auto g = autograd::grad({out}, w0, {u}, {.create_graph = true, .allow_unused = true});
  Var inner;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (g[i].defined()) inner = inner.defined() ? inner + vdot(g[i], d[i]) : vdot(g[i], d[i]);
  if (!inner.defined() || !inner.requires_grad()) return Var();
  return autograd::grad({inner}, {u}, {}, {.create_graph = true, .allow_unused = true})[0];
}

}  // namespace

Linearized::Linearized(const Module& model) : base_(model.clone()) {
  for (const auto& [name, p] : model.named_parameters()) {
    origin_.push_back(p.value().clone());
    register_parameter(name, p.value().clone());
  }
  train(model.training());
}

Linearized::Linearized(const Linearized& other)
    : Cloneable<Linearized>(other), base_(other.base_->clone()), origin_(other.origin_) {}

Var Linearized::forward(const Var& x) {
  if (base_->training() != training()) base_->train(training());
  const BufferSnapshot keep_buffers(*base_);
  const std::vector<Var> w = parameters();
  std::vector<Var> d;  // w - w0, differentiable in w
  d.reserve(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) d.push_back(w[i] - Var(origin_[i]));
  Var out, jd;
  if (autograd::forward_mode_enabled()) {
    jd = jvp_by_double_vjp(*base_, origin_, d, x, out);
  } else {
    const autograd::DualLevel level;
    std::vector<Var> duals;
    duals.reserve(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) duals.push_back(autograd::make_dual(Var(origin_[i]), d[i]));
    out = functional_call(*base_, duals, x, "Linearized");
    jd = autograd::tangent(out);
  }
  return jd.defined() ? out + jd : out;
}

std::string Linearized::describe() const { return "Linearized(" + base_->describe() + ")"; }

std::shared_ptr<Linearized> linearize(const Module& model) { return std::make_shared<Linearized>(model); }

}  // namespace theta::nn
