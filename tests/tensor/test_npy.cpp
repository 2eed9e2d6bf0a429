// .npy round trips, NumPy compatibility (golden files, byte-identical writes) and header syntax.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/tensor/npy_test_support.hpp"

using namespace theta;
using namespace theta::npy_test;

TEST_CASE("npy round trips every dtype bitwise", "[npy]") {
  SECTION("float64 with NaN payloads, signed zeros, infinities and denormals") {
    constexpr double inf = std::numeric_limits<double>::infinity();
    Tensor t = from_vector({0.0, 1.0, -2.5, 1e308, 4.9e-324, inf, -inf, 0.1}, {2, 4});
    t.data<double>()[0] = bits_to_double(0xFFF8DEADBEEF0001ull);  // a NaN with a payload
    t.data<double>()[1] = -0.0;
    check_bitwise_equal(parse_exact(npy_serialize(t)), t);
  }
  SECTION("float32") {
    const Tensor t = from_vector({0.1, -3.0, 1e-45, 3.4e38, -0.0, 7.0}, {3, 2}, DType::f32);
    check_bitwise_equal(parse_exact(npy_serialize(t)), t);
  }
  SECTION("int64 extremes") {
    Tensor t = Tensor::empty({4}, DType::i64);
    const std::int64_t values[] = {std::numeric_limits<std::int64_t>::min(), -1, 0,
                                   std::numeric_limits<std::int64_t>::max()};
    std::memcpy(t.raw_data(), values, sizeof values);
    check_bitwise_equal(parse_exact(npy_serialize(t)), t);
  }
}

TEST_CASE("npy round trips 0-d, empty, 1-d and 3-d shapes", "[npy]") {
  for (const DType dtype : {DType::f32, DType::f64, DType::i64}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor zero_d = scalar_tensor(-3.0, dtype);
    const Tensor empty = zeros({0, 3}, dtype);
    const Tensor empty_inner = zeros({3, 0}, dtype);
    const Tensor vec = arange(-4, 5, 1, dtype);
    const Tensor cube = arange(0, 60, 1, dtype).reshape({3, 4, 5});
    for (const Tensor& t : {zero_d, empty, empty_inner, vec, cube}) {
      const Tensor back = parse_exact(npy_serialize(t));
      check_bitwise_equal(back, t);
      CHECK(back.strides() == contiguous_strides(back.shape()));
    }
  }
}

TEST_CASE("npy saves non-contiguous tensors by value", "[npy]") {
  const Tensor base = arange(0, 24).reshape({2, 3, 4});
  const Tensor transposed = arange(0, 12).reshape({3, 4}).t();
  const Tensor stepped = base.slice(2, 1, 4, 2);
  const Tensor permuted = base.permute({2, 0, 1});
  const Tensor offset = base.select(0, 1);
  const Tensor expanded = arange(0, 3).reshape({3, 1}).expand({3, 5});
  for (const Tensor& t : {transposed, stepped, permuted, offset, expanded}) {
    const Tensor back = parse_exact(npy_serialize(t));
    check_bitwise_equal(back, t.clone());
    CHECK(npy_serialize(t) == npy_serialize(t.clone()));
  }
}

TEST_CASE("npy header layout follows NumPy", "[npy]") {
  const std::string bytes = npy_serialize(zeros({3, 4}));
  const std::size_t newline = bytes.find('\n');
  REQUIRE(newline != std::string::npos);
  CHECK((newline + 1) % 64 == 0);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(bytes.substr(10, 61) ==
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }  ");
  CHECK(bytes.size() == newline + 1 + 12 * 8);

  SECTION("a header too long for version 1.0 is written as version 2.0") {
    const Tensor t = zeros(Shape(25000, 1));  // "(1, 1, ...)" takes 75000 bytes
    const std::string big = npy_serialize(t);
    CHECK(big[6] == 2);
    CHECK((big.find('\n') + 1) % 64 == 0);
    check_bitwise_equal(parse_exact(big), t);
  }
}

