#include "tensor/kernels/kernels.hpp"

#include <atomic>
#include <cstdlib>
#include <string_view>

#include <xsimd/config/xsimd_cpuid.hpp>

namespace theta::detail {

namespace avx512 { const KernelTable& table(); }
namespace avx2 { const KernelTable& table(); }
namespace sse2 { const KernelTable& table(); }

namespace {

std::atomic<const KernelTable*> overridden{nullptr};

int supported_tables(const KernelTable** out, int capacity) {
  const auto arch = xsimd::available_architectures();
  const char* limit = std::getenv("THETA_SIMD");
  const std::string_view cap = limit ? limit : "";
  int count = 0;
  auto add = [&](const KernelTable& t) {
    if (count < capacity) out[count] = &t;
    ++count;
  };
  if (arch.avx512f && arch.avx512cd && arch.avx512dq && arch.avx512bw && cap != "avx2" && cap != "sse2")
    add(avx512::table());
  if (arch.avx2 && arch.fma3_avx2 && cap != "sse2") add(avx2::table());
  add(sse2::table());
  return count;
}

const KernelTable& best_table() {
  static const KernelTable* best = [] {
    const KernelTable* tables[3];
    supported_tables(tables, 3);
    return tables[0];
  }();
  return *best;
}

}  // namespace

const KernelTable& kernels() {
  const KernelTable* o = overridden.load(std::memory_order_relaxed);
  return o ? *o : best_table();
}

int available_kernel_tables(const KernelTable** out, int capacity) {
  return supported_tables(out, capacity);
}

void override_kernels(const KernelTable* table) { overridden.store(table); }

}  // namespace theta::detail
