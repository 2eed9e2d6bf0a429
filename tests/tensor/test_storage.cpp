// The caching allocator and operator<<.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <thread>
#include <vector>

#include "tensor/block_pool.hpp"
#include "tensor/large_blocks.hpp"
#include "tensor/ops.hpp"
#include "tensor/storage.hpp"

using namespace theta;

TEST_CASE("the caching allocator reuses a freed block of the same size", "[tensor][allocator]") {
  // An unusual size, so the block is one of a kind.
  const Shape shape = {12345};
  { const Tensor warm = zeros(shape); }  // now a block of this size class is cached
  const AllocatorStats before = allocator_stats();
  const void* first = nullptr;
  {
    const Tensor a = zeros(shape);
    first = a.raw_data();
  }
  {
    const Tensor b = zeros(shape);
    CHECK(b.raw_data() == first);  // the block just freed comes back
  }
  const AllocatorStats after = allocator_stats();
  CHECK(after.reused_allocations >= before.reused_allocations + 2);
  CHECK(after.fresh_allocations == before.fresh_allocations);
  CHECK(after.live_blocks == before.live_blocks);
  CHECK(after.live_bytes == before.live_bytes);
}

TEST_CASE("the caching allocator serves a request from a cached block up to twice its size", "[tensor][allocator]") {
  // Sizes below the carved blocks' threshold, in doubles: 48 KiB, 32 KiB (two classes below 48
  // KiB's) and 16 KiB (six classes below).
  const std::int64_t k16 = 2048;
  static_assert(3 * 2048 * 8 <= detail::kLargeBlockBytes);
  empty_allocator_cache();
  const void* block = nullptr;
  { const Tensor big = zeros({3 * k16}); block = big.raw_data(); }  // one cached 48 KiB block
  const AllocatorStats before = allocator_stats();
  {
    const Tensor smaller = zeros({2 * k16});
    CHECK(smaller.raw_data() == block);
    CHECK(allocator_stats().fresh_allocations == before.fresh_allocations);
    // The block counts at its own size, and goes back to its own class.
    CHECK(allocator_stats().live_bytes == before.live_bytes + 3 * (16 << 10));
  }
  {
    const Tensor same = zeros({3 * k16});
    CHECK(same.raw_data() == block);
  }
  {
    const Tensor much_smaller = zeros({k16});  // a 48 KiB block would waste two thirds of it
    CHECK(much_smaller.raw_data() != block);
    CHECK(allocator_stats().fresh_allocations == before.fresh_allocations + 1);
  }
  CHECK(allocator_stats().live_bytes == before.live_bytes);
  CHECK(allocator_stats().cached_bytes == before.cached_bytes + (16 << 10));
}

TEST_CASE("live blocks return to the baseline once tensors die", "[tensor][allocator]") {
  const AllocatorStats before = allocator_stats();
  {
    const Tensor a = ones({64, 33});
    const Tensor b = a.t();  // a view: no new block
    CHECK(allocator_stats().live_blocks == before.live_blocks + 1);
    const Tensor c = matmul(a, b) + sum(exp(a), {1});
    const Tensor d = concat({a, a}, 1).slice(0, 0, 64, 2).contiguous();
    CHECK(c.shape() == Shape{64, 64});
    CHECK(d.shape() == Shape{32, 66});
    CHECK(allocator_stats().live_blocks == before.live_blocks + 3);
    CHECK(allocator_stats().live_bytes >= static_cast<std::int64_t>(64 * 33 * sizeof(double)));
  }
  const AllocatorStats after = allocator_stats();
  CHECK(after.live_blocks == before.live_blocks);
  CHECK(after.live_bytes == before.live_bytes);
  // Blocks are 64-byte aligned (AVX-512 loads).
  for (std::int64_t n : {1, 3, 17, 1000}) {
    const Tensor t = zeros({n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.storage()->data()) % 64 == 0);
  }
}

TEST_CASE("empty_allocator_cache releases cached blocks", "[tensor][allocator]") {
  { const Tensor t = zeros({4096}); }
  CHECK(allocator_stats().cached_bytes > 0);
  empty_allocator_cache();
  CHECK(allocator_stats().cached_bytes == 0);
  const AllocatorStats before = allocator_stats();
  { const Tensor t = zeros({4096}); }
  CHECK(allocator_stats().fresh_allocations == before.fresh_allocations + 1);
}

namespace {
struct Payload {
  std::int64_t values[9];
  explicit Payload(std::int64_t seed) {
    for (std::int64_t i = 0; i < 9; ++i) values[i] = seed * 10 + i;
  }
  bool intact(std::int64_t seed) const {
    for (std::int64_t i = 0; i < 9; ++i)
      if (values[i] != seed * 10 + i) return false;
    return true;
  }
};
}  // namespace

