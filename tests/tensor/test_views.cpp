// O(1) views (reshape, permute, transpose, slice, select, expand, squeeze, unsqueeze, flatten)
// and copies (contiguous, clone, to). Views are checked element by element against the index
// arithmetic that defines them, and for sharing storage with their base.

#include <catch2/catch.hpp>

#include <algorithm>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"

using namespace theta;

namespace {

// A contiguous tensor holding 0, 1, 2, ... so every element names its own position.
Tensor iota(const Shape& shape, DType dtype = DType::f64) {
  std::vector<double> v(static_cast<std::size_t>(ref::count(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return from_vector(v, shape, dtype);
}

// Whether viewing `t`'s elements, in row-major order, with `shape` can be done by strides: the
// candidate stride of each axis of size > 1 is the storage distance between element 0 and the
// element one step along that axis; the view exists iff these strides reproduce every offset.
bool view_possible(const Tensor& t, const Shape& shape) {
  const auto offsets = ref::element_offsets(t);
  if (offsets.empty()) return true;
  Strides strides(shape.size(), 0);
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 2) continue;
    std::vector<std::int64_t> unit(shape.size(), 0);
    unit[d] = 1;
    strides[d] = offsets[static_cast<std::size_t>(ref::ravel(unit, shape))] - offsets[0];
  }
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    const auto index = ref::unravel(static_cast<std::int64_t>(i), shape);
    std::int64_t off = offsets[0];
    for (std::size_t d = 0; d < shape.size(); ++d) off += index[d] * strides[d];
    if (off != offsets[i]) return false;
  }
  return true;
}

// Every way to write n as an ordered product of `parts` factors.
void factorizations(std::int64_t n, int parts, Shape& prefix, std::vector<Shape>& out) {
  if (parts == 1) {
    prefix.push_back(n);
    out.push_back(prefix);
    prefix.pop_back();
    return;
  }
  for (std::int64_t f = 1; f <= n; ++f)
    if (n % f == 0) {
      prefix.push_back(f);
      factorizations(n / f, parts - 1, prefix, out);
      prefix.pop_back();
    }
}

}  // namespace

TEST_CASE("reshape of contiguous tensors is a view with -1 inferred", "[tensor][views][reshape]") {
  const Tensor x = iota({2, 3, 4});
  for (const Shape& s : std::vector<Shape>{{4, 6}, {24}, {2, 12}, {1, 24, 1}, {3, 2, 2, 2}}) {
    const Tensor y = x.reshape(s);
    CHECK(y.shape() == s);
    CHECK(y.storage() == x.storage());
    CHECK(ref::read(y) == ref::read(x));
  }
  CHECK(x.reshape({-1}).shape() == Shape{24});
  CHECK(x.reshape({4, -1, 2}).shape() == Shape{4, 3, 2});
  CHECK(x.reshape({-1, 1}).shape() == Shape{24, 1});
  CHECK(iota({1}).reshape({}).shape() == Shape{});
  CHECK(iota({}).reshape({1, 1}).shape() == Shape{1, 1});
  CHECK(zeros({0, 4}).reshape({2, 0, 5}).shape() == Shape{2, 0, 5});
  CHECK(zeros({0, 4}).reshape({-1, 8}).shape() == Shape{0, 8});
  CHECK_THROWS_AS(zeros({0, 4}).reshape({2, 0, -1}), ShapeError);  // -1 is ambiguous, as in NumPy
  CHECK_THROWS_AS(x.reshape({5, -1}), ShapeError);
  CHECK_THROWS_AS(x.reshape({-1, -1}), ShapeError);
  CHECK_THROWS_AS(x.reshape({25}), ShapeError);
}

