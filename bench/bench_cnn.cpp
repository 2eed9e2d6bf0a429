// The CNN of the convolution benchmarks: Unflatten -> Conv2d(1 -> 32, 3x3, padding 1) -> ReLU ->
// Conv2d(32 -> 64, 3x3, padding 1) -> ReLU -> GlobalAvgPool2d -> Linear(64 -> 10), on the first
// 8x8 digits (pixel values / 16).
//   BM_Conv2dTrainStep_F32          float32, standard parameterisation, batches of 128: forward,
//                                   cross-entropy, backward, SGD step
//   BM_NtkStructuredCnn_F64         float64, NTK parameterisation, the full [256, 256, 10, 10]
//                                   empirical NTK of 256 digits by the structured rule
//   BM_NtkStructuredCnnTrace_F64    the same kernel's trace over outputs [256, 256]
//   BM_NtkTiledCnn_F64/T            the full kernel again, in tiles of T x T samples (bounded
//                                   memory: one row and one column of tiles' factors at a time)
// The kernel rows report their working memory (peak_MiB) next to the per-sample Jacobian's.
// bench/compare_torch.py runs the same workloads in PyTorch (functorch vmap(jacrev) + contraction
// for the kernels).

#include <benchmark/benchmark.h>

#include "autograd/engine.hpp"
#include "nn/conv.hpp"
#include "nn/data.hpp"
#include "nn/optim.hpp"
#include "tensor/storage.hpp"
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

// Note [Warm kernel rows]
// A kernel computation's first call in a process pays the first touch of its few hundred MiB
// (page faults: ~40% of a call here); the allocator's cache serves the later calls. A run of
// half a second times a single call, so the kernel rows make one untimed call first and report
// steady-state calls, as a user computing kernels in a loop sees them (bench/compare_torch.py
// makes one untimed PyTorch call first too).

// Working memory of one kernel computation, against the per-sample Jacobian's n O P 8 bytes:
// the high-water mark of live tensor bytes (allocator_stats), so the allocator's cache of freed
// blocks does not count.
void report_memory(benchmark::State& state, const nn::Module& net, std::int64_t n, std::int64_t outputs) {
  std::int64_t params = 0;
  for (const auto& p : net.parameters()) params += p.numel();
  const double mib = 1 << 20;
  const double live = static_cast<double>(allocator_stats().peak_live_bytes - allocator_stats().live_bytes);
  state.counters["peak_MiB"] = live / mib;
  state.counters["jacobian_MiB"] = static_cast<double>(n * outputs * params * 8) / mib;
}

void run_cnn_ntk(benchmark::State& state, bool trace) {
  Rng rng(4);
  auto net = nn::cnn(bench_cnn(DType::f64, nn::Parameterization::ntk), rng);
  const Tensor x = first_digits(256, DType::f64).x;
  const auto compute = [&] { return trace ? theory::empirical_ntk_trace(*net, x, x) : theory::empirical_ntk(*net, x, x); };
  compute();  // untimed: the first call pays the first touch of its memory (Note [Warm kernel rows])
  for (auto _ : state) {
    reset_peak_live_bytes();
    const Tensor k = compute();
    benchmark::DoNotOptimize(k.raw_data());
  }
  report_memory(state, *net, 256, 10);
}
void BM_NtkStructuredCnn_F64(benchmark::State& state) { run_cnn_ntk(state, false); }
void BM_NtkStructuredCnnTrace_F64(benchmark::State& state) { run_cnn_ntk(state, true); }
BENCHMARK(BM_NtkStructuredCnn_F64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_NtkStructuredCnnTrace_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_NtkTiledCnn_F64(benchmark::State& state) {
  Rng rng(4);
  auto net = nn::cnn(bench_cnn(DType::f64, nn::Parameterization::ntk), rng);
  const Tensor x = first_digits(256, DType::f64).x;
  const theory::TiledNtkOptions options{.tile = state.range(0), .form = theory::NtkForm::full};
  theory::tiled_ntk(*net, x, x, options);  // untimed (Note [Warm kernel rows])
  for (auto _ : state) {
    reset_peak_live_bytes();
    const Tensor k = theory::tiled_ntk(*net, x, x, options);
    benchmark::DoNotOptimize(k.raw_data());
  }
  report_memory(state, *net, 256, 10);
}
BENCHMARK(BM_NtkTiledCnn_F64)->Arg(64)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
