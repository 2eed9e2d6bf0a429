#pragma once
// What OpenBLAS is doing on this machine: its kernel core, its threads, and the fix for a
// misdetected CPU (Note [OpenBLAS core]).

#include <cstdint>
#include <string>

#include "tensor/parallel.hpp"

namespace theta {

/// The kernel set OpenBLAS chose at load time, e.g. "SkylakeX", "Haswell", "Prescott".
std::string blas_core_name();

/// The best OpenBLAS core this CPU supports, judged from its instruction sets
/// ("SkylakeX" with AVX-512, "Haswell" with AVX2 + FMA, else "" when no better core applies).
std::string blas_recommended_core();

/// True when OpenBLAS runs a core older than this CPU supports (a misdetected CPU).
bool blas_core_is_fallback();

/// "OpenBLAS <core>, <n> threads, SIMD <arch>": one line for logs and benchmark context.
std::string runtime_summary();

/// For executables: when OpenBLAS fell back to an old core and OPENBLAS_CORETYPE is unset, sets
/// it to the recommended core and re-executes the program (the variable is read only when the
/// library loads). Call first thing in main(); returns normally when nothing needs fixing.
void ensure_blas_core(int argc, char** argv);

/// Prints a warning with the fix to stderr, once per process, when the core is a fallback.
void warn_if_blas_fallback();

namespace detail {
void set_blas_threads(int threads);

/// OpenBLAS single-threaded while alive, restored to get_num_threads() afterwards: for loops that
/// call BLAS from theta's own worker threads (its pool would compete for the same cores).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() { set_blas_threads(1); }
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

/// parallel_for for bodies that call BLAS: while theta's threads split [0, n), OpenBLAS runs
/// single-threaded (its own pool would compete for the same cores). With one thread, a range too
/// small to split, or inside a parallel region, the body runs inline and BLAS is left as it is.
template <class Body> void parallel_for_blas(std::int64_t n, std::int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (n < 2 * grain || get_num_threads() == 1 || in_parallel_region()) {
    body(std::int64_t{0}, n);
    return;
  }
  const SingleThreadedBlas blas;
  parallel_for(n, grain, body);
}
}  // namespace detail

}  // namespace theta
