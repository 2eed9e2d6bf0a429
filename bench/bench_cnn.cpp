// The CNN of the convolution benchmarks: Unflatten -> Conv2d(1 -> 32, 3x3, padding 1) -> ReLU ->
// Conv2d(32 -> 64, 3x3, padding 1) -> ReLU -> GlobalAvgPool2d -> Linear(64 -> 10), on the first
// 8x8 digits (pixel values / 16).
//   BM_Conv2dTrainStep_F32          float32, standard parameterisation, batches of 128: forward,
//                                   cross-entropy, backward, SGD step
//   BM_NtkStructuredCnn_F64         float64, NTK parameterisation, the full [256, 256, 10, 10]
//                                   empirical NTK of 256 digits by the structured rule
//   BM_NtkStructuredCnnTrace_F64    the same kernel's trace over outputs [256, 256]
//   BM_NtkTiledCnn_F64              the full kernel again, in tiles of 64 x 64 samples (bounded
//                                   memory: one row of tiles' factors at a time)
// bench/compare_torch.py runs the same workloads in PyTorch (functorch vmap(jacrev) + contraction
// for the kernels).

#include <benchmark/benchmark.h>

#include "autograd/engine.hpp"
#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "nn/optim.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_tiled.hpp"

using namespace theta;

namespace {

// The first n digits as rows [n, 64] of pixel values / 16, with their labels.
nn::Dataset first_digits(std::int64_t n, DType dtype) {
  const nn::Dataset all = nn::load_digits();
  return {.x = (all.x.slice(0, 0, n) / 16.0).to(dtype), .y = all.y.slice(0, 0, n)};
}

nn::CnnOptions bench_cnn(DType dtype, nn::Parameterization parameterization) {
  return {.image = {1, 8, 8},
          .channels = {32, 64},
          .kernel_size = 3,
          .out_features = 10,
          .parameterization = parameterization,
          .dtype = dtype};
}

void BM_Conv2dTrainStep_F32(benchmark::State& state) {
  Rng rng(3);
  auto net = nn::cnn(bench_cnn(DType::f32, nn::Parameterization::standard), rng);
  const nn::Dataset batch = first_digits(128, DType::f32);
  nn::Sgd sgd(net->named_parameters(), {.lr = 1e-2});
  for (auto _ : state) {
    sgd.zero_grad();
    const autograd::Var loss = nn::cross_entropy((*net)(autograd::Var(batch.x)), batch.y);
    autograd::backward(loss);
    sgd.step();
    benchmark::DoNotOptimize(loss.value().raw_data());
  }
}
BENCHMARK(BM_Conv2dTrainStep_F32)->Unit(benchmark::kMillisecond);

void run_cnn_ntk(benchmark::State& state, bool trace) {
  Rng rng(4);
  auto net = nn::cnn(bench_cnn(DType::f64, nn::Parameterization::ntk), rng);
  const Tensor x = first_digits(256, DType::f64).x;
  for (auto _ : state) {
    const Tensor k = trace ? theory::empirical_ntk_trace(*net, x, x) : theory::empirical_ntk(*net, x, x);
    benchmark::DoNotOptimize(k.raw_data());
  }
}
void BM_NtkStructuredCnn_F64(benchmark::State& state) { run_cnn_ntk(state, false); }
void BM_NtkStructuredCnnTrace_F64(benchmark::State& state) { run_cnn_ntk(state, true); }
BENCHMARK(BM_NtkStructuredCnn_F64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_NtkStructuredCnnTrace_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_NtkTiledCnn_F64(benchmark::State& state) {
  Rng rng(4);
  auto net = nn::cnn(bench_cnn(DType::f64, nn::Parameterization::ntk), rng);
  const Tensor x = first_digits(256, DType::f64).x;
  for (auto _ : state) {
    const Tensor k = theory::tiled_ntk(*net, x, x, {.tile = 64, .form = theory::NtkForm::full});
    benchmark::DoNotOptimize(k.raw_data());
  }
}
BENCHMARK(BM_NtkTiledCnn_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
