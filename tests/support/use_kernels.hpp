#pragma once
// Routes every SIMD kernel through one table (one instruction set) for the lifetime of a scope,
// and lists the tables this CPU can run.

#include <algorithm>
#include <vector>

#include "tensor/kernels/kernels.hpp"

namespace theta::test {

/// The kernel tables compiled in that this CPU can run, best first.
inline std::vector<const detail::KernelTable*> kernel_tables() {
  const detail::KernelTable* tables[8];
  const int n = detail::available_kernel_tables(tables, 8);
  return {tables, tables + std::min(n, 8)};
}

class UseKernels {
 public:
  explicit UseKernels(const detail::KernelTable* table) { detail::override_kernels(table); }
  ~UseKernels() { detail::override_kernels(nullptr); }
  UseKernels(const UseKernels&) = delete;
  UseKernels& operator=(const UseKernels&) = delete;
};

}  // namespace theta::test
