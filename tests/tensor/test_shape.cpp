// Shape algebra: broadcast_shapes as a property test against an independent NumPy-rule
// implementation, plus numel, strides, printing and axis normalisation.

#include <catch2/catch.hpp>

#include "tensor/rng.hpp"
#include "tensor/shape.hpp"
#include "tests/support/reference.hpp"
#include "tests/support/reference_ops.hpp"

using namespace theta;

namespace {

// A random shape of rank 0..4 with sizes in {0, 1, ..., 4} (1 and 0 made common).
Shape random_shape(Rng& rng) {
  Shape s(rng.below(5));
  for (auto& d : s) {
    const auto pick = rng.below(8);
    d = pick < 3 ? 1 : pick == 3 ? 0 : static_cast<std::int64_t>(pick) - 2;
  }
  return s;
}

// A shape broadcast-compatible with `a`: per trailing axis keep the size, use 1, or (where a
// has 1) pick any size; optionally drop or add leading axes.
Shape compatible_shape(const Shape& a, Rng& rng) {
  Shape b;
  const std::size_t keep = a.size() - rng.below(a.size() + 1);
  for (std::size_t i = a.size() - keep; i < a.size(); ++i) {
    const auto pick = rng.below(3);
    b.push_back(pick == 0   ? a[i]
                : pick == 1 ? 1
                : a[i] == 1 ? static_cast<std::int64_t>(rng.below(5))
                            : a[i]);
  }
  for (auto extra = rng.below(3); extra > 0; --extra)
    b.insert(b.begin(), static_cast<std::int64_t>(rng.below(4)));
  return b;
}

}  // namespace

TEST_CASE("broadcast_shapes follows NumPy rules and is commutative", "[tensor][shape][property]") {
  Rng rng(2718);
  int compatible = 0, incompatible = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const Shape a = random_shape(rng);
    const Shape b = trial % 2 == 0 ? compatible_shape(a, rng) : random_shape(rng);
    INFO(ref::str(a) << " with " << ref::str(b));
    Shape want;
    if (ref::broadcast(a, b, want)) {
      ++compatible;
      CHECK(broadcast_shapes(a, b, "test") == want);
      CHECK(broadcast_shapes(b, a, "test") == want);
    } else {
      ++incompatible;
      CHECK_THROWS_AS(broadcast_shapes(a, b, "test"), ShapeError);
      CHECK_THROWS_AS(broadcast_shapes(b, a, "test"), ShapeError);
      CHECK_THROWS_WITH(broadcast_shapes(a, b, "myop"),
                        Catch::Contains("myop: cannot broadcast " + ref::str(a) + " with " + ref::str(b)));
    }
  }
  CHECK(compatible > 1000);
  CHECK(incompatible > 500);
}

TEST_CASE("broadcast_shapes: hand-picked cases", "[tensor][shape]") {
  CHECK(broadcast_shapes({}, {}, "t") == Shape{});
  CHECK(broadcast_shapes({}, {2, 3}, "t") == Shape{2, 3});
  CHECK(broadcast_shapes({2, 1, 3}, {4, 1}, "t") == Shape{2, 4, 3});
  CHECK(broadcast_shapes({0}, {1}, "t") == Shape{0});
  CHECK(broadcast_shapes({5, 0}, {5, 1}, "t") == Shape{5, 0});
  CHECK_THROWS_AS(broadcast_shapes({0}, {2}, "t"), ShapeError);
  CHECK_THROWS_AS(broadcast_shapes({3, 4}, {2, 4}, "t"), ShapeError);
}

TEST_CASE("shape_numel, contiguous_strides, shape_str", "[tensor][shape]") {
  CHECK(shape_numel({}) == 1);
  CHECK(shape_numel({2, 3, 4}) == 24);
  CHECK(shape_numel({2, 0, 4}) == 0);
  CHECK_THROWS_AS(shape_numel({-1, 2}), ShapeError);
  CHECK_THROWS_AS(shape_numel({std::int64_t{1} << 40, std::int64_t{1} << 40}), ShapeError);
  CHECK(contiguous_strides({2, 3, 4}) == Strides{12, 4, 1});
  CHECK(contiguous_strides({}) == Strides{});
  CHECK(contiguous_strides({5}) == Strides{1});
  CHECK(shape_str({}) == "[]");
  CHECK(shape_str({2, 3}) == "[2, 3]");
  CHECK(shape_str({7}) == "[7]");
}

TEST_CASE("normalize_axis and normalize_axes", "[tensor][shape]") {
  CHECK(normalize_axis(0, 3, "t") == 0);
  CHECK(normalize_axis(-1, 3, "t") == 2);
  CHECK(normalize_axis(-3, 3, "t") == 0);
  CHECK_THROWS_AS(normalize_axis(3, 3, "t"), IndexError);
  CHECK_THROWS_AS(normalize_axis(-4, 3, "t"), IndexError);
  CHECK_THROWS_AS(normalize_axis(0, 0, "t"), IndexError);
  CHECK_THROWS_WITH(normalize_axis(5, 2, "sum"),
                    Catch::Contains("sum: axis 5 out of range for a tensor with 2 dimensions"));
  CHECK(normalize_axes({}, 3, "t") == std::vector<std::int64_t>{0, 1, 2});
  CHECK(normalize_axes({-1, 0}, 3, "t") == std::vector<std::int64_t>{0, 2});
  CHECK(normalize_axes({}, 0, "t").empty());
  CHECK_THROWS_AS(normalize_axes({1, -2}, 3, "t"), IndexError);
}
