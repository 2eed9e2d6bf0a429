// The linearised model f(w0, x) + J(w0, x)(w - w0) against independent truths: the model itself
// at w0, JVPs by two reverse passes, the Taylor remainder, the model's NTK at w0, the closed-form
// kernel dynamics of gradient descent on a squared loss, and the Gauss-Newton Hessian.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/transforms.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/linearized.hpp"
#include "nn/optim.hpp"
#include "tensor/rng.hpp"
#include "theory/hessian.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using namespace theta::nn;
using autograd::Var;

namespace {

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : to_vector(t)) m = std::max(m, std::abs(v));
  return m;
}

double rel_gap(const Tensor& a, const Tensor& b) { return max_abs(theta::sub(a, b)) / std::max(1e-300, max_abs(b)); }

struct Setup {
  std::shared_ptr<Sequential> model;
  Tensor x, y;
  std::vector<Tensor> w0, delta;
};

// A 3-8-8-2 tanh MLP in float64, a batch of 6 and a random direction in parameter space.
Setup make_setup() {
  Rng rng(11);
  Setup s;
  s.model = mlp({3, 8, 8, 2}, rng, {.activation = ActivationKind::tanh, .dtype = DType::f64});
  s.x = rng.normal({6, 3});
  s.y = rng.normal({6, 2});
  for (const auto& p : s.model->parameters()) {
    s.w0.push_back(p.value().clone());
    s.delta.push_back(rng.normal(p.shape(), 0.0, 0.1));
  }
  return s;
}

void set_parameters(const Module& m, const std::vector<Tensor>& values, const std::vector<Tensor>& plus,
                    double scale) {
  const auto params = m.parameters();
  for (std::size_t i = 0; i < params.size(); ++i)
    params[i].value().copy_(theta::add(values[i], theta::mul(plus[i], scalar_tensor(scale))));
}

// J(w0, x) d of the model, by two reverse passes.
Tensor model_jvp(Setup& s, const std::vector<Tensor>& d) {
  const autograd::Function f = [&s](const std::vector<Var>& w) {
    return std::vector<Var>{functional_call(*s.model, w, Var(s.x))};
  };
  return autograd::jvp(f, s.w0, d, autograd::JvpMethod::double_vjp).tangents[0];
}

}  // namespace

TEST_CASE("a linearised model equals the model at w0 and adds J d away from it", "[nn][linearized]") {
  Setup s = make_setup();
  const auto lin = linearize(*s.model);
  CHECK(lin->describe().rfind("Linearized(", 0) == 0);
  REQUIRE(lin->named_parameters().size() == s.model->named_parameters().size());
  CHECK(lin->named_parameters()[0].first == s.model->named_parameters()[0].first);
  const Tensor f0 = s.model->forward(Var(s.x)).value();
  CHECK(to_vector(lin->forward(Var(s.x)).value()) == to_vector(f0));

  set_parameters(*lin, s.w0, s.delta, 1.0);
  const Tensor moved = lin->forward(Var(s.x)).value();
  CHECK(rel_gap(theta::sub(moved, f0), model_jvp(s, s.delta)) <= 1e-12);
  // The model itself is untouched.
  CHECK(to_vector(s.model->forward(Var(s.x)).value()) == to_vector(f0));

  // Taylor: f(w0 + e d) - f_lin(w0 + e d) = O(e^2): halving e quarters it.
  double previous = 0.0;
  for (const double e : {0.4, 0.2, 0.1}) {
    set_parameters(*lin, s.w0, s.delta, e);
    set_parameters(*s.model, s.w0, s.delta, e);
    const double remainder = max_abs(theta::sub(s.model->forward(Var(s.x)).value(), lin->forward(Var(s.x)).value()));
    if (previous > 0.0) CHECK(previous / remainder == Approx(4.0).epsilon(0.1));
    previous = remainder;
  }
}

TEST_CASE("a linearised model's NTK is the model's NTK at w0, wherever its parameters are",
          "[nn][linearized]") {
  Setup s = make_setup();
  const auto lin = linearize(*s.model);
  set_parameters(*lin, s.w0, s.delta, 3.0);
  const theory::NtkOptions contraction{.method = theory::NtkMethod::contraction};
  const Tensor want = theory::empirical_ntk(*s.model, s.x, s.x, contraction);
  CHECK(rel_gap(theory::empirical_ntk(*lin, s.x, s.x, contraction), want) <= 1e-12);
}

