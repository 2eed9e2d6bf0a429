#include "tensor/blas_runtime.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

#include <xsimd/config/xsimd_cpuid.hpp>

#include "tensor/kernels/kernels.hpp"
#include "tensor/parallel.hpp"

extern "C" {
char* openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);
}

namespace theta {

// Note [OpenBLAS core]
// OpenBLAS built with DYNAMIC_ARCH picks its kernels from CPUID when the library loads. Version
// 0.3.21 does not know some recent CPUs (e.g. Intel family 6 model 207) and silently falls back
// to its Prescott (SSE3) kernels, several times slower. The environment variable
// OPENBLAS_CORETYPE overrides the choice but is read only at load time, so a running process
// cannot fix itself in place: ensure_blas_core() re-executes the program with the variable set,
// and warn_if_blas_fallback() tells library users the command-line fix.

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? std::string(name) : std::string("unknown");
}

std::string blas_recommended_core() {
  const auto arch = xsimd::available_architectures();
  if (arch.avx512f && arch.avx512bw && arch.avx512dq && arch.avx512cd) return "SkylakeX";
  if (arch.avx2 && arch.fma3_avx2) return "Haswell";
  return "";
}

bool blas_core_is_fallback() {
  static constexpr std::array<std::string_view, 9> kOldCores = {
      "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Northwood",
      "Banias"};
  const std::string core = blas_core_name();
  if (blas_recommended_core().empty()) return false;
  for (auto old : kOldCores)
    if (core == old) return true;
  // An AVX-only core (Sandybridge) on an AVX2/AVX-512 machine is a fallback too.
  return core == "Sandybridge";
}

std::string runtime_summary() {
  return "OpenBLAS " + blas_core_name() + ", " + std::to_string(get_num_threads()) +
         " threads, SIMD " + detail::kernels().arch_name;
}

void ensure_blas_core(int /*argc*/, char** argv) {
  if (!blas_core_is_fallback() || std::getenv("OPENBLAS_CORETYPE")) {
    warn_if_blas_fallback();
    return;
  }
  const std::string core = blas_recommended_core();
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  std::fprintf(stderr, "theta: OpenBLAS picked its %s kernels on a CPU that supports %s; "
                       "restarting with OPENBLAS_CORETYPE=%s\n",
               blas_core_name().c_str(), core.c_str(), core.c_str());
  std::fflush(stderr);
  execv("/proc/self/exe", argv);
  // execv returned: keep running with the slow kernels, but say so.
  warn_if_blas_fallback();
}

void warn_if_blas_fallback() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!blas_core_is_fallback()) return;
    std::fprintf(stderr,
                 "theta: warning: OpenBLAS uses its %s kernels, but this CPU supports %s; matmul "
                 "runs several times slower. Fix: export OPENBLAS_CORETYPE=%s before starting "
                 "the program.\n",
                 blas_core_name().c_str(), blas_recommended_core().c_str(),
                 blas_recommended_core().c_str());
  });
}

namespace detail {
void set_blas_threads(int threads) { openblas_set_num_threads(threads); }
SingleThreadedBlas::~SingleThreadedBlas() { set_blas_threads(get_num_threads()); }
}  // namespace detail

}  // namespace theta
