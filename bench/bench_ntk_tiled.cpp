// Tiled NTK trace of an MLP 64-512-512-1 (tanh, bias, NTK parameterisation) on n random inputs
// with themselves, float64, tiles of 256; the argument is n. BM_NtkTiled_GemmFloor issues the
// same BLAS calls (the forward and output-gradient gemms of each block's factors, and per layer
// the input and output-gradient products of each tile) on random operands of the same shapes:
// the floor of the tiled kernel. n = 2048 runs by default; THETA_BENCH_LARGE=1 adds 4000, 8000,
// 16000 and 32000 (seconds to minutes each, 2 to 8 GB for the in-memory kernel).

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "theory/ntk_tiled.hpp"

using namespace theta;

namespace {

constexpr std::int64_t kTile = 256;
constexpr std::int64_t kIn = 64, kWidth = 512;

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void BM_NtkTiled_F64(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Rng rng(31);
  auto net = nn::mlp({kIn, kWidth, kWidth, 1}, rng,
                     {.activation = nn::ActivationKind::tanh, .parameterization = nn::Parameterization::ntk});
  const Tensor x = rng.normal({n, kIn});
  for (auto _ : state) {
    const Tensor k = theory::tiled_ntk(*net, x, x, {.tile = kTile, .form = theory::NtkForm::trace});
    benchmark::DoNotOptimize(k.raw_data());
  }
  state.counters["tiles"] = static_cast<double>(theory::tile_plan(n, n, kTile, true).size());
  state.counters["peak_rss_MiB"] = peak_rss_mib();
}

void BM_NtkTiled_GemmFloor(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Rng rng(32);
  const Tensor w1 = rng.normal({kWidth, kIn}), w2 = rng.normal({kWidth, kWidth}), w3 = rng.normal({1, kWidth});
  const Tensor x = rng.normal({kTile, kIn}), h = rng.normal({kTile, kWidth}), g = rng.normal({kTile, 1});
  const Tensor x_other = rng.normal({kTile, kIn}), h_other = rng.normal({kTile, kWidth});
  const Tensor g_other = rng.normal({kTile, 1});
  const auto rows = [&](const Tensor& t, std::int64_t count) { return t.slice(0, 0, count); };
  // A block's factors: the forward (three layers) and the output gradients through layers 3 and 2.
  const auto factors = [&](std::int64_t b) {
    benchmark::DoNotOptimize(matmul(rows(x, b), w1.t()).raw_data());
    benchmark::DoNotOptimize(matmul(rows(h, b), w2.t()).raw_data());
    benchmark::DoNotOptimize(matmul(rows(h, b), w3.t()).raw_data());
    benchmark::DoNotOptimize(matmul(rows(g, b), w3).raw_data());
    benchmark::DoNotOptimize(matmul(rows(h, b), w2).raw_data());
  };
  // Per layer, the input kernel and the output-gradient product of one tile.
  const auto tile = [&](std::int64_t bi, std::int64_t bj, bool diagonal) {
    const Tensor pairs[][2] = {{x, x_other}, {h, h_other}, {h, h_other}, {h, h_other}, {h, h_other}, {g, g_other}};
    for (const auto& [a, other] : pairs)
      benchmark::DoNotOptimize((diagonal ? gram(rows(a, bi)) : matmul(rows(a, bi), rows(other, bj).t())).raw_data());
  };
  const auto plan = theory::tile_plan(n, n, kTile, true);
  const auto size_of = [&](std::int64_t block) { return std::min(kTile, n - block * kTile); };
  for (auto _ : state) {
    std::int64_t row = -1;
    for (const auto& [i, j] : plan) {
      if (i != row) factors(size_of(i));
      row = i;
      if (i != j) factors(size_of(j));
      tile(size_of(i), size_of(j), i == j);
    }
  }
}

void tiled_sizes(benchmark::internal::Benchmark* b) {
  b->Arg(2048);
  const char* large = std::getenv("THETA_BENCH_LARGE");
  if (large != nullptr && std::string(large) == "1") b->Arg(4000)->Arg(8000)->Arg(16000)->Arg(32000);
  b->Unit(benchmark::kMillisecond)->Iterations(1);
}

BENCHMARK(BM_NtkTiled_F64)->Apply(tiled_sizes);
BENCHMARK(BM_NtkTiled_GemmFloor)->Apply(tiled_sizes);

}  // namespace