TEST_CASE("npy reads NumPy's golden files", "[npy]") {
  SECTION("float64 2x3") {
    const Tensor t = load_npy(golden_path("f8_2x3.npy"));
    check_bitwise_equal(t, from_vector({0.5, -1.25, 3.0, 1e-300, -0.0, INFINITY}, {2, 3}));
  }
  SECTION("float32 vector") {
    const Tensor t = load_npy(golden_path("f4_vec.npy"));
    check_bitwise_equal(t, from_vector({1.5, -2.0, 0.1, 3.4028234663852886e38, 7.0}, DType::f32));
  }
  SECTION("int64 0-d beyond double precision") {
    const Tensor t = load_npy(golden_path("i8_0d.npy"));
    REQUIRE(t.dtype() == DType::i64);
    CHECK(t.dim() == 0);
    CHECK(t.data<std::int64_t>()[0] == -9007199254740993);
  }
  SECTION("int64 2x3x4") {
    check_bitwise_equal(load_npy(golden_path("i8_2x3x4.npy")),
                        arange(-12, 12, 1, DType::i64).reshape({2, 3, 4}));
  }
  SECTION("empty 0x3") {
    check_bitwise_equal(load_npy(golden_path("f8_empty_0x3.npy")), zeros({0, 3}));
  }
  SECTION("Fortran order comes out in C order with the right values") {
    const Tensor m = load_npy(golden_path("f8_fortran.npy"));
    CHECK(m.is_contiguous());
    check_bitwise_equal(m, arange(0, 12).reshape({3, 4}));
    const Tensor c = load_npy(golden_path("f4_fortran_2x3x4.npy"));
    CHECK(c.is_contiguous());
    check_bitwise_equal(c, arange(0, 24, 1, DType::f32).reshape({2, 3, 4}));
  }
  SECTION("format versions 2.0 and 3.0") {
    check_bitwise_equal(load_npy(golden_path("f8_v2.npy")), arange(0, 6).reshape({2, 3}) * 0.25);
    check_bitwise_equal(load_npy(golden_path("f4_v3.npy")),
                        from_vector({0.25, -8.0, 3.0}, DType::f32));
  }
}

TEST_CASE("npy writes the same bytes as NumPy's np.save", "[npy]") {
  Tensor i8_0d = Tensor::empty({}, DType::i64);
  i8_0d.data<std::int64_t>()[0] = -9007199254740993;
  const std::vector<std::pair<std::string, Tensor>> cases = {
      {"f8_2x3.npy", from_vector({0.5, -1.25, 3.0, 1e-300, -0.0, INFINITY}, {2, 3})},
      {"f4_vec.npy", from_vector({1.5, -2.0, 0.1, 3.4028234663852886e38, 7.0}, DType::f32)},
      {"i8_0d.npy", i8_0d},
      {"i8_2x3x4.npy", arange(-12, 12, 1, DType::i64).reshape({2, 3, 4})},
      {"f8_empty_0x3.npy", zeros({0, 3})},
      {"f8_pad64.npy", zeros({3, 0, 0, 100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})},
  };
  for (const auto& [name, t] : cases) {
    INFO(name);
    const std::string golden = read_file(golden_path(name));
    CHECK(npy_serialize(t) == golden);
    CHECK(npy_serialize(npy_parse(golden, name)) == golden);
  }
}

TEST_CASE("npy header parser accepts what Python's dict syntax allows", "[npy]") {
  const std::string two = f8_bytes({1.5, -2.0});
  const Tensor expected = from_vector({1.5, -2.0});
  const std::vector<std::string> dicts = {
      "{'shape': (2,), 'fortran_order': False, 'descr': '<f8'}",
      "{ \"descr\" : \"<f8\" ,\n\t'fortran_order':False,'shape':( 2 , ) , }",
      "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }",
  };
  for (const std::string& dict : dicts) {
    INFO(dict);
    check_bitwise_equal(parse_exact(make_npy(dict, two)), expected);
  }
  check_bitwise_equal(parse_exact(make_npy(dict_with_shape("(1, 2,)"), two)),
                      expected.reshape({1, 2}));
  check_bitwise_equal(parse_exact(make_npy(dict_with_shape("()"), f8_bytes({4.0}))),
                      scalar_tensor(4.0));
  check_bitwise_equal(parse_exact(make_npy(dict_with_shape("(2,)"), two, 1, 16)), expected);
  check_bitwise_equal(parse_exact(make_npy(dict_with_shape("(2,)"), two, 3)), expected);
}
