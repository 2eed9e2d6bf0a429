// Analytic convolutional kernels (theory::analytic_cntk) of a 3-conv-layer ReLU net (3x3 filters,
// zero padding) on the first n shipped 8x8 digits, images [n, 1, 8, 8] scaled to [0, 1], the
// kernel of the images with themselves (the symmetric half, n (n + 1) / 2 pairs); the argument
// is n. CNTK-GAP runs the full pixel-pair programme (64 x 64 entries per pair and layer),
// CNTK-Flatten only its diagonal (64 entries). Runs on get_num_threads() threads
// (OMP_NUM_THREADS or THETA_NUM_THREADS set it); the label says how many. The baseline is the
// fully connected analytic NTK of the same digits as 64-vectors (4 linear layers).

#include <benchmark/benchmark.h>

#include <string>

#include "nn/data.hpp"
#include "tensor/parallel.hpp"
#include "theory/cntk.hpp"
#include "theory/ntk.hpp"

using namespace theta;

namespace {

Tensor digit_images(std::int64_t n) {
  static const Tensor all = nn::load_digits().x;  // [1797, 64], pixels 0..16
  return (all.slice(0, 0, n) * (1.0 / 16.0)).reshape({n, 1, 8, 8});
}

void run_cntk(benchmark::State& state, theory::CntkReadout readout) {
  const std::int64_t n = state.range(0);
  const Tensor x = digit_images(n);
  for (auto _ : state) {
    const theory::AnalyticKernels k = theory::analytic_cntk(x, x, {.conv_layers = 3, .readout = readout});
    benchmark::DoNotOptimize(k.ntk.raw_data());
  }
  const double pairs = static_cast<double>(n * (n + 1) / 2);
  state.counters["pairs_per_second"] = benchmark::Counter(pairs, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::to_string(get_num_threads()) + " threads");
}

void BM_CntkGap_F64(benchmark::State& state) { run_cntk(state, theory::CntkReadout::global_average); }
void BM_CntkFlatten_F64(benchmark::State& state) { run_cntk(state, theory::CntkReadout::flatten); }

void BM_CntkBaselineFcNtk_F64(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Tensor x = digit_images(n).reshape({n, 64});
  for (auto _ : state) {
    const theory::AnalyticKernels k = theory::analytic_ntk(x, x, 4, nn::ActivationKind::relu, 1.0, 0.0);
    benchmark::DoNotOptimize(k.ntk.raw_data());
  }
  state.SetLabel(std::to_string(get_num_threads()) + " threads");
}

BENCHMARK(BM_CntkGap_F64)->Arg(500)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CntkFlatten_F64)->Arg(500)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CntkBaselineFcNtk_F64)->Arg(500)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
