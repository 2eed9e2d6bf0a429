// Hessian spectra of a 784-512-512-10 ReLU MLP (float64, batch 128, softmax cross-entropy):
// 20 Lanczos steps with full reorthogonalisation against its baseline, one Hessian-vector
// product through the same prebuilt gradient graph. Both report Hessian-vector products per
// second, so the ratio of the two rates is the cost of the Lanczos bookkeeping; the third
// benchmark isolates that bookkeeping (a diagonal operator of the same size costs one multiply)
// and reports the bytes its reorthogonalisation streams, which bound it by memory bandwidth.

#include <benchmark/benchmark.h>

#include <memory>

#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/hessian.hpp"

using namespace theta;

namespace {

// The Hessian operator of the mean cross-entropy at the MLP's initial parameters on a batch of
// 128 Gaussian inputs with random labels (669,706 parameters).
theory::LinearOperator make_mlp_hessian() {
  Rng rng(12);
  auto net = nn::mlp({784, 512, 512, 10}, rng, {.activation = nn::ActivationKind::relu, .dtype = DType::f64});
  const Tensor x = rng.normal({128, 784});
  const Tensor labels = rng.integers({128}, 0, 10);
  const auto loss = theory::module_loss(net, x, labels, [](const autograd::Var& logits, const Tensor& y) {
    return nn::cross_entropy(logits, y);
  });
  return theory::hessian_operator(loss, theory::parameter_values(*net));
}

void BM_Hvp_Single_F64(benchmark::State& state) {
  const theory::LinearOperator op = make_mlp_hessian();
  Rng rng(13);
  const Tensor v = rng.normal({op.size});
  for (auto _ : state) {
    const Tensor hv = op.apply(v);
    benchmark::DoNotOptimize(hv.raw_data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["params"] = static_cast<double>(op.size);
}
BENCHMARK(BM_Hvp_Single_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Hvp_Lanczos20_F64(benchmark::State& state) {
  const theory::LinearOperator op = make_mlp_hessian();
  const theory::LanczosOptions options{.iterations = 20, .seed = 14, .explicit_residuals = false};
  // Untimed: the first run pays the first touch of its memory (Note [Warm kernel rows] in
  // bench_cnn.cpp; 1.8x the later runs' time).
  theory::lanczos_top_k(op, 1, options);
  for (auto _ : state) {
    const theory::EigenResult r = theory::lanczos_top_k(op, 1, options);
    benchmark::DoNotOptimize(r.values.raw_data());
  }
  state.SetItemsProcessed(state.iterations() * 20);
  state.counters["params"] = static_cast<double>(op.size);
}
BENCHMARK(BM_Hvp_Lanczos20_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Lanczos20_DiagonalOperator_F64(benchmark::State& state) {
  const std::int64_t n = make_mlp_hessian().size;
  Rng rng(15);
  const Tensor d = rng.uniform({n}, -1.0, 1.0);
  const theory::LinearOperator op{n, [d](const Tensor& v) { return mul(d, v); }};
  const theory::LanczosOptions options{.iterations = 20, .seed = 14, .explicit_residuals = false};
  for (auto _ : state) {
    const theory::EigenResult r = theory::lanczos_top_k(op, 1, options);
    benchmark::DoNotOptimize(r.values.raw_data());
  }
  // Step j reads the j + 1 basis vectors twice (c = Q w, then w -= Q^T c): 2 * 210 rows per run.
  state.SetBytesProcessed(state.iterations() * 2 * 210 * n * static_cast<std::int64_t>(sizeof(double)));
}
BENCHMARK(BM_Lanczos20_DiagonalOperator_F64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
