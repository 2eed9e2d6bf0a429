// Autograd and training-step benchmarks on small and mid-sized MLPs (float32, as the PyTorch
// figures they are compared with).

#include <benchmark/benchmark.h>

#include "autograd/engine.hpp"
#include "autograd/transforms.hpp"
#include "nn/functional.hpp"
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

void BM_MlpGrad_F32(benchmark::State& state) {
  MlpProblem p = make_mlp_problem();
  const std::vector<Var> params = p.net->parameters();
  for (auto _ : state) {
    const Var loss = nn::cross_entropy(p.net->forward(p.x), p.labels);
    const auto g = autograd::grad({loss}, params);
    benchmark::DoNotOptimize(g.front().value().raw_data());
  }
}
BENCHMARK(BM_MlpGrad_F32)->Unit(benchmark::kMillisecond);

void BM_MlpHvp_F32(benchmark::State& state) {
  MlpProblem p = make_mlp_problem();
  Rng rng(3);
  std::vector<Tensor> values, direction;
  for (const auto& param : p.net->parameters()) {
    values.push_back(param.value());
    direction.push_back(rng.normal(param.shape(), 0, 1, DType::f32));
  }
  // The loss as a function of the parameter values (the form hvp differentiates): the network's
  // own forward through functional_call, the same graph BM_MlpGrad_F32 differentiates.
  const auto loss_fn = theory::module_loss(
      p.net, p.x.value(), p.labels, [](const Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); });
  for (auto _ : state) {
    const auto hv = autograd::hvp(loss_fn, values, direction);
    benchmark::DoNotOptimize(hv.front().raw_data());
  }
}
BENCHMARK(BM_MlpHvp_F32)->Unit(benchmark::kMillisecond);

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

// The gemms of one BM_MlpGrad_F32 step issued directly to cblas: the floor for that benchmark.
void BM_MlpGrad_F32_GemmFloor(benchmark::State& state) {
  Rng rng(4);
  const Tensor x = rng.normal({128, 784}, 0, 1, DType::f32);
  const Tensor w1 = rng.normal({512, 784}, 0, 1, DType::f32), w2 = rng.normal({512, 512}, 0, 1, DType::f32);
  const Tensor w3 = rng.normal({10, 512}, 0, 1, DType::f32);
  const Tensor h1 = rng.normal({128, 512}, 0, 1, DType::f32), h2 = rng.normal({128, 512}, 0, 1, DType::f32);
  const Tensor g3 = rng.normal({128, 10}, 0, 1, DType::f32);
  for (auto _ : state) {
    // forward
    benchmark::DoNotOptimize(matmul(x, w1.t()).raw_data());
    benchmark::DoNotOptimize(matmul(h1, w2.t()).raw_data());
    benchmark::DoNotOptimize(matmul(h2, w3.t()).raw_data());
    // backward: dW3, dH2, dW2, dH1, dW1
    benchmark::DoNotOptimize(matmul(g3.t(), h2).raw_data());
    const Tensor gh2 = matmul(g3, w3);
    benchmark::DoNotOptimize(matmul(gh2.t(), h1).raw_data());
    const Tensor gh1 = matmul(gh2, w2);
    benchmark::DoNotOptimize(matmul(gh1.t(), x).raw_data());
  }
}
BENCHMARK(BM_MlpGrad_F32_GemmFloor)->Unit(benchmark::kMillisecond);

}  // namespace
