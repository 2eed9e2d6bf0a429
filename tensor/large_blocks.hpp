#pragma once
// LargeBlocks: where the caching allocator keeps blocks larger than kLargeBlockBytes (Note [Large
// blocks] in large_blocks.cpp). Not thread-safe: the caching allocator calls it under its lock.

#include <cstddef>
#include <map>
#include <set>
#include <utility>

namespace theta::detail {

/// Requests larger than this are carved from LargeBlocks (smaller ones take size classes, whose
/// blocks are then at most this large, so a block's size tells the two kinds apart).
inline constexpr std::size_t kLargeBlockBytes = std::size_t{64} << 10;

class LargeBlocks {
 public:
  /// Blocks are multiples of this size, at offsets from a region's start that are multiples of it.
  static constexpr std::size_t kGranule = std::size_t{4} << 10;
  /// Address space reserved at a time (larger requests get a region of their own size).
  static constexpr std::size_t kRegionBytes = std::size_t{256} << 20;

  struct Block {
    void* data = nullptr;
    std::size_t bytes = 0;  // the request rounded up to the granule
    bool fresh = false;     // whether it reaches pages no earlier block used
  };

  LargeBlocks() = default;
  LargeBlocks(const LargeBlocks&) = delete;
  LargeBlocks& operator=(const LargeBlocks&) = delete;
  ~LargeBlocks();

  /// A block of at least `bytes`: the smallest free range that holds it, at that range's start,
  /// or a new region. Throws std::bad_alloc when the system refuses address space.
  Block allocate(std::size_t bytes);
  /// Returns a block (its data and bytes as allocate gave them); it merges with free neighbours.
  void deallocate(void* data, std::size_t bytes);
  /// Unmaps every region without a live block, and hands the pages of the other regions' free
  /// ranges back to the system (they read as zeros when used again).
  void release();

  /// Bytes of used pages that no live block holds: what this arena keeps beyond its live blocks.
  /// (After release, a range merged from returned pages and a freed block counts in full.)
  std::size_t cached_bytes() const;
  /// An upper bound of cached_bytes, kept up to date at no cost: used minus live bytes.
  std::size_t cached_bound() const { return used_ - live_; }
  /// Address space reserved (mapped, not necessarily backed by memory).
  std::size_t reserved_bytes() const;
  /// How many free ranges there are (one per region once every block is back: they all merged).
  std::size_t free_ranges() const { return free_.size(); }

 private:
  struct FreeRange {
    std::size_t bytes = 0;
    bool dirty = false;  // may hold used pages (below its region's high-water mark)
  };

  struct Region {
    char* mapping = nullptr;     // what mmap returned (the start is aligned up from it)
    std::size_t mapped = 0;      // bytes mapped
    std::size_t bytes = 0;       // usable bytes from the start
    std::size_t used = 0;        // high-water mark: bytes from the start any block ever reached
    std::size_t live = 0;        // bytes of live blocks
  };

  std::map<char*, Region>::iterator region_of(char* p);
  void add_free(char* start, FreeRange range);
  void remove_free(std::map<char*, FreeRange>::iterator range);
  void unmap(std::map<char*, Region>::iterator region);

  std::map<char*, Region> regions_;                   // by start
  std::map<char*, FreeRange> free_;                   // free ranges by start
  std::set<std::pair<std::size_t, char*>> by_size_;  // the same ranges by (size, start)
  std::size_t used_ = 0, live_ = 0;                   // the regions' used and live bytes, summed
};

}  // namespace theta::detail
