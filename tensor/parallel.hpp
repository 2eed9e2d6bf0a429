#pragma once
// One thread-count setting for OpenBLAS and theta's own parallel loops.

#include <cstdint>
#include <functional>

namespace theta {

/// Sets the number of threads used by OpenBLAS and by theta's parallel loops (>= 1).
void set_num_threads(int threads);

/// The current thread count. Defaults to THETA_NUM_THREADS, else OMP_NUM_THREADS, else the number
/// of CPUs this process may use: its affinity mask (taskset, cpusets), capped by a cgroup CPU
/// quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us), as detail::available_cpus() counts them.
int get_num_threads();

/// Elementwise loops smaller than this run on one thread.
inline constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 16;

namespace detail {
/// True inside a parallel_for body (nested loops then run inline).
bool in_parallel_region();
/// The multi-threaded path of parallel_for.
void parallel_for_threads(std::int64_t n, std::int64_t grain, int threads,
                          const std::function<void(std::int64_t, std::int64_t)>& body);
}  // namespace detail

/// Runs body(begin, end) over a partition of [0, n) into at most get_num_threads() contiguous
/// ranges of at least `grain` elements. Calls from inside a parallel region run inline.
/// The partition only affects scheduling: bodies must write disjoint outputs.
template <class Body> void parallel_for(std::int64_t n, std::int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (n < 2 * grain) {  // too small to split: no thread hand-off, no std::function
    body(std::int64_t{0}, n);
    return;
  }
  const int threads = get_num_threads();
  if (threads == 1 || detail::in_parallel_region()) {
    body(std::int64_t{0}, n);
    return;
  }
  detail::parallel_for_threads(n, grain, threads, body);
}

}  // namespace theta
