#include "tensor/block_pool.hpp"

#include <cstdint>
#include <new>

namespace theta::detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoolEnabled = false;  // AddressSanitizer must see every free to catch use-after-free
#else
constexpr bool kPoolEnabled = true;
#endif

constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = kMaxPooledBytes / kGranule;
constexpr std::uint32_t kMaxCachedBlocks = 4096;

std::size_t class_of(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule - 1; }
std::size_t class_bytes(std::size_t cls) { return (cls + 1) * kGranule; }

struct FreeBlock {
  FreeBlock* next;
};

// Set once this thread's cache has been destroyed (thread exit; for the main thread, before
// static objects that may still free blocks). Trivially destructible, so always readable.
thread_local bool cache_gone = false;

struct ThreadCache {
  FreeBlock* head[kClasses] = {};
  std::uint32_t count[kClasses] = {};

  ThreadCache() = default;
  ThreadCache(const ThreadCache&) = delete;
  ThreadCache& operator=(const ThreadCache&) = delete;
  ~ThreadCache() {
    for (FreeBlock*& list : head)
      while (list) {
        FreeBlock* block = list;
        list = block->next;
        ::operator delete(block);
      }
    cache_gone = true;
  }
};

thread_local ThreadCache cache;

}  // namespace

void* pool_allocate(std::size_t bytes) {
  if (!kPoolEnabled || bytes == 0 || bytes > kMaxPooledBytes) return ::operator new(bytes);
  const std::size_t cls = class_of(bytes);
  if (!cache_gone) {
    ThreadCache& c = cache;
    if (FreeBlock* block = c.head[cls]) {
      c.head[cls] = block->next;
      --c.count[cls];
      return block;
    }
  }
  return ::operator new(class_bytes(cls));
}

void pool_deallocate(void* block, std::size_t bytes) noexcept {
  if (kPoolEnabled && bytes != 0 && bytes <= kMaxPooledBytes && !cache_gone) {
    const std::size_t cls = class_of(bytes);
    ThreadCache& c = cache;
    if (c.count[cls] < kMaxCachedBlocks) {
      c.head[cls] = new (block) FreeBlock{c.head[cls]};
      ++c.count[cls];
      return;
    }
  }
  ::operator delete(block);
}

}  // namespace theta::detail
