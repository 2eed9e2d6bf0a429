#pragma once
// Storage: one reference-counted, 64-byte aligned buffer shared by a tensor and its views,
// allocated through the caching allocator (Note [Caching allocator]).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace theta {

/// Counters of the caching allocator, for tests and diagnostics.
struct AllocatorStats {
  std::int64_t live_blocks = 0;     // blocks handed out and not yet returned
  std::int64_t live_bytes = 0;      // their rounded sizes
  std::int64_t cached_bytes = 0;    // returned blocks kept for reuse (of carved large blocks: used pages)
  std::int64_t fresh_allocations = 0;  // requests served by the system allocator, or by pages not used before
  std::int64_t reused_allocations = 0; // requests served from the cache
  std::int64_t peak_live_bytes = 0;    // the most live_bytes reached since start or the last reset
};

/// A snapshot of the allocator's counters.
AllocatorStats allocator_stats();

/// Returns every cached block to the system (and the pages of free ranges between carved blocks).
void empty_allocator_cache();

/// Restarts peak_live_bytes from the current live_bytes (to measure one computation's working
/// memory: reset, run, read allocator_stats().peak_live_bytes).
void reset_peak_live_bytes();

/// A raw byte buffer. Tensors hold it through std::shared_ptr; views share it.
class Storage {
 public:
  /// Allocates `bytes` (uninitialised) from the caching allocator.
  explicit Storage(std::size_t bytes);
  /// Wraps memory theta did not allocate (a NumPy array's buffer, say): `data` must stay valid
  /// until the storage is destroyed, which then calls `release` (once, from whichever thread drops
  /// the last reference). `data` must be aligned for the element type the tensors on it use.
  Storage(void* data, std::size_t bytes, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

  /// Bumped by every in-place write, so autograd can detect a saved tensor that changed.
  std::uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t block_bytes_ = 0;
  std::function<void()> release_{};  // set for external memory (block_bytes_ is then 0)
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace theta
