#include "autograd/transforms.hpp"

#include "tensor/interrupt.hpp"

namespace theta::autograd {

namespace {

std::vector<Tensor> values_of(const std::vector<Var>& vars) {
  std::vector<Tensor> out;
  out.reserve(vars.size());
  for (const auto& v : vars) out.push_back(v.value());
  return out;
}

// Gradients with undefined entries (unused inputs) replaced by zeros of the input's shape.
std::vector<Tensor> densify(const std::vector<Var>& grads, const std::vector<Var>& like) {
  std::vector<Tensor> out;
  out.reserve(grads.size());
  for (std::size_t i = 0; i < grads.size(); ++i)
    out.push_back(grads[i].defined() ? grads[i].value() : zeros(like[i].shape(), like[i].dtype()));
  return out;
}

void check_matching(const std::vector<Tensor>& given, const std::vector<Var>& like, const char* op,
                    const char* what) {
  THETA_CHECK(given.size() == like.size(), ShapeError, op, ": ", given.size(), " ", what,
              given.size() == 1 ? "" : "s", " given for ", like.size(), " tensor", like.size() == 1 ? "" : "s",
              " (one per tensor, of the same shape)");
  for (std::size_t i = 0; i < given.size(); ++i) {
    THETA_CHECK(given[i].shape() == like[i].shape(), ShapeError, op, ": ", what, " ", i, " has shape ",
                shape_str(given[i].shape()), ", expected ", shape_str(like[i].shape()));
    THETA_CHECK(given[i].dtype() == like[i].dtype(), DTypeError, op, ": ", what, " ", i, " is ",
                dtype_name(given[i].dtype()), ", expected ", dtype_name(like[i].dtype()));
  }
}

std::vector<Var> constants(const std::vector<Tensor>& values) {
  std::vector<Var> out;
  for (const auto& v : values) out.emplace_back(v);
  return out;
}

Var scalar_output(const ScalarFunction& f, const std::vector<Var>& params, const char* op) {
  Var y = f(params);
  THETA_CHECK(y.defined() && y.numel() == 1, ShapeError, op, ": f must return one element, got ",
              y.defined() ? shape_str(y.shape()) : std::string("undefined"));
  return y;
}

// <a, b> summed over a list of same-shaped Vars.
Var list_dot(const std::vector<Var>& a, const std::vector<Var>& b) {
  Var total;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined()) continue;
    const Var term = vdot(a[i], b[i]);
    total = total.defined() ? total + term : term;
  }
  return total;
}

// Note [Second derivatives as one VJP]
// The derivative of <v, g(p)> with respect to p, for g recorded with create_graph, is the VJP of
// g with cotangent v. Asking the engine for that VJP directly (v enters as the grad_outputs of
// the recorded g) gives the same numbers as differentiating the scalar <v, g>, without the
// elementwise products and sums that form the scalar and their backward, each a pass over
// every parameter. Entries of g that are undefined or constant contribute nothing.
std::vector<Var> vjp_of(const std::vector<Var>& g, const std::vector<Tensor>& v, const std::vector<Var>& wrt,
                        bool retain_graph) {
  std::vector<Var> outs, cots;
  for (std::size_t i = 0; i < g.size(); ++i)
    if (g[i].defined() && g[i].requires_grad()) {
      outs.push_back(g[i]);
      cots.emplace_back(v[i]);
    }
  if (outs.empty()) return std::vector<Var>(wrt.size());
  return grad(outs, wrt, cots, {.retain_graph = retain_graph, .allow_unused = true});
}

}  // namespace

std::vector<Var> make_leaves(const std::vector<Tensor>& values) {
  std::vector<Var> out;
  out.reserve(values.size());
  for (const auto& v : values) out.emplace_back(v, true);
  return out;
}

VjpResult vjp(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& cotangents) {
  const std::vector<Var> x = make_leaves(primals);
  const std::vector<Var> y = f(x);
  check_matching(cotangents, y, "vjp", "cotangent");
  std::vector<Var> outs, cots;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (y[i].requires_grad()) {
      outs.push_back(y[i]);
      cots.emplace_back(cotangents[i]);
    }
  std::vector<Var> g(x.size());
  if (!outs.empty()) g = grad(outs, x, cots, {.allow_unused = true});
  return {values_of(y), densify(g, x)};
}

