// The carved large blocks of the caching allocator (Note [Large blocks]): splitting, merging,
// best fit, the accounting of used pages, and release.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <vector>

#include "tensor/large_blocks.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "tensor/storage.hpp"

using namespace theta;
using detail::LargeBlocks;

namespace {
constexpr std::size_t kMiB = std::size_t{1} << 20;
char* at(const LargeBlocks::Block& b) { return static_cast<char*>(b.data); }
}  // namespace

TEST_CASE("large blocks: a freed block is split for smaller requests, from its start", "[tensor][allocator]") {
  LargeBlocks arena;
  const auto big = arena.allocate(3 * kMiB);
  CHECK(big.bytes == 3 * kMiB);
  CHECK(big.fresh);
  CHECK(reinterpret_cast<std::uintptr_t>(big.data) % 64 == 0);
  arena.deallocate(big.data, big.bytes);
  CHECK(arena.cached_bytes() == 3 * kMiB);
  const auto one = arena.allocate(kMiB);
  const auto two = arena.allocate(2 * kMiB);
  CHECK(at(one) == at(big));
  CHECK(at(two) == at(big) + kMiB);
  CHECK_FALSE(one.fresh);
  CHECK_FALSE(two.fresh);
  CHECK(arena.cached_bytes() == 0);
  // Requests round up to the granule.
  const auto odd = arena.allocate(kMiB + 1);
  CHECK(odd.bytes == kMiB + LargeBlocks::kGranule);
  CHECK(odd.fresh);
  for (const auto& b : {one, two, odd}) arena.deallocate(b.data, b.bytes);
  CHECK(arena.free_ranges() == 1);
}

TEST_CASE("large blocks: freed neighbours merge, in any order, and serve a larger request", "[tensor][allocator]") {
  for (const int order : {0, 1, 2}) {
    INFO("order " << order);
    LargeBlocks arena;
    const auto a = arena.allocate(kMiB), b = arena.allocate(kMiB), c = arena.allocate(kMiB);
    const auto guard = arena.allocate(kMiB);  // keeps the three from merging with the region's tail
    REQUIRE(at(b) == at(a) + kMiB);
    REQUIRE(at(c) == at(b) + kMiB);
    const LargeBlocks::Block frees[3][3] = {{a, b, c}, {c, b, a}, {a, c, b}};
    for (const auto& f : frees[order]) arena.deallocate(f.data, f.bytes);
    CHECK(arena.free_ranges() == 2);  // the merged three, and the tail after the guard
    const auto merged = arena.allocate(3 * kMiB);
    CHECK(at(merged) == at(a));
    CHECK_FALSE(merged.fresh);
    arena.deallocate(merged.data, merged.bytes);
    arena.deallocate(guard.data, guard.bytes);
    CHECK(arena.free_ranges() == 1);
  }
}

TEST_CASE("large blocks: a request takes the smallest free range that holds it", "[tensor][allocator]") {
  LargeBlocks arena;
  const auto wide = arena.allocate(2 * kMiB), sep1 = arena.allocate(kMiB);
  const auto narrow = arena.allocate(kMiB), sep2 = arena.allocate(kMiB);
  arena.deallocate(wide.data, wide.bytes);
  arena.deallocate(narrow.data, narrow.bytes);
  CHECK(at(arena.allocate(kMiB)) == at(narrow));
  CHECK(at(arena.allocate(kMiB)) == at(wide));  // now the smallest
  static_cast<void>(sep1);
  static_cast<void>(sep2);
}

TEST_CASE("large blocks: regions, used pages and release", "[tensor][allocator]") {
  LargeBlocks arena;
  // A block larger than a region gets a region of its own size.
  const auto huge = arena.allocate(LargeBlocks::kRegionBytes + kMiB);
  CHECK(arena.reserved_bytes() == LargeBlocks::kRegionBytes + kMiB);
  const auto small = arena.allocate(kMiB);  // no room left in the first region: a second one
  CHECK(arena.reserved_bytes() == 2 * LargeBlocks::kRegionBytes + kMiB);
  const auto top = arena.allocate(2 * kMiB);
  CHECK(at(top) == at(small) + kMiB);
  // Pages count as cached only once used: the second region's untouched tail does not.
  CHECK(arena.cached_bytes() == 0);
  arena.deallocate(top.data, top.bytes);
  CHECK(arena.cached_bytes() == 2 * kMiB);
  // Release: the first region, now free, is unmapped; the second keeps its live block and hands
  // back the pages above it.
  arena.deallocate(huge.data, huge.bytes);
  CHECK(arena.cached_bytes() == LargeBlocks::kRegionBytes + 3 * kMiB);
  arena.release();
  CHECK(arena.reserved_bytes() == LargeBlocks::kRegionBytes);
  CHECK(arena.cached_bytes() == 0);
  // The released pages serve requests again (as fresh pages) and read as zeros.
  const auto again = arena.allocate(2 * kMiB);
  CHECK(at(again) == at(top));
  CHECK(again.fresh);
  CHECK(std::memcmp(again.data, std::vector<char>(2 * kMiB).data(), 2 * kMiB) == 0);
  arena.deallocate(again.data, again.bytes);
  arena.deallocate(small.data, small.bytes);
  arena.release();
  CHECK(arena.reserved_bytes() == 0);
  CHECK(arena.free_ranges() == 0);
}