TEST_CASE("reshape of transposed tensors views when the strides allow it", "[tensor][views][reshape]") {
  const Tensor x = iota({4, 3}).t();  // [3, 4], strides [1, 3]
  // Splitting an axis or adding size-1 axes keeps a view.
  for (const Shape& s : std::vector<Shape>{{3, 2, 2}, {1, 3, 4}, {3, 4, 1}, {3, 1, 4}}) {
    const Tensor y = x.reshape(s);
    CHECK(y.storage() == x.storage());
    CHECK(ref::read(y) == ref::read(x));
  }
  CHECK_THROWS_AS(x.reshape({12}), ShapeError);
  CHECK_THROWS_WITH(x.reshape({12}), Catch::Contains("reshape: cannot view [3, 4] (strides [1, 3]) as [12]"));
  // reshape_copy and flatten fall back to a copy.
  const Tensor c = x.reshape_copy({12});
  CHECK(ref::read(c) == ref::read(x));
  CHECK(c.storage() != x.storage());
  CHECK(ref::read(x.flatten()) == ref::read(x));
  CHECK(x.flatten().storage() != x.storage());
  const Tensor contiguous = iota({2, 3});
  CHECK(contiguous.flatten().storage() == contiguous.storage());
}

TEST_CASE("reshape views exactly when a strided view exists", "[tensor][views][reshape][property]") {
  Rng rng(81);
  const std::vector<std::int64_t> sizes = {12, 24, 16};
  int views = 0, refusals = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t n = sizes[rng.below(sizes.size())];
    std::vector<Shape> shapes;
    Shape prefix;
    for (int parts = 1; parts <= 4; ++parts) factorizations(n, parts, prefix, shapes);
    // A random base layout: a random shape, permuted, sometimes sliced down from a larger base.
    const Shape base_shape = shapes[rng.below(shapes.size())];
    Tensor x;
    if (rng.below(2) == 0) {
      x = iota(base_shape);
    } else {
      Shape bigger = base_shape;
      const auto axis = static_cast<std::size_t>(rng.below(bigger.size()));
      bigger[axis] *= 2;
      x = iota(bigger).slice(static_cast<std::int64_t>(axis), 0, bigger[axis], 2);
    }
    std::vector<std::int64_t> perm(base_shape.size());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<std::int64_t>(i);
    for (std::size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
    x = x.permute(perm);
    // Sometimes a size-1 axis too, whose stride unsqueeze derives from its neighbour.
    if (rng.below(3) == 0)
      x = x.unsqueeze(static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(x.dim()) + 1)));
    const Shape target = shapes[rng.below(shapes.size())];
    INFO(ref::str(x.shape()) << " strides " << ref::str(x.strides()) << " -> " << ref::str(target));
    if (view_possible(x, target)) {
      ++views;
      Tensor y;
      REQUIRE_NOTHROW(y = x.reshape(target));
      CHECK(y.shape() == target);
      CHECK(y.storage() == x.storage());
      CHECK(ref::read(y) == ref::read(x));
    } else {
      ++refusals;
      CHECK_THROWS_AS(x.reshape(target), ShapeError);
      const Tensor y = x.reshape_copy(target);
      CHECK(ref::read(y) == ref::read(x));
    }
  }
  // Both outcomes must actually have been exercised.
  CHECK(views > 30);
  CHECK(refusals > 30);
}

TEST_CASE("permute, transpose and t move axes without copying", "[tensor][views][permute]") {
  const Shape shape = {2, 3, 4};
  const Tensor x = iota(shape);
  const std::vector<std::vector<std::int64_t>> perms = {
      {0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {2, 0, 1}, {-1, 0, -2}};
  for (const auto& perm : perms) {
    INFO(ref::str(perm));
    const Tensor y = x.permute(perm);
    CHECK(y.storage() == x.storage());
    Shape out(3);
    for (std::size_t i = 0; i < 3; ++i) out[i] = shape[static_cast<std::size_t>((perm[i] + 3) % 3)];
    REQUIRE(y.shape() == out);
    const auto got = ref::read(y);
    for (std::int64_t i = 0; i < ref::count(out); ++i) {
      const auto yi = ref::unravel(i, out);
      std::vector<std::int64_t> xi(3);
      for (std::size_t d = 0; d < 3; ++d) xi[static_cast<std::size_t>((perm[d] + 3) % 3)] = yi[d];
      CHECK(got[static_cast<std::size_t>(i)] == static_cast<double>(ref::ravel(xi, shape)));
    }
  }
  CHECK(ref::read(x.transpose(0, 2)) == ref::read(x.permute({2, 1, 0})));
  CHECK(ref::read(x.transpose(-1, 0)) == ref::read(x.permute({2, 1, 0})));
  CHECK(ref::read(x.transpose(1, 1)) == ref::read(x));
  const Tensor m = iota({2, 3});
  CHECK(m.t().shape() == Shape{3, 2});
  CHECK(ref::read(m.t()) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(m.t().storage() == m.storage());
  CHECK_FALSE(m.t().is_contiguous());
  CHECK_THROWS_AS(x.t(), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 1, 1}), ShapeError);
  CHECK_THROWS_AS(x.permute({0, 1, 3}), IndexError);
}

