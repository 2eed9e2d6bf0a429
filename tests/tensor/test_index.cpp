// index_select, gather, scatter_add, concat and stack against loops written from their
// definitions.

#include <catch2/catch.hpp>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"

using namespace theta;

namespace {

// Position in `shape` of multi-index `index` with axis `axis` replaced by `value`.
std::int64_t with_axis(std::vector<std::int64_t> index, std::size_t axis, std::int64_t value,
                       const Shape& shape) {
  index[axis] = value;
  return ref::ravel(index, shape);
}

}  // namespace

TEST_CASE("index_select picks entries along an axis, repeats allowed", "[tensor][index][index_select]") {
  Rng rng(91);
  const Shape shape = {4, 5, 3};
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (std::int64_t axis : {0, 1, 2, -1, -3})
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " axis " << axis << " " << ref::layout_name(layout));
        const Tensor x = ref::make_input(shape, layout, dtype, rng, {-9.0, 9.0, false, true});
        const auto a = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
        // Repeats, both ends, through a strided index view (picks at even positions).
        const std::int64_t n = shape[a];
        const Tensor index = from_indices({n - 1, 99, 0, 99, 0, 99, n / 2, 99, n - 1}).slice(0, 0, 9, 2);
        const auto iv = ref::read_i64(index);
        const Tensor y = index_select(x, axis, index);
        Shape out = shape;
        out[a] = static_cast<std::int64_t>(iv.size());
        REQUIRE(y.shape() == out);
        const auto xv = ref::read(x);
        std::vector<double> want;
        for (std::int64_t i = 0; i < ref::count(out); ++i) {
          const auto oi = ref::unravel(i, out);
          want.push_back(
              xv[static_cast<std::size_t>(with_axis(oi, a, iv[static_cast<std::size_t>(oi[a])], shape))]);
        }
        CHECK(ref::read(y) == want);
      }
  const Tensor x = zeros({3, 2});
  CHECK(index_select(x, 0, from_indices({})).shape() == Shape{0, 2});
  CHECK_THROWS_AS(index_select(x, 0, from_indices({3})), IndexError);
  CHECK_THROWS_AS(index_select(x, 0, tensor({1.0})), DTypeError);
  CHECK_THROWS_AS(index_select(x, 0, from_indices({0, 1}).reshape({1, 2})), ShapeError);
  CHECK_THROWS_AS(index_select(x, 2, from_indices({0})), IndexError);
}

TEST_CASE("gather: out[i][j][k] = x[i][index[i][j][k]][k] along axis 1", "[tensor][index][gather]") {
  Rng rng(93);
  const Shape shape = {3, 4, 5};
  // Index shapes may be smaller than x off the gather axis, and longer along it.
  const std::vector<std::pair<std::int64_t, Shape>> cases = {{0, {2, 4, 5}},  {1, {3, 6, 5}}, {2, {3, 4, 2}},
                                                             {-1, {1, 2, 7}}, {1, {2, 1, 3}}, {0, {0, 4, 5}}};
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (const auto& [axis, index_shape] : cases)
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " axis " << axis << " index " << ref::str(index_shape) << " "
                                     << ref::layout_name(layout));
        const auto a = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
        const Tensor x = ref::make_input(shape, layout, dtype, rng, {-9.0, 9.0, false, true});
        // The index tensor takes the same layout as x.
        const ref::Domain in_range{0.0, static_cast<double>(shape[a]), false, true};
        const Tensor index = ref::make_input(index_shape, layout, DType::i64, rng, in_range);
        const Tensor y = gather(x, axis, index);
        REQUIRE(y.shape() == index_shape);
        const auto xv = ref::read(x);
        const auto iv = ref::read_i64(index);
        std::vector<double> want;
        for (std::int64_t i = 0; i < ref::count(index_shape); ++i)
          want.push_back(xv[static_cast<std::size_t>(
              with_axis(ref::unravel(i, index_shape), a, iv[static_cast<std::size_t>(i)], shape))]);
        CHECK(ref::read(y) == want);
      }
  // A strided (transposed) index tensor.
  const Tensor x = tensor({10, 11, 12, 20, 21, 22}, {2, 3});
  const Tensor idx = from_indices({2, 1, 0, 0}).reshape({2, 2}).t();  // [[2, 0], [1, 0]]
  CHECK(ref::read(gather(x, 1, idx)) == std::vector<double>{12, 10, 21, 20});
  CHECK_THROWS_AS(gather(x, 1, from_indices({3, 0}).reshape({1, 2})), IndexError);
  CHECK_THROWS_AS(gather(x, 1, from_indices({0, 0})), ShapeError);
  CHECK_THROWS_AS(gather(x, 1, from_indices({0, 0, 0, 0, 0, 0}).reshape({3, 2})), ShapeError);
}

