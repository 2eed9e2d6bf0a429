// Autograd and training-step benchmarks on small and mid-sized MLPs (float32, as the PyTorch
// figures they are compared with).

#include <benchmark/benchmark.h>

#include "autograd/engine.hpp"
#include "autograd/transforms.hpp"
#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "theory/hessian.hpp"

using namespace theta;
using theta::autograd::Var;

namespace {

// Three bias-free 8x8 linear layers, batch 16, MSE, one full SGD step: pure framework overhead.
void BM_TinyDeepLinearStep(benchmark::State& state) {
  Rng rng(1);
  const nn::MlpOptions opts{.activation = nn::ActivationKind::identity, .bias = false, .dtype = DType::f32};
  auto net = nn::mlp({8, 8, 8, 8}, rng, opts);
  nn::Sgd sgd(net->named_parameters(), {.lr = 1e-3});
  const Var x(rng.normal({16, 8}, 0, 1, DType::f32));
  const Var y(rng.normal({16, 8}, 0, 1, DType::f32));
  for (auto _ : state) {
    sgd.zero_grad();
    const Var loss = nn::mse_loss(net->forward(x), y);
    autograd::backward(loss);
    sgd.step();
    benchmark::DoNotOptimize(loss.value().raw_data());
  }
}
BENCHMARK(BM_TinyDeepLinearStep);

struct MlpProblem {
  std::shared_ptr<nn::Sequential> net;
  Var x;
  Tensor labels;
};

// MLP 784-512-512-10 with ReLU, batch 128, softmax cross-entropy over integer labels.
MlpProblem make_mlp_problem() {
  Rng rng(2);
  MlpProblem p;
  p.net = nn::mlp({784, 512, 512, 10}, rng, {.activation = nn::ActivationKind::relu, .dtype = DType::f32});
  p.x = Var(rng.normal({128, 784}, 0, 1, DType::f32));
  p.labels = rng.integers({128}, 0, 10);
  return p;
}

// Working memory of one computation: the high-water mark of live tensor bytes above what was live
// before it (the allocator's cache of freed blocks does not count).
void report_peak(benchmark::State& state) {
  state.counters["peak_MiB"] =
      static_cast<double>(allocator_stats().peak_live_bytes - allocator_stats().live_bytes) / (1 << 20);
}

void BM_MlpGrad_F32(benchmark::State& state) {
  MlpProblem p = make_mlp_problem();
  const std::vector<Var> params = p.net->parameters();
  for (auto _ : state) {
    reset_peak_live_bytes();
    const Var loss = nn::cross_entropy(p.net->forward(p.x), p.labels);
    const auto g = autograd::grad({loss}, params);
    benchmark::DoNotOptimize(g.front().value().raw_data());
  }
  report_peak(state);
}
BENCHMARK(BM_MlpGrad_F32)->Unit(benchmark::kMillisecond);

// The forward pass alone, as a function of parameter values (the baseline of BM_MlpJvp_F32).
void BM_MlpForward_F32(benchmark::State& state) {
  MlpProblem p = make_mlp_problem();
  std::vector<Var> values;
  for (const auto& param : p.net->parameters()) values.emplace_back(param.value());
  for (auto _ : state) {
    const Var out = nn::functional_call(*p.net, values, p.x);
    benchmark::DoNotOptimize(out.value().raw_data());
  }
}
BENCHMARK(BM_MlpForward_F32)->Unit(benchmark::kMillisecond);

// Parameter values and a random direction in parameter space.
struct Direction {
  std::vector<Tensor> values, direction;
};

Direction parameter_direction(const nn::Module& net) {
  Rng rng(3);
  Direction d;
  for (const auto& param : net.parameters()) {
    d.values.push_back(param.value());
    d.direction.push_back(rng.normal(param.shape(), 0, 1, param.dtype()));
  }
  return d;
}

// One JVP of the network's outputs with respect to its parameters: J(w) v, [128, 10].
void run_mlp_jvp(benchmark::State& state, autograd::JvpMethod method) {
  MlpProblem p = make_mlp_problem();
  const Direction d = parameter_direction(*p.net);
  const autograd::Function outputs = [&p](const std::vector<Var>& params) {
    return std::vector<Var>{nn::functional_call(*p.net, params, p.x)};
  };
  for (auto _ : state) {
    reset_peak_live_bytes();
    const auto r = autograd::jvp(outputs, d.values, d.direction, method);
    benchmark::DoNotOptimize(r.tangents.front().raw_data());
  }
  report_peak(state);
}
void BM_MlpJvp_F32(benchmark::State& state) { run_mlp_jvp(state, autograd::JvpMethod::forward); }
BENCHMARK(BM_MlpJvp_F32)->Unit(benchmark::kMillisecond);
void BM_MlpJvpDoubleVjp_F32(benchmark::State& state) { run_mlp_jvp(state, autograd::JvpMethod::double_vjp); }
BENCHMARK(BM_MlpJvpDoubleVjp_F32)->Unit(benchmark::kMillisecond);

// H v of the cross-entropy loss with respect to the parameters. The loss as a function of the
// parameter values (the form hvp differentiates): the network's own forward through
// functional_call, the same graph BM_MlpGrad_F32 differentiates.
void run_mlp_hvp(benchmark::State& state, autograd::HvpMethod method) {
  MlpProblem p = make_mlp_problem();
  const Direction d = parameter_direction(*p.net);
  const auto loss_fn = theory::module_loss(
      p.net, p.x.value(), p.labels, [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); });
  for (auto _ : state) {
    reset_peak_live_bytes();
    const auto hv = autograd::hvp(loss_fn, d.values, d.direction, method);
    benchmark::DoNotOptimize(hv.front().raw_data());
  }
  report_peak(state);
}
void BM_MlpHvp_F32(benchmark::State& state) { run_mlp_hvp(state, autograd::HvpMethod::reverse_over_reverse); }
BENCHMARK(BM_MlpHvp_F32)->Unit(benchmark::kMillisecond);
void BM_MlpHvpFwdRev_F32(benchmark::State& state) { run_mlp_hvp(state, autograd::HvpMethod::forward_over_reverse); }
BENCHMARK(BM_MlpHvpFwdRev_F32)->Unit(benchmark::kMillisecond);

