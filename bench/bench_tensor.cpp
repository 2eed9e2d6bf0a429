// Benchmarks of the tensor layer, each next to its baseline:
//   matmul (theta)                 vs raw cblas_?gemm on the same buffers     (FLOP/s, 2 n^3 per call)
//   relu, add, tanh, exp, sum      vs std::memcpy of the same number of floats (bytes read + written)
//   relu with an empty allocator cache every iteration: what the caching allocator saves
//
// Note [Single-threaded benchmarks]
// These benchmarks run on one thread (theta's loops and OpenBLAS alike), for two reasons. Google
// Benchmark turns FLOP and byte counts into rates with the CPU time of the calling thread, which
// overstates any op that hands part of its work to other threads; and the baselines (memcpy, a
// single cblas call) are compared per core. Each row is labelled "1 thread".
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "tensor/rng.hpp"
#include "tensor/storage.hpp"
#include "bench/one_thread.hpp"

namespace {

using theta::bench::OneThread;

using theta::DType;
using theta::Tensor;

constexpr std::int64_t kMatmulSize = 1024;
constexpr std::int64_t kStreamSize = std::int64_t{1} << 24;  // 16M floats, 64 MiB per tensor

void set_gemm_flops(benchmark::State& state, std::int64_t n) {
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

// Bytes moved per call: `streams` tensors of n floats read or written.
void set_stream_bytes(benchmark::State& state, std::int64_t n, int streams) {
  state.SetBytesProcessed(state.iterations() * n * streams * static_cast<std::int64_t>(sizeof(float)));
}

template <DType D> void bm_matmul(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  theta::Rng rng(1);
  const Tensor a = rng.normal({n, n}, 0.0, 1.0, D);
  const Tensor b = rng.normal({n, n}, 0.0, 1.0, D);
  for (auto _ : state) {
    Tensor c = theta::matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
    benchmark::ClobberMemory();
  }
  set_gemm_flops(state, n);
}

void BM_Matmul_F32(benchmark::State& state) { bm_matmul<DType::f32>(state); }
void BM_Matmul_F64(benchmark::State& state) { bm_matmul<DType::f64>(state); }

void BM_CblasSgemm(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const int ni = static_cast<int>(n);
  theta::Rng rng(1);
  const Tensor a = rng.normal({n, n}, 0.0, 1.0, DType::f32);
  const Tensor b = rng.normal({n, n}, 0.0, 1.0, DType::f32);
  Tensor c = theta::zeros({n, n}, DType::f32);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, a.data<float>(), ni,
                b.data<float>(), ni, 0.0f, c.data<float>(), ni);
    benchmark::DoNotOptimize(c.raw_data());
    benchmark::ClobberMemory();
  }
  set_gemm_flops(state, n);
}

void BM_CblasDgemm(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const int ni = static_cast<int>(n);
  theta::Rng rng(1);
  const Tensor a = rng.normal({n, n}, 0.0, 1.0, DType::f64);
  const Tensor b = rng.normal({n, n}, 0.0, 1.0, DType::f64);
  Tensor c = theta::zeros({n, n}, DType::f64);
  for (auto _ : state) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0, a.data<double>(), ni,
                b.data<double>(), ni, 0.0, c.data<double>(), ni);
    benchmark::DoNotOptimize(c.raw_data());
    benchmark::ClobberMemory();
  }
  set_gemm_flops(state, n);
}

BENCHMARK(BM_Matmul_F32)->Arg(kMatmulSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CblasSgemm)->Arg(kMatmulSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul_F64)->Arg(kMatmulSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CblasDgemm)->Arg(kMatmulSize)->Unit(benchmark::kMillisecond);

Tensor stream_input(std::int64_t n, std::uint64_t seed, double lo, double hi) {
  theta::Rng rng(seed);
  return rng.uniform({n}, lo, hi, DType::f32);
}

void BM_Memcpy_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const Tensor x = stream_input(n, 1, -4.0, 4.0);
  std::vector<float> y(static_cast<std::size_t>(n));
  for (auto _ : state) {
    std::memcpy(y.data(), x.data<float>(), static_cast<std::size_t>(n) * sizeof(float));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_stream_bytes(state, n, 2);
}

template <class Op> void bm_unary(benchmark::State& state, const Op& op, double lo, double hi) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const Tensor x = stream_input(n, 1, lo, hi);
  for (auto _ : state) {
    Tensor y = op(x);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_stream_bytes(state, n, 2);
}

void BM_Relu_F32(benchmark::State& state) {
  bm_unary(state, [](const Tensor& x) { return theta::relu(x); }, -4.0, 4.0);
}
void BM_Tanh_F32(benchmark::State& state) {
  bm_unary(state, [](const Tensor& x) { return theta::tanh(x); }, -4.0, 4.0);
}
void BM_Exp_F32(benchmark::State& state) {
  bm_unary(state, [](const Tensor& x) { return theta::exp(x); }, -10.0, 10.0);
}

void BM_Add_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const Tensor a = stream_input(n, 1, -4.0, 4.0);
  const Tensor b = stream_input(n, 2, -4.0, 4.0);
  for (auto _ : state) {
    Tensor y = theta::add(a, b);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_stream_bytes(state, n, 3);
}

void BM_Sum_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const Tensor x = stream_input(n, 1, -4.0, 4.0);
  for (auto _ : state) {
    Tensor s = theta::sum(x);
    benchmark::DoNotOptimize(s.raw_data());
  }
  set_stream_bytes(state, n, 1);
}

// Every iteration returns the allocator's cached blocks to the system first, so the output is a
// fresh allocation whose pages fault in on first touch (compare with BM_Relu_F32).
void BM_Relu_F32_FreshPages(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t n = state.range(0);
  const Tensor x = stream_input(n, 1, -4.0, 4.0);
  for (auto _ : state) {
    theta::empty_allocator_cache();
    Tensor y = theta::relu(x);
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_stream_bytes(state, n, 2);
}

BENCHMARK(BM_Memcpy_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Relu_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Relu_F32_FreshPages)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Add_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Tanh_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Exp_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sum_F32)->Arg(kStreamSize)->Unit(benchmark::kMillisecond);

}  // namespace