TEST_CASE("scatter_add accumulates repeated indices", "[tensor][index][scatter_add]") {
  Rng rng(97);
  const Shape shape = {3, 4};
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (std::int64_t axis : {0, 1, -1})
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " axis " << axis << " " << ref::layout_name(layout));
        const auto a = static_cast<std::size_t>(axis < 0 ? axis + 2 : axis);
        const Shape index_shape = a == 0 ? Shape{7, 4} : Shape{3, 9};  // more entries than slots: repeats
        const Tensor x = ref::make_input(shape, layout, dtype, rng, {-9.0, 9.0, false, true});
        const ref::Domain in_range{0.0, static_cast<double>(shape[a]), false, true};
        const Tensor index = ref::make_input(index_shape, layout, DType::i64, rng, in_range);
        const Tensor src = ref::make_input(index_shape, layout, dtype, rng, {-9.0, 9.0, false, true});
        const auto xv_before = ref::read(x);
        const Tensor y = scatter_add(x, axis, index, src);
        REQUIRE(y.shape() == shape);
        std::vector<double> want = ref::read(x);
        const auto iv = ref::read_i64(index);
        const auto sv = ref::read(src);
        for (std::int64_t i = 0; i < ref::count(index_shape); ++i)
          want[static_cast<std::size_t>(
              with_axis(ref::unravel(i, index_shape), a, iv[static_cast<std::size_t>(i)], shape))] +=
              sv[static_cast<std::size_t>(i)];
        CHECK(ref::read(y) == want);       // small integers: exact in every dtype
        CHECK(ref::read(x) == xv_before);  // x itself is not modified
      }
  // Every entry of src sent to one slot.
  const Tensor y = scatter_add(zeros({2}), 0, from_indices({1, 1, 1, 1}), tensor({1, 2, 3, 4}));
  CHECK(ref::read(y) == std::vector<double>{0, 10});
  CHECK_THROWS_AS(scatter_add(zeros({2}), 0, from_indices({2}), tensor({1})), IndexError);
  CHECK_THROWS_AS(scatter_add(zeros({2}), 0, from_indices({0}), tensor({1, 2})), ShapeError);
  CHECK_THROWS_AS(scatter_add(zeros({2}), 0, from_indices({0}), tensor({1}, {}, DType::f32)), DTypeError);
}

TEST_CASE("concat joins along an existing axis", "[tensor][index][concat]") {
  Rng rng(101);
  for (DType dtype : {DType::f32, DType::f64, DType::i64})
    for (std::int64_t axis : {0, 1, 2, -1, -2})
      for (ref::Layout layout : ref::kLayouts) {
        INFO(ref::dtype_label(dtype) << " axis " << axis << " " << ref::layout_name(layout));
        const auto a = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
        std::vector<Tensor> parts;
        for (std::int64_t len : {2, 0, 3, 1}) {
          Shape s = {2, 3, 4};
          s[a] = len;
          parts.push_back(ref::make_input(s, layout, dtype, rng, {-9.0, 9.0, false, true}));
        }
        const Tensor y = concat(parts, axis);
        Shape out = {2, 3, 4};
        out[a] = 6;
        REQUIRE(y.shape() == out);
        std::vector<double> want(static_cast<std::size_t>(ref::count(out)));
        std::int64_t start = 0;
        for (const Tensor& p : parts) {
          const auto pv = ref::read(p);
          for (std::int64_t i = 0; i < p.numel(); ++i) {
            auto index = ref::unravel(i, p.shape());
            index[a] += start;
            want[static_cast<std::size_t>(ref::ravel(index, out))] = pv[static_cast<std::size_t>(i)];
          }
          start += p.size(axis);
        }
        CHECK(ref::read(y) == want);
      }
  CHECK(ref::read(concat({tensor({1, 2})})) == std::vector<double>{1, 2});
  CHECK_THROWS_AS(concat({}), std::invalid_argument);
  CHECK_THROWS_AS(concat({zeros({2, 3}), zeros({2, 4})}, 0), ShapeError);
  CHECK_THROWS_AS(concat({zeros({2, 3}), zeros({2})}, 0), ShapeError);
  CHECK_THROWS_AS(concat({zeros({2}), zeros({2}, DType::f32)}), DTypeError);
  CHECK_THROWS_AS(concat({zeros({2}), zeros({2})}, 1), IndexError);
}

TEST_CASE("stack joins along a new axis, negative axes too", "[tensor][index][stack]") {
  const Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = a * 10.0;
  const Tensor c = (a * 100.0).t().contiguous().t();  // column-major storage
  const std::vector<Tensor> xs = {a, b, c};
  for (std::int64_t axis : {0, 1, 2, -1, -2, -3}) {
    INFO("axis " << axis);
    const auto ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
    const Tensor y = stack(xs, axis);
    Shape out = {2, 3};
    out.insert(out.begin() + static_cast<std::ptrdiff_t>(ax), 3);
    REQUIRE(y.shape() == out);
    const auto got = ref::read(y);
    for (std::int64_t i = 0; i < ref::count(out); ++i) {
      auto index = ref::unravel(i, out);
      const std::int64_t which = index[ax];
      index.erase(index.begin() + static_cast<std::ptrdiff_t>(ax));
      const auto v = ref::read(xs[static_cast<std::size_t>(which)]);
      CHECK(got[static_cast<std::size_t>(i)] == v[static_cast<std::size_t>(ref::ravel(index, {2, 3}))]);
    }
  }
  CHECK(stack({scalar_tensor(1), scalar_tensor(2)}).shape() == Shape{2});
  CHECK(ref::read(stack({scalar_tensor(1), scalar_tensor(2)}, -1)) == std::vector<double>{1, 2});
  CHECK_THROWS_AS(stack({a, a.t()}), ShapeError);
  CHECK_THROWS_AS(stack({a, b}, 3), IndexError);
  CHECK_THROWS_AS(stack({}), std::invalid_argument);
}
