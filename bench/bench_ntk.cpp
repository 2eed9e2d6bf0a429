// Empirical NTK of an MLP 32-256-256-O (tanh, bias, NTK parameterisation), n = 256 random
// inputs, float64, full kernel [n, n, O, O]; the argument is O. Structured (two gemms per
// layer) against Jacobian contraction (per-sample Jacobians, then J J^T).

#include <benchmark/benchmark.h>

#include "nn/layers.hpp"
#include "theory/ntk.hpp"

using namespace theta;

namespace {

struct NtkProblem {
  std::shared_ptr<nn::Sequential> net;
  Tensor x;
};

NtkProblem make_ntk_problem(std::int64_t outputs) {
  Rng rng(21);
  NtkProblem p;
  p.net = nn::mlp({32, 256, 256, outputs}, rng,
                  {.activation = nn::ActivationKind::tanh, .parameterization = nn::Parameterization::ntk});
  p.x = rng.normal({256, 32});
  return p;
}

void run_ntk(benchmark::State& state, theory::NtkMethod method) {
  NtkProblem p = make_ntk_problem(state.range(0));
  // Untimed: the first call pays the first touch of its memory (Note [Warm kernel rows] in
  // bench_cnn.cpp; 3.4x the later calls' time for the contraction with one output).
  theory::empirical_ntk(*p.net, p.x, p.x, {.method = method});
  for (auto _ : state) {
    const Tensor k = theory::empirical_ntk(*p.net, p.x, p.x, {.method = method});
    benchmark::DoNotOptimize(k.raw_data());
  }
  state.counters["kernel_entries"] = static_cast<double>(256 * 256 * state.range(0) * state.range(0));
}

void BM_NtkStructured_F64(benchmark::State& state) { run_ntk(state, theory::NtkMethod::structured); }
void BM_NtkContraction_F64(benchmark::State& state) { run_ntk(state, theory::NtkMethod::contraction); }

BENCHMARK(BM_NtkStructured_F64)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_NtkContraction_F64)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);

}  // namespace
