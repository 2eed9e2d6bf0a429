#include "tensor/storage.hpp"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
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

// Size classes: 64 bytes, then for each power of two P >= 128 the sizes P/2 + k P/8 (k = 1..4),
// rounded up to a multiple of 64. Returns the class index; `bytes_out` receives its size.
constexpr std::size_t kClasses = 4 * 64;

std::size_t size_class(std::size_t bytes, std::size_t& bytes_out) {
  if (bytes > (std::numeric_limits<std::size_t>::max() >> 2)) throw std::bad_alloc();
  if (bytes <= kAlignment) {
    bytes_out = kAlignment;
    return 0;
  }
  // pow2 = the smallest power of two >= bytes (>= 128 here); classes split (pow2/2, pow2] in four.
  const std::size_t log2 = static_cast<std::size_t>(std::bit_width(bytes - 1));
  const std::size_t pow2 = std::size_t{1} << log2;
  const std::size_t half = pow2 / 2, eighth = pow2 / 8;
  for (std::size_t k = 1; k <= 4; ++k) {
    const std::size_t c = (half + k * eighth + kAlignment - 1) / kAlignment * kAlignment;
    if (c >= bytes) {
      bytes_out = c;
      return 4 * (log2 - 6) + k - 1;
    }
  }
  bytes_out = pow2;
  return 4 * (log2 - 6) + 3;
}

class CachingAllocator {
 public:
  void* allocate(std::size_t bytes, std::size_t& block_bytes) {
    const std::size_t cls = size_class(bytes, block_bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& list = free_[cls];
      if (!list.empty()) {
        void* p = list.back();
        list.pop_back();
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
        std::size_t unused;
        free_[size_class(block_bytes, unused)].push_back(p);
        stats_.cached_bytes += static_cast<std::int64_t>(block_bytes);
        return;
      }
    }
    std::free(p);
  }

  void empty_cache() {
    std::vector<void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& list : free_) {
        blocks.insert(blocks.end(), list.begin(), list.end());
        list.clear();
      }
      stats_.cached_bytes = 0;
    }
    for (void* p : blocks) std::free(p);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  void note_live(std::size_t block_bytes, int sign) {
    stats_.live_blocks += sign;
    stats_.live_bytes += sign * static_cast<std::int64_t>(block_bytes);
    stats_.peak_live_bytes = std::max(stats_.peak_live_bytes, stats_.live_bytes);
  }

 public:
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_live_bytes = stats_.live_bytes;
  }

 private:

  std::mutex mutex_;
  std::vector<void*> free_[kClasses];
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

void reset_peak_live_bytes() { allocator().reset_peak(); }

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  data_ = allocator().allocate(bytes, block_bytes_);
}

Storage::Storage(void* data, std::size_t bytes, std::function<void()> release)
    : data_(data), bytes_(bytes), release_(std::move(release)) {
  if (!release_) throw std::invalid_argument("Storage: external memory needs a release function");
}

Storage::~Storage() {
  if (release_) {
    release_();
  } else {
    allocator().deallocate(data_, block_bytes_);
  }
}

}  // namespace theta
