// The NTK operator (K v without forming K) on the MLP 64-512-512-1 (float64, NTK parameterisation)
// against one gradient over the same points, taken in the same chunks.
//
// Run alone (--benchmark_filter=NtkOperator) for the peak RSS counter: it is the process's
// high-water mark, so rows run before it in the same process raise it.

#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include "autograd/engine.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tensor/storage.hpp"
#include "theory/ntk_operator.hpp"

using namespace theta;

namespace {

constexpr std::int64_t kIn = 64, kWidth = 512, kChunk = 1024;

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

std::shared_ptr<nn::Sequential> operator_mlp(Rng& rng) {
  return nn::mlp({kIn, kWidth, kWidth, 1}, rng,
                 {.activation = nn::ActivationKind::tanh, .parameterization = nn::Parameterization::ntk});
}

void report_memory(benchmark::State& state) {
  state.counters["peak_live_MiB"] =
      static_cast<double>(allocator_stats().peak_live_bytes - allocator_stats().live_bytes) / (1 << 20);
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

// One product K v on n points, chunks of 1024.
void BM_NtkOperator_F64(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Rng rng(41);
  auto net = operator_mlp(rng);
  const Tensor x = rng.normal({n, kIn});
  const Tensor v = rng.normal({n});
  const theory::LinearOperator op = theory::ntk_operator(net, x, {.chunk = kChunk});
  for (auto _ : state) {
    reset_peak_live_bytes();
    const Tensor kv = op.apply(v);
    benchmark::DoNotOptimize(kv.raw_data());
  }
  report_memory(state);
}
BENCHMARK(BM_NtkOperator_F64)->Arg(50000)->Unit(benchmark::kMillisecond)->Iterations(1);

// The baseline: the gradient of sum_i v_i f(x_i) in the parameters, over the same chunks.
void BM_NtkOperatorGradient_F64(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Rng rng(41);
  auto net = operator_mlp(rng);
  const Tensor x = rng.normal({n, kIn});
  const Tensor v = rng.normal({n, 1});
  const std::vector<autograd::Var> params = net->parameters();
  for (auto _ : state) {
    reset_peak_live_bytes();
    std::vector<Tensor> total;
    for (std::int64_t b = 0; b < n; b += kChunk) {
      const std::int64_t e = std::min(n, b + kChunk);
      const autograd::Var out = (*net)(autograd::Var(x.slice(0, b, e)));
      const auto g = autograd::grad({out}, params, {autograd::Var(v.slice(0, b, e))});
      if (total.empty()) {
        for (const auto& gi : g) total.push_back(gi.value());
      } else {
        for (std::size_t i = 0; i < g.size(); ++i) total[i] = add(total[i], g[i].value());
      }
    }
    benchmark::DoNotOptimize(total.front().raw_data());
  }
  report_memory(state);
}
BENCHMARK(BM_NtkOperatorGradient_F64)->Arg(50000)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
