#pragma once
// A guard shared by the benchmarks that run on one thread (Note [Single-threaded benchmarks] in
// bench_tensor.cpp).

#include <benchmark/benchmark.h>

#include "tensor/parallel.hpp"

namespace theta::bench {

// Runs theta and OpenBLAS on one thread while alive (Note [Single-threaded benchmarks]).
class OneThread {
 public:
  explicit OneThread(benchmark::State& state) : saved_(theta::get_num_threads()) {
    theta::set_num_threads(1);
    state.SetLabel("1 thread");
  }
  ~OneThread() { theta::set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

}  // namespace theta::bench
