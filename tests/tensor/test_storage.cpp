// The caching allocator and operator<<.

#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>

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
