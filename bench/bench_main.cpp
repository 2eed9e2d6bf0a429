// theta_bench: Google Benchmark main that fixes a misdetected OpenBLAS core first and records
// the OpenBLAS core, thread count and SIMD architecture in the benchmark context.
#include <benchmark/benchmark.h>

#include "tensor/blas_runtime.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/parallel.hpp"

int main(int argc, char** argv) {
  theta::ensure_blas_core(argc, argv);
  benchmark::AddCustomContext("openblas_core", theta::blas_core_name());
  benchmark::AddCustomContext("threads", std::to_string(theta::get_num_threads()));
  benchmark::AddCustomContext("simd", theta::detail::kernels().arch_name);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
