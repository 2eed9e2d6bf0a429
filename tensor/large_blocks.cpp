#include "tensor/large_blocks.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <new>

namespace theta::detail {

// Note [Large blocks]
// Size classes (Note [Caching allocator] in storage.cpp) keep a freed block for a later request of
// about its size. A computation whose phases ask for different sizes then holds every phase's
// blocks at once: the CNN kernel's blocks of cotangents, then its 50 MiB result, then a channel
// group's features, each cached for the next call, so the process holds the sum of the phases'
// peaks rather than the largest. Blocks above kLargeBlockBytes are therefore carved from regions of
// reserved address space, as a heap does: a request takes the smallest free range that holds it
// (at that range's start), a freed block merges with the free ranges beside it, and the merged
// space serves the next request of any size. Ranges in different regions never merge, even when
// the mappings happen to be adjacent.
//
// The pages a block used stay mapped when it is freed: on a virtual machine a page fault costs
// about 10 us, more than streaming the page's data, and a computation that handed its pages back
// after every call ran 1.5x-2x slower. What the process holds beyond its live blocks is the free
// space below each region's high-water mark. Regions start on a 2 MiB boundary, so that the kernel
// may back them with huge pages where it is configured to.

namespace {

constexpr std::size_t kRegionAlignment = std::size_t{2} << 20;

std::size_t round_up(std::size_t bytes, std::size_t to) { return (bytes + to - 1) / to * to; }

}  // namespace

LargeBlocks::~LargeBlocks() {
  for (auto& [start, region] : regions_) munmap(region.mapping, region.mapped);
}

LargeBlocks::Block LargeBlocks::allocate(std::size_t bytes) {
  if (bytes > std::numeric_limits<std::size_t>::max() / 4) throw std::bad_alloc();
  const std::size_t size = round_up(std::max<std::size_t>(bytes, 1), kGranule);
  auto fit = by_size_.lower_bound({size, nullptr});
  if (fit == by_size_.end()) {
    const std::size_t usable = std::max(kRegionBytes, size), mapped = usable + kRegionAlignment;
    void* mapping = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED) throw std::bad_alloc();
    char* const start =
        reinterpret_cast<char*>(round_up(reinterpret_cast<std::uintptr_t>(mapping), kRegionAlignment));
    regions_.emplace(start, Region{static_cast<char*>(mapping), mapped, usable, 0, 0});
    add_free(start, {usable, false});
    fit = by_size_.lower_bound({size, nullptr});
  }
  char* const start = fit->second;
  const auto range = free_.find(start);
  const FreeRange taken = range->second;
  remove_free(range);
  if (taken.bytes > size) add_free(start + size, {taken.bytes - size, taken.dirty});
  const auto region = region_of(start);
  Region& r = region->second;
  const std::size_t end = static_cast<std::size_t>(start - region->first) + size;
  const bool fresh = !taken.dirty || end > r.used;
  if (end > r.used) {
    used_ += end - r.used;
    r.used = end;
  }
  r.live += size;
  live_ += size;
  return {start, size, fresh};
}

void LargeBlocks::deallocate(void* data, std::size_t bytes) {
  char* start = static_cast<char*>(data);
  const auto region = region_of(start);
  region->second.live -= bytes;
  live_ -= bytes;
  char* const region_end = region->first + region->second.bytes;
  // Merge with the free range just after the block, then with the one just before it.
  if (const auto next = free_.find(start + bytes); next != free_.end() && start + bytes < region_end) {
    bytes += next->second.bytes;
    remove_free(next);
  }
  if (auto after = free_.lower_bound(start); after != free_.begin() && start > region->first) {
    const auto before = std::prev(after);
    if (before->first + before->second.bytes == start) {
      start = before->first;
      bytes += before->second.bytes;
      remove_free(before);
    }
  }
  add_free(start, {bytes, true});
}

void LargeBlocks::release() {
  for (auto region = regions_.begin(); region != regions_.end();) {
    Region& r = region->second;
    if (r.live == 0) {
      remove_free(free_.find(region->first));  // the whole region is one free range
      const auto next = std::next(region);
      unmap(region);
      region = next;
      continue;
    }
    // Every free range hands its used pages back; the one at the region's end, if any, lowers the
    // high-water mark.
    char* const end = region->first + r.bytes;
    for (auto range = free_.lower_bound(region->first); range != free_.end() && range->first < end; ++range) {
      const std::size_t from = static_cast<std::size_t>(range->first - region->first);
      if (range->second.dirty && r.used > from)
        madvise(range->first, std::min(range->second.bytes, r.used - from), MADV_DONTNEED);
      range->second.dirty = false;
      if (range->first + range->second.bytes == end && r.used > from) {
        used_ -= r.used - from;
        r.used = from;
      }
    }
    ++region;
  }
}

std::size_t LargeBlocks::cached_bytes() const {
  std::size_t bytes = 0;
  for (const auto& [start, range] : free_) {
    if (!range.dirty) continue;
    const auto region = std::prev(regions_.upper_bound(start));
    const std::size_t from = static_cast<std::size_t>(start - region->first);
    if (region->second.used > from) bytes += std::min(range.bytes, region->second.used - from);
  }
  return bytes;
}

std::size_t LargeBlocks::reserved_bytes() const {
  std::size_t bytes = 0;
  for (const auto& [start, region] : regions_) bytes += region.bytes;
  return bytes;
}

std::map<char*, LargeBlocks::Region>::iterator LargeBlocks::region_of(char* p) {
  return std::prev(regions_.upper_bound(p));  // a block's start always lies in a region
}

void LargeBlocks::add_free(char* start, FreeRange range) {
  free_.emplace(start, range);
  by_size_.emplace(range.bytes, start);
}

void LargeBlocks::remove_free(std::map<char*, FreeRange>::iterator range) {
  by_size_.erase({range->second.bytes, range->first});
  free_.erase(range);
}

void LargeBlocks::unmap(std::map<char*, Region>::iterator region) {
  used_ -= region->second.used;
  munmap(region->second.mapping, region->second.mapped);
  regions_.erase(region);
}

}  // namespace theta::detail