TEST_CASE("large blocks: random requests never overlap, keep their bytes, and merge back", "[tensor][allocator]") {
  // A reference model of the live blocks, each filled with its own byte.
  LargeBlocks arena;
  Rng rng(5);
  std::map<char*, std::pair<std::size_t, unsigned char>> live;
  const Tensor draws = rng.uniform({4000});
  const auto check_block = [](char* p, std::size_t bytes, unsigned char fill) {
    for (std::size_t i = 0; i < bytes; i += 4093)
      if (static_cast<unsigned char>(p[i]) != fill) return false;
    return static_cast<unsigned char>(p[bytes - 1]) == fill;
  };
  for (std::int64_t step = 0; step < 2000; ++step) {
    const double u = draws.select(0, 2 * step).item(), v = draws.select(0, 2 * step + 1).item();
    if (live.empty() || u < 0.55) {
      const std::size_t bytes = 1 + static_cast<std::size_t>(v * 12 * kMiB);
      const auto b = arena.allocate(bytes);
      REQUIRE(b.bytes >= bytes);
      // No overlap with the neighbours in address order.
      const auto next = live.lower_bound(at(b));
      if (next != live.end()) REQUIRE(at(b) + b.bytes <= next->first);
      if (next != live.begin()) REQUIRE(std::prev(next)->first + std::prev(next)->second.first <= at(b));
      const auto fill = static_cast<unsigned char>(step % 251 + 1);
      std::memset(b.data, fill, b.bytes);
      live.emplace(at(b), std::make_pair(b.bytes, fill));
    } else {
      auto victim = live.begin();
      std::advance(victim, static_cast<std::ptrdiff_t>(v * static_cast<double>(live.size() - 1)));
      REQUIRE(check_block(victim->first, victim->second.first, victim->second.second));
      arena.deallocate(victim->first, victim->second.first);
      live.erase(victim);
    }
  }
  for (const auto& [p, block] : live) {
    REQUIRE(check_block(p, block.first, block.second));
    arena.deallocate(p, block.first);
  }
  // Everything merged back: one free range per region, every used page cached.
  const std::size_t regions = arena.reserved_bytes() / LargeBlocks::kRegionBytes;
  CHECK(arena.free_ranges() == regions);
  CHECK(arena.cached_bytes() > 0);
  arena.release();
  CHECK(arena.reserved_bytes() == 0);
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("tensors above the threshold reuse a freed larger tensor's memory, split", "[tensor][allocator]") {
  // 3 MiB freed, then 1 MiB and 2 MiB tensors: both inside the freed block, no fresh pages. The
  // cache is emptied first, so that (no test keeps a large tensor alive) the regions start empty.
  empty_allocator_cache();
  const std::int64_t mib = std::int64_t{1} << 17;  // doubles
  const char* block = nullptr;
  { const Tensor big = zeros({3 * mib}); block = static_cast<const char*>(big.raw_data()); }
  const AllocatorStats before = allocator_stats();
  const Tensor one = zeros({mib}), two = ones({2 * mib});
  for (const Tensor* t : {&one, &two}) {
    const char* p = static_cast<const char*>(t->raw_data());
    CHECK(p >= block);
    CHECK(p + t->numel() * 8 <= block + 3 * (std::int64_t{1} << 20));
  }
  CHECK(allocator_stats().fresh_allocations == before.fresh_allocations);
  CHECK(allocator_stats().live_bytes == before.live_bytes + 3 * (std::int64_t{1} << 20));
  CHECK(sum(two).item() == 2.0 * static_cast<double>(mib));
}

TEST_CASE("requests up to the threshold take size classes, larger ones are carved to the page", "[tensor][allocator]") {
  const std::int64_t threshold = static_cast<std::int64_t>(detail::kLargeBlockBytes);
  const std::int64_t base = allocator_stats().live_bytes;
  {
    const Tensor at_threshold = zeros({threshold / 8});
    CHECK(allocator_stats().live_bytes == base + threshold);  // its class is the power of two itself
  }
  {
    const Tensor above = zeros({threshold / 8 + 1});
    CHECK(allocator_stats().live_bytes == base + threshold + 4096);  // one more page
    const Tensor much_above = zeros({(5 << 20) / 8 + 3});                // 5 MiB and 24 bytes
    CHECK(allocator_stats().live_bytes == base + threshold + 4096 + (5 << 20) + 4096);
  }
  CHECK(allocator_stats().live_bytes == base);
}
#endif
