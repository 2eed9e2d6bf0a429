#include "tensor/storage.hpp"

#include "tensor/large_blocks.hpp"

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
// 64-byte aligned for AVX-512. A request whose class has no cached block takes one of the next
// four classes (at most twice its size) before it asks the system: a computation whose big
// temporaries change size from step to step (the CNN kernel's cotangents, then its features)
// then reuses what the earlier steps freed, and its footprint stays near its peak of live bytes
// (the digits CNN's kernel: 278 -> 227 MiB held). The cache is bounded: past kMaxCachedBytes a
// freed block goes back to the system. Requests above kLargeBlockBytes skip the classes: they are
// carved from regions that merge freed neighbours (Note [Large blocks] in large_blocks.cpp).
// AddressSanitizer builds keep every block separate, so that it can see overruns between them.
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCarveLargeBlocks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kCarveLargeBlocks = false;
#else
constexpr bool kCarveLargeBlocks = true;
#endif
#else
constexpr bool kCarveLargeBlocks = true;
#endif

bool carved(std::size_t bytes) { return kCarveLargeBlocks && bytes > detail::kLargeBlockBytes; }

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kMaxCachedBytes = std::size_t{2} << 30;

// Size classes: 64 bytes, then for each power of two P >= 128 the sizes P/2 + k P/8 (k = 1..4),
// rounded up to a multiple of 64. Class 0 is 64 bytes; class 4 (log2 P - 7) + k - 1 is the k-th
// step below P (classes 1 to 3 are unused).
constexpr std::size_t kClasses = 4 * 64;

// How many classes above its own a request may take a cached block from: up to twice its size.
constexpr std::size_t kLargerClasses = 4;

std::size_t class_bytes(std::size_t cls) {
  if (cls == 0) return kAlignment;
  const std::size_t pow2 = std::size_t{1} << (cls / 4 + 6), k = cls % 4 + 1;
  return (pow2 / 2 + k * (pow2 / 8) + kAlignment - 1) / kAlignment * kAlignment;
}

// The smallest class whose blocks hold `bytes`.
std::size_t size_class(std::size_t bytes) {
  if (bytes > (std::numeric_limits<std::size_t>::max() >> 2)) throw std::bad_alloc();
  if (bytes <= kAlignment) return 0;
  // P = 2^bit_width(bytes - 1) is the smallest power of two >= bytes (>= 128 here); its four
  // classes split (P/2, P] and the last is P itself.
  std::size_t cls = 4 * (static_cast<std::size_t>(std::bit_width(bytes - 1)) - 6);
  while (class_bytes(cls) < bytes) ++cls;
  return cls;
}

class CachingAllocator {
 public:
  void* allocate(std::size_t bytes, std::size_t& block_bytes) {
    if (carved(bytes)) return allocate_large(bytes, block_bytes);
    const std::size_t cls = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The request's own class first, then a cached block up to twice its size rather than a
      // fresh one (Note [Caching allocator]).
      for (std::size_t c = cls; c <= std::min(cls + kLargerClasses, kClasses - 1); ++c) {
        auto& list = free_[c];
        if (list.empty()) continue;
        void* p = list.back();
        list.pop_back();
        block_bytes = class_bytes(c);
        stats_.cached_bytes -= static_cast<std::int64_t>(block_bytes);
        ++stats_.reused_allocations;
        note_live(block_bytes, +1);
        return p;
      }
      block_bytes = class_bytes(cls);
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
    if (carved(block_bytes)) {
      // Carved blocks are larger than kLargeBlockBytes, class blocks of smaller requests at most
      // that large, so the size tells them apart.
      std::lock_guard<std::mutex> lock(mutex_);
      note_live(block_bytes, -1);
      large_.deallocate(p, block_bytes);
      if (cached_bound() > static_cast<std::int64_t>(kMaxCachedBytes)) large_.release();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      note_live(block_bytes, -1);
      if (cached_bound() + static_cast<std::int64_t>(block_bytes) <= static_cast<std::int64_t>(kMaxCachedBytes)) {
        free_[size_class(block_bytes)].push_back(p);
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
      large_.release();
    }
    for (void* p : blocks) std::free(p);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    AllocatorStats s = stats_;
    s.cached_bytes = cached_bytes();
    return s;
  }

 private:
  void* allocate_large(std::size_t bytes, std::size_t& block_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    detail::LargeBlocks::Block block;
    try {
      block = large_.allocate(bytes);
    } catch (const std::bad_alloc&) {
      large_.release();
      block = large_.allocate(bytes);
    }
    block_bytes = block.bytes;
    ++(block.fresh ? stats_.fresh_allocations : stats_.reused_allocations);
    note_live(block_bytes, +1);
    return block.data;
  }

  // Class blocks kept plus the carved regions' used free pages (or a bound of them, at no cost).
  std::int64_t cached_bytes() const {
    return stats_.cached_bytes + static_cast<std::int64_t>(large_.cached_bytes());
  }
  std::int64_t cached_bound() const {
    return stats_.cached_bytes + static_cast<std::int64_t>(large_.cached_bound());
  }

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
  detail::LargeBlocks large_;
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