TEST_CASE("the block pool hands out distinct, intact objects across threads", "[tensor][allocator][pool]") {
  // Objects made on one thread and released on another (and on threads that then exit).
  std::vector<std::shared_ptr<Payload>> made(2000);
  std::thread producer([&] {
    for (std::size_t i = 0; i < made.size(); ++i) made[i] = make_pooled<Payload>(static_cast<std::int64_t>(i));
  });
  producer.join();
  std::vector<const void*> addresses;
  for (std::size_t i = 0; i < made.size(); ++i) {
    REQUIRE(made[i]->intact(static_cast<std::int64_t>(i)));
    addresses.push_back(made[i].get());
  }
  std::sort(addresses.begin(), addresses.end());
  CHECK(std::adjacent_find(addresses.begin(), addresses.end()) == addresses.end());
  std::thread consumer([&] { made.resize(made.size() / 2); });
  consumer.join();
  made.clear();
  // Recycled blocks are reinitialised by their constructor.
  std::vector<std::shared_ptr<Payload>> again;
  for (std::int64_t i = 0; i < 3000; ++i) again.push_back(make_pooled<Payload>(i + 7));
  for (std::int64_t i = 0; i < 3000; ++i) REQUIRE(again[static_cast<std::size_t>(i)]->intact(i + 7));
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("the block pool recycles a freed block on the same thread", "[tensor][allocator][pool]") {
  const void* first = nullptr;
  {
    const auto a = make_pooled<Payload>(1);
    first = a.get();
  }
  const auto b = make_pooled<Payload>(2);
  CHECK(b.get() == first);
  CHECK(b->intact(2));
}
#endif

TEST_CASE("operator<< prints the values, dtype and shape", "[tensor][print]") {
  auto print = [](const Tensor& t) {
    std::ostringstream out;
    out << t;
    return out.str();
  };
  const std::string m = print(tensor({1.5, -2, 3, 4.25}, {2, 2}));
  CHECK_THAT(m, Catch::Contains("float64"));
  CHECK_THAT(m, Catch::Contains("[2, 2]"));
  CHECK_THAT(m, Catch::Contains("[[1.5, -2],"));
  CHECK_THAT(m, Catch::Contains("[3, 4.25]]"));
  const std::string f = print(tensor({0.5, 2}, {}, DType::f32));
  CHECK_THAT(f, Catch::Contains("float32") && Catch::Contains("[0.5, 2]") && Catch::Contains("[2]"));
  const std::string i = print(from_indices({7, -3}));
  CHECK_THAT(i, Catch::Contains("int64") && Catch::Contains("[7, -3]"));
  // A 0-d tensor, an empty one, and a strided view (printed in logical order).
  CHECK_THAT(print(scalar_tensor(2.5)), Catch::Contains("2.5") && Catch::Contains("shape=[]"));
  CHECK_THAT(print(tensor({1, 2, 3}).select(0, 2)), Catch::StartsWith("tensor(3,"));
  CHECK_THAT(print(zeros({0})), Catch::Contains("[]") && Catch::Contains("[0]"));
  CHECK_THAT(print(tensor({1, 2, 3, 4}, {2, 2}).t()),
             Catch::Contains("[[1, 3],") && Catch::Contains("[2, 4]]"));
  CHECK_THAT(print(tensor({1, 2, 3, 4, 5, 6}).slice(0, 1, 6, 2)), Catch::Contains("[2, 4, 6]"));
  // Large tensors are summarised, keeping the first and last elements.
  const std::string big = print(arange(0, 5000));
  CHECK_THAT(big, Catch::Contains("...") && Catch::Contains("[0, 1, 2, ") && Catch::Contains("4999]"));
  CHECK(big.size() < 200);
  CHECK(print(Tensor()) == "tensor(undefined)");
}

TEST_CASE("peak_live_bytes records the high-water mark of live bytes since the last reset", "[storage]") {
  theta::reset_peak_live_bytes();
  const std::int64_t base = theta::allocator_stats().live_bytes;
  CHECK(theta::allocator_stats().peak_live_bytes == base);
  {
    const theta::Tensor a = theta::zeros({1 << 20});  // 8 MiB
    const theta::Tensor b = theta::zeros({1 << 18});  // 2 MiB
    CHECK(theta::allocator_stats().peak_live_bytes >= base + (10 << 20));
  }
  const std::int64_t peak = theta::allocator_stats().peak_live_bytes;
  CHECK(theta::allocator_stats().live_bytes == base);
  {
    const theta::Tensor c = theta::zeros({1 << 10});
    CHECK(theta::allocator_stats().peak_live_bytes == peak);  // below the mark: unchanged
  }
  theta::reset_peak_live_bytes();
  CHECK(theta::allocator_stats().peak_live_bytes == base);
}