TEST_CASE("slice follows Python semantics: step, negative and clamped bounds", "[tensor][views][slice]") {
  const std::int64_t n = 10;
  const Tensor x = iota({3, n});
  for (std::int64_t start : {-15, -10, -3, -1, 0, 1, 4, 9, 10, 12})
    for (std::int64_t stop : {-12, -4, -1, 0, 2, 7, 10, 100})
      for (std::int64_t step : {1, 2, 3, 7}) {
        INFO("[" << start << ":" << stop << ":" << step << "]");
        // Python: negative bounds count from the end, then clamp into [0, n].
        auto norm = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
        std::vector<double> cols;
        for (std::int64_t j = norm(start); j < norm(stop); j += step) cols.push_back(static_cast<double>(j));
        const Tensor y = x.slice(1, start, stop, step);
        REQUIRE(y.shape() == Shape{3, static_cast<std::int64_t>(cols.size())});
        CHECK(y.storage() == x.storage());
        std::vector<double> want;
        for (int r = 0; r < 3; ++r)
          for (double c : cols) want.push_back(r * static_cast<double>(n) + c);
        CHECK(ref::read(y) == want);
        CHECK(ref::read(x.slice(-1, start, stop, step)) == want);
      }
  CHECK_THROWS_AS(x.slice(1, 0, 5, 0), std::invalid_argument);
  CHECK_THROWS_AS(x.slice(1, 0, 5, -1), std::invalid_argument);
  CHECK_THROWS_AS(x.slice(2, 0, 1), IndexError);
  // Slices of slices compose.
  CHECK(ref::read(iota({20}).slice(0, 1, 20, 2).slice(0, 2, 9, 3)) == std::vector<double>{5, 11, 17});
}

TEST_CASE("select fixes an axis, with negative indices", "[tensor][views][select]") {
  const Tensor x = iota({2, 3, 4});
  CHECK(x.select(0, 1).shape() == Shape{3, 4});
  std::vector<double> second;
  for (int i = 12; i < 24; ++i) second.push_back(i);
  CHECK(ref::read(x.select(0, 1)) == second);
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) want.push_back(i * 12 + 2 * 4 + k);
  CHECK(ref::read(x.select(1, 2)) == want);
  CHECK(ref::read(x.select(1, -1)) == want);
  CHECK(ref::read(x.select(-1, -4)) == std::vector<double>{0, 4, 8, 12, 16, 20});
  CHECK(x.select(1, 2).storage() == x.storage());
  CHECK(x.select(0, 0).select(0, 0).select(0, 3).shape() == Shape{});
  CHECK(x.select(0, 0).select(0, 0).select(0, 3).item() == 3.0);
  CHECK_THROWS_AS(x.select(1, 3), IndexError);
  CHECK_THROWS_AS(x.select(1, -4), IndexError);
  CHECK_THROWS_AS(x.select(3, 0), IndexError);
}