TEST_CASE("gradient descent on a linearised model follows the kernel dynamics", "[nn][linearized]") {
  // MSE over the n O outputs: f_{k+1} = f_k - lr (2 / (n O)) Theta (f_k - y), Theta the model's
  // NTK at w0 as an [n O, n O] matrix.
  Setup s = make_setup();
  const auto lin = linearize(*s.model);
  const std::int64_t n = 6, outputs = 2;
  const Tensor theta_k = theory::empirical_ntk(*s.model, s.x, s.x, {.method = theory::NtkMethod::contraction})
                             .permute({0, 2, 1, 3})
                             .reshape_copy({n * outputs, n * outputs});
  const double lr = 0.5;
  Sgd sgd(lin->named_parameters(), {.lr = lr});
  Tensor f = s.model->forward(Var(s.x)).value().reshape_copy({n * outputs, 1});
  const Tensor y = s.y.reshape_copy({n * outputs, 1});
  for (int step = 0; step < 25; ++step) {
    sgd.zero_grad();
    autograd::backward(mse_loss(lin->forward(Var(s.x)), Var(s.y)));
    sgd.step();
    f = theta::sub(f, theta::mul(matmul(theta_k, theta::sub(f, y)), scalar_tensor(lr * 2.0 / (n * outputs))));
  }
  const Tensor trained = lin->forward(Var(s.x)).value().reshape_copy({n * outputs, 1});
  CHECK(rel_gap(trained, f) <= 1e-11);
  // The model moved towards the targets (the check above is not about a model that stood still).
  CHECK(max_abs(theta::sub(trained, y)) < 0.9 * max_abs(theta::sub(s.model->forward(Var(s.x)).value().reshape_copy({n * outputs, 1}), y)));
}

TEST_CASE("the Hessian of a linearised model's squared loss is Gauss-Newton, by either HVP method",
          "[nn][linearized]") {
  // L = |f_lin - y|^2 / (n O) has H = (2 / (n O)) J^T J, J the model's Jacobian at w0.
  Setup s = make_setup();
  const auto lin = linearize(*s.model);
  set_parameters(*lin, s.w0, s.delta, 2.0);  // H does not depend on where w is
  const auto loss = theory::module_loss(lin, s.x, s.y, [](const Var& out, const Tensor& t) { return mse_loss(out, Var(t)); });
  std::vector<Tensor> w;
  for (const auto& p : lin->parameters()) w.push_back(p.value());
  const auto fr = autograd::hvp(loss, w, s.delta, autograd::HvpMethod::forward_over_reverse);
  const auto rr = autograd::hvp(loss, w, s.delta, autograd::HvpMethod::reverse_over_reverse);
  // Gauss-Newton from the model's own JVP and VJP at w0.
  const Tensor jd = model_jvp(s, s.delta);
  const autograd::Function f = [&s](const std::vector<Var>& p) {
    return std::vector<Var>{functional_call(*s.model, p, Var(s.x))};
  };
  const auto gn = autograd::vjp(f, s.w0, {theta::mul(jd, scalar_tensor(2.0 / 12.0))}).grads;
  for (std::size_t i = 0; i < w.size(); ++i) {
    CHECK(rel_gap(fr[i], rr[i]) <= 1e-12);
    CHECK(rel_gap(rr[i], gn[i]) <= 1e-12);
  }
}

TEST_CASE("a linearised model's clone trains apart from it", "[nn][linearized]") {
  Setup s = make_setup();
  const auto lin = linearize(*s.model);
  const auto copy = lin->clone();
  set_parameters(*lin, s.w0, s.delta, 1.0);
  CHECK(to_vector(copy->forward(Var(s.x)).value()) == to_vector(s.model->forward(Var(s.x)).value()));
  CHECK(to_vector(lin->forward(Var(s.x)).value()) != to_vector(copy->forward(Var(s.x)).value()));
}
