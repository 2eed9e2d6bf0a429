// Benchmarks of conv2d and its adjoints, each next to the gemm floor of the im2col route:
//   conv2d, conv2d_input_grad, conv2d_weight_grad and both adjoints at once (conv2d_grads) on
//   x [128, 32, 8, 8], w [64, 32, 3, 3], padding 1
//   vs the same per-sample cblas_sgemm calls on prepared column buffers (no im2col, no col2im)
// FLOP/s counts 2 N C_out (C_in kh kw) (H_out W_out) FLOP per call, the direct form's. These 3x3
// stride-1 float32 convolutions take the Winograd route with F(4x4, 3x3) (Note [Winograd
// convolution] in tensor/conv_winograd.cpp), whose gemms do a quarter of those multiply-adds: a
// conv row below its floor row is what the route saves beyond its transforms. One thread, as in bench_tensor.cpp
// (Note [Single-threaded benchmarks] there).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>

#include "tensor/conv.hpp"
#include "tensor/parallel.hpp"
#include "tensor/rng.hpp"
#include "bench/one_thread.hpp"

namespace {

using theta::DType;
using theta::Tensor;

constexpr std::int64_t kN = 128, kCin = 32, kSize = 8, kCout = 64, kKernel = 3;
constexpr std::int64_t kTaps = kCin * kKernel * kKernel;  // K: rows of a column buffer
constexpr std::int64_t kPixels = kSize * kSize;           // L: output pixels (padding 1 keeps 8x8)

using theta::bench::OneThread;

theta::Conv2dOptions options() {
  theta::Conv2dOptions o;
  o.padding = {1, 1};
  return o;
}

void set_conv_flops(benchmark::State& state) {
  const double flops = 2.0 * static_cast<double>(kN * kCout * kTaps * kPixels);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

struct Operands {
  Tensor x, w, g;
  Operands() {
    theta::Rng rng(1);
    x = rng.normal({kN, kCin, kSize, kSize}, 0.0, 1.0, DType::f32);
    w = rng.normal({kCout, kCin, kKernel, kKernel}, 0.0, 1.0, DType::f32);
    g = rng.normal({kN, kCout, kSize, kSize}, 0.0, 1.0, DType::f32);
  }
};

void BM_Conv2d_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const Operands op;
  for (auto _ : state) {
    Tensor y = theta::conv2d(op.x, op.w, options());
    benchmark::DoNotOptimize(y.raw_data());
    benchmark::ClobberMemory();
  }
  set_conv_flops(state);
}

void BM_Conv2dInputGrad_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const Operands op;
  for (auto _ : state) {
    Tensor dx = theta::conv2d_input_grad(op.g, op.w, op.x.shape(), options());
    benchmark::DoNotOptimize(dx.raw_data());
    benchmark::ClobberMemory();
  }
  set_conv_flops(state);
}

void BM_Conv2dWeightGrad_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const Operands op;
  for (auto _ : state) {
    Tensor dw = theta::conv2d_weight_grad(op.x, op.g, op.w.shape(), options());
    benchmark::DoNotOptimize(dw.raw_data());
    benchmark::ClobberMemory();
  }
  set_conv_flops(state);
}

// Both adjoints from one call, as a backward pass takes them; its baseline is the sum of the two
// rows above (the transform of g they would each make is shared). FLOP/s counts both adjoints.
void BM_Conv2dGrads_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const Operands op;
  for (auto _ : state) {
    theta::Conv2dGrads grads = theta::conv2d_grads(op.x, op.w, op.g, options());
    benchmark::DoNotOptimize(grads.input.raw_data());
    benchmark::DoNotOptimize(grads.weight.raw_data());
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * static_cast<double>(kN * kCout * kTaps * kPixels);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The gemms of the three ops alone, per sample, on column buffers built once:
// 0 forward [C_out, K] @ [K, L], 1 input adjoint [K, C_out] @ [C_out, L], 2 weight adjoint
// [C_out, L] @ [L, K] accumulated over the batch.
void BM_Conv2dGemmFloor_F32(benchmark::State& state) {
  const OneThread one_thread(state);
  const std::int64_t which = state.range(0);
  state.SetLabel(which == 0 ? "1 thread, forward" : which == 1 ? "1 thread, input_grad" : "1 thread, weight_grad");
  theta::Rng rng(1);
  const Tensor cols = rng.normal({kN, kTaps, kPixels}, 0.0, 1.0, DType::f32);
  const Tensor w = rng.normal({kCout, kTaps}, 0.0, 1.0, DType::f32);
  const Tensor g = rng.normal({kN, kCout, kPixels}, 0.0, 1.0, DType::f32);
  const Tensor out = theta::zeros({kN, kCout, kPixels}, DType::f32);
  const Tensor dcols = theta::zeros({kTaps, kPixels}, DType::f32);
  const Tensor dw = theta::zeros({kCout, kTaps}, DType::f32);
  const int cout = static_cast<int>(kCout), taps = static_cast<int>(kTaps), pixels = static_cast<int>(kPixels);
  for (auto _ : state) {
    for (std::int64_t s = 0; s < kN; ++s) {
      const float* col = cols.data<float>() + s * kTaps * kPixels;
      const float* gs = g.data<float>() + s * kCout * kPixels;
      if (which == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, pixels, taps, 1.0f, w.data<float>(), taps, col,
                    pixels, 0.0f, out.data<float>() + s * kCout * kPixels, pixels);
      else if (which == 1)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, taps, pixels, cout, 1.0f, w.data<float>(), taps, gs,
                    pixels, 0.0f, dcols.data<float>(), pixels);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, taps, pixels, 1.0f, gs, pixels, col, pixels,
                    s == 0 ? 0.0f : 1.0f, dw.data<float>(), taps);
    }
    benchmark::ClobberMemory();
  }
  set_conv_flops(state);
}

}  // namespace

BENCHMARK(BM_Conv2d_F32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2dInputGrad_F32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2dWeightGrad_F32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2dGrads_F32)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2dGemmFloor_F32)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);