TEST_CASE("expand broadcasts with stride 0", "[tensor][views][expand]") {
  const Tensor col = iota({3, 1});
  const Tensor e = col.expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides()[0] == 0);
  CHECK(e.strides()[2] == 0);
  CHECK(e.storage() == col.storage());
  const auto v = ref::read(e);
  for (std::int64_t i = 0; i < 24; ++i)
    CHECK(v[static_cast<std::size_t>(i)] == static_cast<double>(ref::unravel(i, {2, 3, 4})[1]));
  CHECK(col.expand({-1, 5}).shape() == Shape{3, 5});
  CHECK(iota({}).expand({2, 2}).shape() == Shape{2, 2});
  CHECK(iota({1}).expand({0}).shape() == Shape{0});
  CHECK_THROWS_AS(col.expand({2, 1}), ShapeError);
  CHECK_THROWS_AS(col.expand({4, 4}), ShapeError);
  CHECK_THROWS_AS(col.expand({4}), ShapeError);
}

TEST_CASE("squeeze, unsqueeze and flatten", "[tensor][views][squeeze]") {
  const Tensor x = iota({1, 3, 1, 2});
  CHECK(x.squeeze().shape() == Shape{3, 2});
  CHECK(x.squeeze(0).shape() == Shape{3, 1, 2});
  CHECK(x.squeeze(-2).shape() == Shape{1, 3, 2});
  CHECK(x.squeeze().storage() == x.storage());
  CHECK(ref::read(x.squeeze()) == ref::read(x));
  CHECK_THROWS_AS(x.squeeze(1), ShapeError);
  CHECK(iota({1, 1}).squeeze().shape() == Shape{});
  const Tensor m = iota({2, 3});
  CHECK(m.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(m.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(m.unsqueeze(2).shape() == Shape{2, 3, 1});
  CHECK(m.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(m.unsqueeze(-3).shape() == Shape{1, 2, 3});
  CHECK(m.unsqueeze(1).is_contiguous());
  CHECK(ref::read(m.t().unsqueeze(1)) == ref::read(m.t()));
  CHECK_THROWS_AS(m.unsqueeze(3), IndexError);
  CHECK_THROWS_AS(m.unsqueeze(-4), IndexError);
  CHECK(iota({}).flatten().shape() == Shape{1});
  CHECK(iota({2, 0}).flatten().shape() == Shape{0});
}

TEST_CASE("contiguous, clone and is_contiguous", "[tensor][views][copy]") {
  const Tensor x = iota({3, 4});
  CHECK(x.is_contiguous());
  CHECK(x.contiguous().storage() == x.storage());
  for (const Tensor& v : {x.t(), x.slice(1, 0, 4, 2), x.unsqueeze(0).expand({2, 3, 4})}) {
    CHECK_FALSE(v.is_contiguous());
    const Tensor c = v.contiguous();
    CHECK(c.is_contiguous());
    CHECK(c.strides() == contiguous_strides(c.shape()));
    CHECK(c.storage() != v.storage());
    CHECK(ref::read(c) == ref::read(v));
  }
  // A slice of leading rows is still contiguous (with an offset).
  CHECK(x.slice(0, 1, 3).is_contiguous());
  CHECK(zeros({0, 5}).is_contiguous());
  CHECK(zeros({3, 0}).t().is_contiguous());
  // clone shares nothing.
  const Tensor c = x.clone();
  CHECK(c.storage() != x.storage());
  Tensor(c).fill_(-1.0);
  CHECK(ref::read(x) == ref::read(iota({3, 4})));
  CHECK(ref::read(c) == std::vector<double>(12, -1.0));
}

TEST_CASE("to(dtype) converts and round-trips", "[tensor][views][dtype]") {
  const Tensor x = tensor({-2.5, -1.0, 0.0, 0.75, 3.0, 1e6});
  CHECK(x.to(DType::f64).storage() == x.storage());
  const Tensor f = x.to(DType::f32);
  CHECK(f.dtype() == DType::f32);
  CHECK(ref::read(f.to(DType::f64)) == ref::read(x));  // all exactly representable in float
  // Conversion to int64 truncates toward zero; back to float64 is exact.
  CHECK(ref::read_i64(x.to(DType::i64)) == std::vector<std::int64_t>{-2, -1, 0, 0, 3, 1000000});
  const std::int64_t big = (std::int64_t{1} << 53) + 1;
  CHECK(ref::read(from_indices({big}).to(DType::f64))[0] == static_cast<double>(big));
  CHECK(ref::read_i64(from_indices({-7, 8}).to(DType::f32).to(DType::i64)) ==
        std::vector<std::int64_t>{-7, 8});
  // float64 -> float32 rounds to nearest.
  CHECK(ref::read(tensor({0.1}).to(DType::f32))[0] == static_cast<double>(0.1f));
  // Converting a strided view converts its logical elements.
  const Tensor v = iota({3, 4}).t().slice(0, 0, 4, 3);
  CHECK(ref::read(v.to(DType::f32)) == ref::read(v));
  CHECK(v.to(DType::f32).is_contiguous());
}

TEST_CASE("views share storage: writes through a view reach the base", "[tensor][views][copy_]") {
  Tensor base = zeros({3, 4});
  // Every other column.
  Tensor cols = base.slice(1, 1, 4, 2);
  cols.copy_(tensor({1, 2, 3, 4, 5, 6}, {3, 2}));
  CHECK(ref::read(base) == std::vector<double>{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6});
  // A row through select, filled.
  Tensor row = base.select(0, 2);
  row.fill_(9.0);
  CHECK(ref::read(base) == std::vector<double>{0, 1, 0, 2, 0, 3, 0, 4, 9, 9, 9, 9});
  // The transpose, written with a broadcast source.
  Tensor tt = base.t();
  tt.copy_(tensor({1, 2, 3}, {1, 3}));
  CHECK(ref::read(base) == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  // A reshape of the base sees the writes too.
  CHECK(ref::read(base.reshape({12})) == ref::read(base));
  // In-place writes bump the storage version.
  const auto version = base.storage()->version();
  row.fill_(0.0);
  CHECK(base.storage()->version() > version);
  CHECK_THROWS_AS(row.copy_(zeros({4}, DType::f32)), DTypeError);
  CHECK_THROWS_AS(row.copy_(zeros({3})), ShapeError);
  CHECK_THROWS_AS(row.copy_(zeros({2, 4})), ShapeError);
}

TEST_CASE("views work on every dtype", "[tensor][views][int64]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    INFO(ref::dtype_label(dtype));
    const Tensor x = iota({2, 3}, dtype);
    CHECK(ref::read(x.t()) == std::vector<double>{0, 3, 1, 4, 2, 5});
    CHECK(ref::read(x.slice(1, 0, 3, 2)) == std::vector<double>{0, 2, 3, 5});
    CHECK(ref::read(x.select(1, 1)) == std::vector<double>{1, 4});
    CHECK(ref::read(x.unsqueeze(0).expand({2, 2, 3}).contiguous()) ==
          std::vector<double>{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5});
    CHECK(ref::read(x.t().clone()) == std::vector<double>{0, 3, 1, 4, 2, 5});
    CHECK(x.t().contiguous().dtype() == dtype);
  }
}

TEST_CASE("element access: at, item, data", "[tensor][views][access]") {
  const Tensor x = iota({2, 3}).t();
  CHECK(x.at({2, 1}) == 5.0);
  CHECK_THROWS_AS(x.at({3, 0}), IndexError);
  CHECK_THROWS_AS(x.at({0}), IndexError);
  CHECK(iota({1, 1}).item() == 0.0);
  CHECK(tensor({2.5}).item<float>() == 2.5f);
  CHECK_THROWS_AS(iota({2}).item(), ShapeError);
  CHECK_THROWS_AS(iota({2}).data<float>(), DTypeError);
  CHECK(x.size(0) == 3);
  CHECK(x.size(-1) == 2);
  CHECK_THROWS_AS(x.size(2), IndexError);
  CHECK(x.numel() == 6);
  CHECK(x.dim() == 2);
  CHECK(zeros({4, 0, 2}).numel() == 0);
  CHECK(zeros({}).numel() == 1);
  const Tensor undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_THROWS(undefined.reshape({1}));
  CHECK_THROWS(exp(undefined));
}