namespace {
JvpResult jvp_forward(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  const std::vector<Var> p = constants(primals);
  check_matching(tangents, p, "jvp", "tangent");
  const DualLevel level;
  std::vector<Var> x;
  x.reserve(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) x.push_back(make_dual(p[i], Var(tangents[i])));
  const std::vector<Var> y = f(x);
  std::vector<Tensor> tangent_out;
  for (const auto& yi : y) {
    const Var t = tangent(yi);
    tangent_out.push_back(t.defined() ? t.value() : zeros(yi.shape(), yi.dtype()));
  }
  return {values_of(y), tangent_out};
}

// Note [JVP by double VJP]
// For y = f(x), the VJP g(u) = J^T u is linear in the cotangent u. Recording it (create_graph)
// and differentiating <g(u), t> with respect to u gives J t: the forward-mode product from two
// reverse passes. This needs only that backward rules be differentiable.
JvpResult jvp_double_vjp(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  const std::vector<Var> x = make_leaves(primals);
  check_matching(tangents, x, "jvp", "tangent");
  const std::vector<Var> y = f(x);
  std::vector<Var> outs, dummies;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < y.size(); ++i)
    if (y[i].requires_grad()) {
      outs.push_back(y[i]);
      dummies.emplace_back(zeros(y[i].shape(), y[i].dtype()), true);
      which.push_back(i);
    }
  std::vector<Tensor> tangent_out;
  for (const auto& yi : y) tangent_out.push_back(zeros(yi.shape(), yi.dtype()));
  if (!outs.empty()) {
    const std::vector<Var> g = grad(outs, x, dummies, {.create_graph = true, .allow_unused = true});
    const std::vector<Var> jt = vjp_of(g, tangents, dummies, false);
    for (std::size_t k = 0; k < which.size(); ++k)
      if (jt[k].defined()) tangent_out[which[k]] = jt[k].value();
  }
  return {values_of(y), tangent_out};
}

// Note [HVP forward over reverse]
// H v is the directional derivative of the gradient along v. Params enter as duals carrying v;
// the forward pass gives every intermediate its tangent, and the backward pass, run inside the
// same level, applies each backward rule to Vars that carry tangents, so each gradient arrives
// with its tangent: H v. Nothing of the backward pass is recorded (reverse over reverse records
// it whole), and the tangent arithmetic mirrors the gradient's: about twice its work.
std::vector<Tensor> hvp_forward_over_reverse(const ScalarFunction& f, const std::vector<Tensor>& params,
                                             const std::vector<Tensor>& v) {
  const std::vector<Var> p = make_leaves(params);
  check_matching(v, p, "hvp", "vector");
  const DualLevel level;
  const detail::RecordTangentsGuard unrecorded(false);  // the tangents are never differentiated here
  std::vector<Var> duals;
  duals.reserve(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) duals.push_back(make_dual(p[i], Var(v[i])));
  const Var y = scalar_output(f, duals, "hvp");
  if (!y.requires_grad()) return densify(std::vector<Var>(p.size()), p);
  const std::vector<Var> g = grad({y}, p, {}, {.allow_unused = true});
  std::vector<Var> hv(p.size());
  for (std::size_t i = 0; i < p.size(); ++i)
    if (g[i].defined()) hv[i] = tangent(g[i]);
  return densify(hv, p);
}
}  // namespace

JvpResult jvp(const Function& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents,
              JvpMethod method) {
  return method == JvpMethod::forward ? jvp_forward(f, primals, tangents) : jvp_double_vjp(f, primals, tangents);
}

std::vector<Tensor> hvp(const ScalarFunction& f, const std::vector<Tensor>& params, const std::vector<Tensor>& v,
                        HvpMethod method) {
  if (method == HvpMethod::forward_over_reverse) return hvp_forward_over_reverse(f, params, v);
  return HessianVectorOperator(f, params).apply(v);
}

