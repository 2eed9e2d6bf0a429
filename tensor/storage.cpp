#include "tensor/storage.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace theta {

// Note [Caching allocator]
// A fresh multi-megabyte buffer costs a page fault per 4 KiB page on first touch, which for
// streaming kernels costs more than the arithmetic. Freed blocks are therefore kept in
// per-size-class free lists and handed out again to requests of the same class. Size classes are
// the powers of two and three quarter-steps between them (so at most 25% is wasted); blocks are
// 64-byte aligned for AVX-512. The cache is bounded: past kMaxCachedBytes a freed block goes back
// to the system.
namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kMaxCachedBytes = std::size_t{2} << 30;

std::size_t size_class(std::size_t bytes) {
  if (bytes <= kAlignment) return kAlignment;
  std::size_t pow2 = kAlignment;
  while (pow2 < bytes) pow2 <<= 1;
  const std::size_t quarter = pow2 / 8;  // steps of pow2/2 * 1/4 between pow2/2 and pow2
  const std::size_t half = pow2 / 2;
  for (std::size_t c = half + quarter; c < pow2; c += quarter)
    if (c >= bytes && c % kAlignment == 0) return c;
  return pow2;
}

class CachingAllocator {
 public:
  void* allocate(std::size_t bytes, std::size_t& block_bytes) {
    block_bytes = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(block_bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= static_cast<std::int64_t>(block_bytes);
        ++stats_.reused_allocations;
        note_live(block_bytes, +1);
        return p;
      }
      ++stats_.fresh_allocations;
      note_live(block_bytes, +1);
    }
    void* p = std::aligned_alloc(kAlignment, block_bytes);
    if (!p) {
      empty_cache();
      p = std::aligned_alloc(kAlignment, block_bytes);
    }
    if (!p) {
      std::lock_guard<std::mutex> lock(mutex_);
      note_live(block_bytes, -1);
      throw std::bad_alloc();
    }
    return p;
  }

  void deallocate(void* p, std::size_t block_bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      note_live(block_bytes, -1);
      if (stats_.cached_bytes + static_cast<std::int64_t>(block_bytes) <=
          static_cast<std::int64_t>(kMaxCachedBytes)) {
        free_[block_bytes].push_back(p);
        stats_.cached_bytes += static_cast<std::int64_t>(block_bytes);
        return;
      }
    }
    std::free(p);
  }

  void empty_cache() {
    std::map<std::size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      stats_.cached_bytes = 0;
    }
    for (auto& [size, list] : blocks)
      for (void* p : list) std::free(p);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  void note_live(std::size_t block_bytes, int sign) {
    stats_.live_blocks += sign;
    stats_.live_bytes += sign * static_cast<std::int64_t>(block_bytes);
  }

  std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

// Intentionally leaked: storages may be destroyed during static destruction of other objects.
CachingAllocator& allocator() {
  static auto* instance = new CachingAllocator();
  return *instance;
}

}  // namespace

AllocatorStats allocator_stats() { return allocator().stats(); }

void empty_allocator_cache() { allocator().empty_cache(); }

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  data_ = allocator().allocate(bytes, block_bytes_);
}

Storage::~Storage() { allocator().deallocate(data_, block_bytes_); }

}  // namespace theta
