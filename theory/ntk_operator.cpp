#include "theory/ntk_operator.hpp"

#include <algorithm>
#include <vector>

#include "autograd/transforms.hpp"
#include "tensor/interrupt.hpp"

namespace theta::theory {

namespace {

// The operator's state: the model, its inputs, its parameter values, and the output shape.
struct NtkProducts {
  std::shared_ptr<nn::Module> model;
  Tensor x;
  std::vector<Tensor> params;
  std::int64_t n = 0, outputs = 0, chunk = 0;
  DType dtype = DType::f64;

  // The model's outputs on samples [begin, end) as a function of its parameters.
  autograd::Function outputs_of(std::int64_t begin, std::int64_t end) const {
    const Tensor xs = x.slice(0, begin, end);
    return [this, xs](const std::vector<autograd::Var>& w) {
      return std::vector<autograd::Var>{nn::functional_call(*model, w, autograd::Var(xs), "ntk_operator")};
    };
  }

  Tensor apply(const Tensor& v) const {
    THETA_CHECK(v.dim() == 1 && v.size(0) == n * outputs, ShapeError, "ntk_operator: v must be [", n * outputs,
                "] (n = ", n, " points times O = ", outputs, " outputs), got ", shape_str(v.shape()));
    const Tensor cotangents = v.to(dtype).reshape_copy({n, outputs});
    const nn::BufferSnapshot keep_buffers(*model);
    // u = J^T v, summed over chunks.
    std::vector<Tensor> u;
    for (std::int64_t b = 0; b < n; b += chunk) {
      check_interrupt();
      const std::int64_t e = std::min(n, b + chunk);
      const auto g = autograd::vjp(outputs_of(b, e), params, {cotangents.slice(0, b, e)}).grads;
      if (u.empty()) {
        u = g;
      } else {
        for (std::size_t i = 0; i < u.size(); ++i) u[i] = theta::add(u[i], g[i]);
      }
    }
    // K v = J u, chunk by chunk.
    Tensor out = Tensor::empty({n, outputs}, DType::f64);
    for (std::int64_t b = 0; b < n; b += chunk) {
      check_interrupt();
      const std::int64_t e = std::min(n, b + chunk);
      const auto r = autograd::jvp(outputs_of(b, e), params, u);
      out.slice(0, b, e).copy_(r.tangents[0].to(DType::f64));
    }
    return out.reshape({n * outputs});
  }
};

}  // namespace

LinearOperator ntk_operator(std::shared_ptr<nn::Module> model, const Tensor& x, NtkOperatorOptions options) {
  THETA_CHECK(model != nullptr, std::invalid_argument, "ntk_operator: null model");
  THETA_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 1, ShapeError,
              "ntk_operator: x must be [n, ...] with n >= 1, got ", x.defined() ? shape_str(x.shape()) : "undefined");
  THETA_CHECK(options.chunk >= 1, std::invalid_argument, "ntk_operator: chunk must be >= 1, got ", options.chunk);
  auto p = std::make_shared<NtkProducts>();
  p->model = std::move(model);
  p->x = x;
  p->n = x.size(0);
  p->chunk = options.chunk;
  for (const auto& w : p->model->parameters()) p->params.push_back(w.value());
  THETA_CHECK(!p->params.empty(), std::invalid_argument, "ntk_operator: the model has no parameters");
  p->dtype = p->params.front().dtype();
  {
    // The output width, from one sample.
    const nn::BufferSnapshot keep_buffers(*p->model);
    const autograd::NoGradGuard no_grad;
    const Tensor probe = (*p->model)(autograd::Var(x.slice(0, 0, 1))).value();
    THETA_CHECK(probe.dim() == 2, ShapeError, "ntk_operator: the model's outputs must be [n, O], got ",
                shape_str(probe.shape()), " for one sample");
    p->outputs = probe.size(1);
  }
  return {p->n * p->outputs, [p](const Tensor& v) { return p->apply(v); }};
}

}  // namespace theta::theory
