#pragma once
// One thread-count setting for OpenBLAS and theta's own parallel loops.

#include <cstdint>
#include <functional>

namespace theta {

/// Sets the number of threads used by OpenBLAS and by theta's parallel loops (>= 1).
void set_num_threads(int threads);

/// The current thread count. Defaults to THETA_NUM_THREADS, else OMP_NUM_THREADS, else the
/// number of cores.
int get_num_threads();

/// Elementwise loops smaller than this run on one thread.
inline constexpr std::int64_t kElementwiseGrain = std::int64_t{1} << 16;

/// Runs body(begin, end) over a partition of [0, n) into at most get_num_threads() contiguous
/// ranges of at least `grain` elements. Calls from inside a parallel region run inline.
/// The partition only affects scheduling: bodies must write disjoint outputs.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

}  // namespace theta
