// Storage over memory theta did not allocate, and the interrupt hook.

#include <catch2/catch.hpp>

#include <stdexcept>
#include <vector>

#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/storage.hpp"

using namespace theta;

TEST_CASE("an external storage views the caller's memory and releases it once, with its last user",
          "[tensor][storage]") {
  std::vector<double> owned = {1, 2, 3, 4, 5, 6};
  int releases = 0;
  const auto live_before = allocator_stats().live_blocks;
  {
    auto storage = std::make_shared<Storage>(owned.data(), owned.size() * sizeof(double), [&] { ++releases; });
    Tensor t(storage, {2, 3}, {3, 1}, 0, DType::f64);
    storage.reset();
    CHECK(t.data<double>() == owned.data());
    CHECK(allocator_stats().live_blocks == live_before);  // nothing was allocated for it
    // Writes through theta reach the caller's memory, and the other way round.
    t.fill_(0.5);
    CHECK(owned[5] == 0.5);
    owned[0] = 9;
    CHECK(t.at({0, 0}) == 9);
    const Tensor column = t.select(1, 2);  // a view keeps the storage alive
    t = Tensor();
    CHECK(releases == 0);
    CHECK(column.at({1}) == 0.5);
    // A computed result is fresh memory, not the caller's.
    const Tensor doubled = column * 2.0;
    CHECK(doubled.storage() != column.storage());
  }
  CHECK(releases == 1);
  CHECK_THROWS_AS(Storage(owned.data(), 8, nullptr), std::invalid_argument);
}

namespace {
int hook_calls = 0;
void counting_hook() { ++hook_calls; }
void throwing_hook() { throw std::runtime_error("interrupted"); }
}  // namespace

TEST_CASE("check_interrupt calls the installed hook and propagates what it throws", "[tensor][interrupt]") {
  const InterruptHook previous = set_interrupt_hook(nullptr);
  hook_calls = 0;
  check_interrupt();  // no hook: nothing happens
  CHECK(set_interrupt_hook(&counting_hook) == nullptr);
  check_interrupt();
  check_interrupt();
  CHECK(hook_calls == 2);
  CHECK(set_interrupt_hook(&throwing_hook) == &counting_hook);
  CHECK_THROWS_WITH(check_interrupt(), "interrupted");
  set_interrupt_hook(previous);
}