void BM_MlpTrainStep_F32(benchmark::State& state) {
  MlpProblem p = make_mlp_problem();
  nn::Sgd sgd(p.net->named_parameters(), {.lr = 1e-3});
  for (auto _ : state) {
    sgd.zero_grad();
    const Var loss = nn::cross_entropy(p.net->forward(p.x), p.labels);
    autograd::backward(loss);
    sgd.step();
    benchmark::DoNotOptimize(loss.value().raw_data());
  }
}
BENCHMARK(BM_MlpTrainStep_F32)->Unit(benchmark::kMillisecond);

}  // namespace

namespace {

// Note [Gemm floors]
// The *_GemmFloor rows issue the gemms of one step of the benchmark they are named after directly
// to cblas, on random operands of the same shapes: what the step costs with no framework at all.
// Their ratios to each other are the arithmetic floors of the ratios the issue-level targets are
// stated in (a JVP with respect to the weights needs x dW^T at every layer and dh W^T at every
// layer but the first: 2.4x the forward's multiply-adds on this MLP).

// Operands of the MLP's gemms (784-512-512-10, batch 128): weights, activations, gradients, and a
// second set standing for their tangents.
struct MlpOperands {
  Tensor x, w1, w2, w3, h1, h2, g3;
  explicit MlpOperands(std::uint64_t seed) {
    Rng rng(seed);
    x = rng.normal({128, 784}, 0, 1, DType::f32);
    w1 = rng.normal({512, 784}, 0, 1, DType::f32);
    w2 = rng.normal({512, 512}, 0, 1, DType::f32);
    w3 = rng.normal({10, 512}, 0, 1, DType::f32);
    h1 = rng.normal({128, 512}, 0, 1, DType::f32);
    h2 = rng.normal({128, 512}, 0, 1, DType::f32);
    g3 = rng.normal({128, 10}, 0, 1, DType::f32);
  }
};

void mlp_forward_gemms(const MlpOperands& o) {
  benchmark::DoNotOptimize(matmul(o.x, o.w1.t()).raw_data());
  benchmark::DoNotOptimize(matmul(o.h1, o.w2.t()).raw_data());
  benchmark::DoNotOptimize(matmul(o.h2, o.w3.t()).raw_data());
}

// Tangents of the pre-activations for weight tangents d: x dW1^T, dh1 W2^T + h1 dW2^T, ...
void mlp_tangent_gemms(const MlpOperands& o, const MlpOperands& d) {
  benchmark::DoNotOptimize(matmul(o.x, d.w1.t()).raw_data());
  Tensor t2 = matmul(d.h1, o.w2.t());
  t2.add_matmul_(o.h1, d.w2.t());
  Tensor t3 = matmul(d.h2, o.w3.t());
  t3.add_matmul_(o.h2, d.w3.t());
  benchmark::DoNotOptimize(t3.raw_data());
}

// Weight gradients and the gradients of h2, h1: dW3, dH2, dW2, dH1, dW1.
void mlp_backward_gemms(const MlpOperands& o) {
  benchmark::DoNotOptimize(matmul(o.g3.t(), o.h2).raw_data());
  const Tensor gh2 = matmul(o.g3, o.w3);
  benchmark::DoNotOptimize(matmul(gh2.t(), o.h1).raw_data());
  const Tensor gh1 = matmul(gh2, o.w2);
  benchmark::DoNotOptimize(matmul(gh1.t(), o.x).raw_data());
}

// Tangents of the backward products (the input x has none): d(g^T h) = dg^T h + g^T dh,
// d(g W) = dg W + g dW.
void mlp_backward_tangent_gemms(const MlpOperands& o, const MlpOperands& d) {
  Tensor dw3 = matmul(d.g3.t(), o.h2);
  dw3.add_matmul_(o.g3.t(), d.h2);
  Tensor dgh2 = matmul(d.g3, o.w3);
  dgh2.add_matmul_(o.g3, d.w3);
  Tensor dw2 = matmul(dgh2.t(), o.h1);
  dw2.add_matmul_(dgh2.t(), d.h1);
  Tensor dgh1 = matmul(dgh2, o.w2);
  dgh1.add_matmul_(dgh2, d.w2);
  benchmark::DoNotOptimize(matmul(dgh1.t(), o.x).raw_data());
  benchmark::DoNotOptimize(dw3.raw_data());
}

void BM_MlpForward_F32_GemmFloor(benchmark::State& state) {
  const MlpOperands o(4);
  for (auto _ : state) mlp_forward_gemms(o);
}
BENCHMARK(BM_MlpForward_F32_GemmFloor)->Unit(benchmark::kMillisecond);

void BM_MlpJvp_F32_GemmFloor(benchmark::State& state) {
  const MlpOperands o(4), d(5);
  for (auto _ : state) {
    mlp_forward_gemms(o);
    mlp_tangent_gemms(o, d);
  }
}
BENCHMARK(BM_MlpJvp_F32_GemmFloor)->Unit(benchmark::kMillisecond);

void BM_MlpHvpFwdRev_F32_GemmFloor(benchmark::State& state) {
  const MlpOperands o(4), d(5);
  for (auto _ : state) {
    mlp_forward_gemms(o);
    mlp_tangent_gemms(o, d);
    mlp_backward_gemms(o);
    mlp_backward_tangent_gemms(o, d);
  }
}
BENCHMARK(BM_MlpHvpFwdRev_F32_GemmFloor)->Unit(benchmark::kMillisecond);

// The gemms of one BM_MlpGrad_F32 step issued directly to cblas: the floor for that benchmark.
void BM_MlpGrad_F32_GemmFloor(benchmark::State& state) {
  const MlpOperands o(4);
  for (auto _ : state) {
    mlp_forward_gemms(o);
    mlp_backward_gemms(o);
  }
}
BENCHMARK(BM_MlpGrad_F32_GemmFloor)->Unit(benchmark::kMillisecond);

}  // namespace