std::vector<Tensor> vhp(const ScalarFunction& f, const std::vector<Tensor>& params, const std::vector<Tensor>& v) {
  // Differentiate d/dp <v, grad f(p)> with v entering the first backward as a constant
  // weighting of the outputs' gradients: v^T H = grad_p <grad_p f, v>, evaluated by a second
  // backward whose cotangent graph is rebuilt from scratch.
  const std::vector<Var> p = make_leaves(params);
  check_matching(v, p, "vhp", "vector");
  const Var y = scalar_output(f, p, "vhp");
  const std::vector<Var> g = grad({y}, p, {}, {.create_graph = true, .allow_unused = true});
  const Var inner = list_dot(constants(v), g);
  if (!inner.defined() || !inner.requires_grad()) return densify(std::vector<Var>(p.size()), p);
  return densify(grad({inner}, p, {}, {.allow_unused = true}), p);
}

HessianVectorOperator::HessianVectorOperator(const ScalarFunction& f, const std::vector<Tensor>& params)
    : params_(make_leaves(params)) {
  const Var y = scalar_output(f, params_, "hessian-vector product");
  loss_ = y.item();
  grads_ = grad({y}, params_, {}, {.create_graph = true, .allow_unused = true});
  for (const auto& p : params_) size_ += p.numel();
}

std::vector<Tensor> HessianVectorOperator::apply(const std::vector<Tensor>& v) const {
  check_matching(v, params_, "hvp", "vector");
  return densify(vjp_of(grads_, v, params_, true), params_);
}

std::vector<Tensor> HessianVectorOperator::gradient() const {
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < grads_.size(); ++i)
    out.push_back(grads_[i].defined() ? grads_[i].value() : zeros(params_[i].shape(), params_[i].dtype()));
  return out;
}

std::vector<std::vector<Tensor>> jacobian(const Function& f, const std::vector<Tensor>& inputs,
                                          JacobianOptions options) {
  THETA_CHECK(options.chunk_size >= 0, std::invalid_argument, "jacobian: negative chunk_size ", options.chunk_size);
  std::vector<Var> x = make_leaves(inputs);
  std::vector<Var> y = f(x);
  std::vector<std::vector<Tensor>> jac(y.size());
  for (std::size_t i = 0; i < y.size(); ++i)
    for (const auto& xj : x) {
      Shape s = y[i].shape();
      s.insert(s.end(), xj.shape().begin(), xj.shape().end());
      jac[i].push_back(zeros(s, xj.dtype()));
    }
  std::int64_t rows_this_graph = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const std::int64_t rows = y[i].numel();
    for (std::int64_t r = 0; r < rows; ++r) {
      if (options.chunk_size > 0 && rows_this_graph == options.chunk_size) {
        check_interrupt();
        x = make_leaves(inputs);  // a fresh graph for the next chunk of rows
        y = f(x);
        rows_this_graph = 0;
      }
      ++rows_this_graph;
      if (!y[i].requires_grad()) continue;
      Tensor onehot = zeros({rows}, y[i].dtype());
      onehot.select(0, r).fill_(1.0);
      const std::vector<Var> g =
          grad({y[i]}, x, {Var(onehot.reshape(y[i].shape()))}, {.retain_graph = true, .allow_unused = true});
      for (std::size_t j = 0; j < x.size(); ++j)
        if (g[j].defined()) jac[i][j].reshape({rows, -1}).select(0, r).copy_(g[j].value().reshape_copy({-1}));
    }
  }
  return jac;
}

Tensor hessian(const ScalarFunction& f, const std::vector<Tensor>& params) {
  const HessianVectorOperator op(f, params);
  const std::int64_t n = op.size();
  const DType dtype = params.empty() ? DType::f64 : params.front().dtype();
  Tensor h = zeros({n, n}, dtype);
  std::vector<Tensor> basis;
  for (const auto& p : params) basis.push_back(zeros(p.shape(), p.dtype()));
  std::int64_t col = 0;
  for (std::size_t j = 0; j < params.size(); ++j)
    for (std::int64_t e = 0; e < params[j].numel(); ++e, ++col) {
      std::vector<Tensor> v;
      for (std::size_t k = 0; k < params.size(); ++k) v.push_back(zeros(params[k].shape(), params[k].dtype()));
      v[j].reshape({-1}).select(0, e).fill_(1.0);
      const std::vector<Tensor> hv = op.apply(v);
      std::vector<Tensor> flat;
      for (const auto& t : hv) flat.push_back(t.reshape_copy({-1}));
      h.select(1, col).copy_(theta::concat(flat, 0));
    }
  return h;
}

}  // namespace theta::autograd
