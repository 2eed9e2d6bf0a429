#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>

#include "tensor/npy.hpp"
#include "tensor/ops.hpp"

using namespace theta;
namespace fs = std::filesystem;

namespace {

std::string golden_path(const std::string& name) {
  return std::string(THETA_TEST_DATA_DIR) + "/npy/" + name;
}

// The elements of `t` in row-major order, as raw bytes.
std::string element_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  const std::size_t n = static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype());
  return n == 0 ? std::string() : std::string(static_cast<const char*>(c.raw_data()), n);
}

// Same dtype, same shape and bitwise equal elements (so NaN payloads and -0.0 count).
void check_bitwise_equal(const Tensor& a, const Tensor& b) {
  CHECK(a.dtype() == b.dtype());
  CHECK(a.shape() == b.shape());
  CHECK(element_bytes(a) == element_bytes(b));
}

// Parses a copy of `bytes` held in a heap block of exactly bytes.size() bytes, so that under
// AddressSanitizer a read past the end is reported (a std::string keeps a terminator and spare
// capacity after its last byte, which would hide a one-byte overread).
Tensor parse_exact(const std::string& bytes, const std::string& what = "data.npy") {
  const auto block = std::make_unique<char[]>(bytes.size());
  if (!bytes.empty()) std::memcpy(block.get(), bytes.data(), bytes.size());
  return npy_parse(std::string_view(block.get(), bytes.size()), what);
}

// Asserts that parsing `bytes` throws a FormatError whose message contains `needle`.
void check_rejects(const std::string& bytes, const std::string& needle) {
  INFO("expected a FormatError mentioning: " << needle);
  try {
    parse_exact(bytes);
    FAIL("the input was accepted");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(needle));
    CHECK_THAT(std::string(e.what()), Catch::StartsWith("npy: data.npy: "));
  }
}

// A .npy file with header dict `dict` (padded to `align` bytes) followed by `data`.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1,
                     std::size_t align = 64) {
  const std::size_t width = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + width + header.size() + 1) % align != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t i = 0; i < width; ++i)
    out += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

std::string f8_bytes(const std::vector<double>& values) {
  std::string out(values.size() * sizeof(double), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string dict_with_shape(const std::string& shape, const std::string& descr = "<f8") {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

double bits_to_double(std::uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// A fresh directory under the system temporary directory, removed with its contents on exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "theta_npy_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

}  // namespace

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

TEST_CASE("npy rejects malformed files with a FormatError naming the problem", "[npy]") {
  const std::string valid = npy_serialize(arange(0, 6).reshape({2, 3}));
  const std::string two = f8_bytes({1.0, 2.0});
  auto with_byte = [&](std::size_t pos, char value) {
    std::string s = valid;
    s[pos] = value;
    return s;
  };

  SECTION("too short") {
    check_rejects("", "too short");
    check_rejects(valid.substr(0, 5), "too short");
    check_rejects(valid.substr(0, 9), "truncated header length");
    check_rejects(make_npy(dict_with_shape("(2,)"), two, 2).substr(0, 11),
                  "truncated header length");
  }
  SECTION("bad magic") {
    check_rejects(with_byte(0, 'X'), "bad magic");
    check_rejects(std::string("NUMPY\x01\x00") + valid.substr(7), "bad magic");
  }
  SECTION("unknown version") {
    check_rejects(with_byte(6, 4), "unsupported format version 4.0");
    check_rejects(with_byte(6, 0), "unsupported format version 0.0");
    check_rejects(with_byte(7, 1), "unsupported format version 1.1");
  }
  SECTION("header length beyond the file") {
    std::string s = valid;
    s[8] = '\xFF';
    s[9] = '\xFF';
    check_rejects(s, "runs past the end of the file");
    std::string v2 = make_npy(dict_with_shape("(2,)"), two, 2);
    for (int i = 8; i < 12; ++i) v2[static_cast<std::size_t>(i)] = '\xFF';
    check_rejects(v2, "runs past the end of the file");
  }
  SECTION("header not ending in a newline") {
    check_rejects(with_byte(valid.find('\n'), ' '), "does not end in a newline");
    std::string zero_length = valid.substr(0, 10);
    zero_length[8] = zero_length[9] = '\0';
    check_rejects(zero_length, "does not end in a newline");
  }
  SECTION("header not a dict") {
    check_rejects(make_npy("[1, 2]", two), "header is not a dict");
    check_rejects(make_npy("", two), "header is not a dict");
    check_rejects(make_npy(dict_with_shape("(2,)") + " x", two), "unexpected characters after");
    check_rejects(make_npy("{'descr' '<f8'}", two), "expected ':'");
    check_rejects(make_npy("{'descr': '<f8' 'shape': (2,)}", two), "expected ',' or '}'");
    check_rejects(make_npy("{'descr", two), "unterminated string");
    check_rejects(make_npy("{descr: '<f8'}", two), "expected a quoted string");
    check_rejects(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ", two),
                  "expected a quoted string");
    check_rejects(make_npy(std::string("{'descr': '<f8',\0 }", 19), two),
                  "expected a quoted string");
    check_rejects(make_npy("{'de\\x73cr': '<f8'}", two), "escape sequences");
    check_rejects(make_npy("{'descr': '<f8\n'}", two), "unterminated string");
  }
  SECTION("missing, unknown and duplicate keys") {
    check_rejects(make_npy("{'descr': '<f8', 'fortran_order': False}", two), "no 'shape' key");
    check_rejects(make_npy("{'shape': (2,), 'fortran_order': False}", two), "no 'descr' key");
    check_rejects(make_npy("{'descr': '<f8', 'shape': (2,)}", two), "no 'fortran_order' key");
    check_rejects(make_npy(dict_with_shape("(2,), 'extra': 1"), two), "unexpected key 'extra'");
    check_rejects(make_npy(dict_with_shape("(2,), 'shape': (2,)"), two), "duplicate key 'shape'");
  }
  SECTION("bad values") {
    check_rejects(make_npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (2,)}", two),
                  "must be True or False");
    check_rejects(make_npy("{'descr': '<f8', 'fortran_order': 'False', 'shape': (2,)}", two),
                  "must be True or False");
    check_rejects(make_npy(dict_with_shape("[2]"), two), "'shape' is not a tuple");
    check_rejects(make_npy(dict_with_shape("2"), two), "'shape' is not a tuple");
    check_rejects(make_npy(dict_with_shape("(2)"), two), "1-tuple needs a trailing comma");
    check_rejects(make_npy(dict_with_shape("(2 2)"), two), "expected ',' or ')'");
    check_rejects(make_npy(dict_with_shape("(2,"), two), "non-negative integers");
  }
  SECTION("negative or non-integer sizes") {
    check_rejects(make_npy(dict_with_shape("(-2,)"), two), "negative size");
    check_rejects(make_npy(dict_with_shape("(1, -2)"), two), "negative size");
    check_rejects(make_npy(dict_with_shape("(2.0,)"), two), "non-negative integers");
    check_rejects(make_npy(dict_with_shape("(2e0,)"), two), "non-negative integers");
    check_rejects(make_npy(dict_with_shape("('2',)"), two), "non-negative integers");
    check_rejects(make_npy(dict_with_shape("(None,)"), two), "non-negative integers");
    check_rejects(make_npy(dict_with_shape("(02,)"), two), "leading zero");
  }
  SECTION("sizes whose element or byte count overflows int64") {
    check_rejects(make_npy(dict_with_shape("(99999999999999999999,)"), two), "does not fit int64");
    check_rejects(make_npy(dict_with_shape("(9223372036854775808,)"), two), "does not fit int64");
    check_rejects(make_npy(dict_with_shape("(4294967296, 4294967296)"), two),
                  "element count of shape (4294967296, 4294967296) overflows int64");
    check_rejects(make_npy(dict_with_shape("(0, 4294967296, 4294967296)"), ""),
                  "too large for int64 strides");
    check_rejects(make_npy(dict_with_shape("(2305843009213693952,)"), two),
                  "byte count of shape (2305843009213693952,) with dtype '<f8' overflows int64");
    check_rejects(make_npy(dict_with_shape("(9223372036854775807,)"), two), "byte count");
  }
  SECTION("data shorter than the shape needs") {
    check_rejects(valid.substr(0, valid.size() - 1), "truncated data");
    check_rejects(make_npy(dict_with_shape("(1000000000000,)"), two), "truncated data");
    check_rejects(make_npy(dict_with_shape("(2,)"), two.substr(0, 15)),
                  "needs 16 bytes, the file has 15");
  }
  SECTION("trailing bytes after the data") {
    check_rejects(valid + 'x', "trailing data after the elements of shape (2, 3): 1 bytes");
    check_rejects(make_npy(dict_with_shape("()"), two),
                  "trailing data after the elements of shape ()");
  }
  SECTION("unsupported dtypes") {
    for (const char* descr : {">f8", "|O", "<f2", "<i4", "=f8", "|b1", "<c16", "<u8", "float64"}) {
      check_rejects(make_npy(dict_with_shape("(2,)", descr), two),
                    std::string("unsupported dtype '") + descr + "' (theta reads <f4, <f8, <i8)");
    }
    check_rejects(make_npy("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,)}", two),
                  "structured dtypes are not supported");
  }
  SECTION("every truncation of a valid file") {
    for (const std::string& file : {valid, make_npy(dict_with_shape("(2,)"), two, 2)}) {
      for (std::size_t n = 0; n < file.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK_THROWS_AS(parse_exact(file.substr(0, n)), FormatError);
      }
    }
  }
}

TEST_CASE("npy error messages name the file", "[npy]") {
  std::string big_endian = npy_serialize(zeros({2}));
  big_endian[big_endian.find("<f8")] = '>';
  CHECK_THROWS_WITH(npy_parse(big_endian, "weights.npy"),
                    "npy: weights.npy: unsupported dtype '>f8' (theta reads <f4, <f8, <i8)");
  CHECK_THROWS_AS(load_npy("/nonexistent/theta/missing.npy"), FormatError);
  CHECK_THROWS_WITH(read_file("/nonexistent/theta/missing.npy"),
                    Catch::Contains("/nonexistent/theta/missing.npy") &&
                        Catch::Contains("No such file or directory"));
}

TEST_CASE("npy saves atomically", "[npy]") {
  TempDir dir;
  const std::string target = (dir.path / "weights.npy").string();

  SECTION("saving over an existing file replaces it and leaves no temporary") {
    write_file_atomic(target, "old contents that are longer than the new file will be ...");
    const Tensor t = arange(0, 5);
    save_npy(target, t);
    check_bitwise_equal(load_npy(target), t);
    CHECK(read_file(target) == npy_serialize(t));
    save_npy(target, zeros({2, 2}, DType::f32));
    check_bitwise_equal(load_npy(target), zeros({2, 2}, DType::f32));
    CHECK(dir.entries() == std::vector<std::string>{"weights.npy"});
  }
  SECTION("the file gets the permissions the umask allows, as a plain write would") {
    const mode_t mask = ::umask(022);
    save_npy(target, zeros({1}));
    ::umask(mask);
    struct stat info {};
    REQUIRE(::stat(target.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0644);
  }
  SECTION("a missing directory throws and leaves nothing behind") {
    const std::string missing = (dir.path / "no_such_dir" / "weights.npy").string();
    CHECK_THROWS_AS(save_npy(missing, zeros({3})), std::system_error);
    CHECK_THROWS_WITH(save_npy(missing, zeros({3})), Catch::Contains("no_such_dir") &&
                                                         Catch::Contains("No such file"));
    CHECK(dir.entries().empty());
  }
  SECTION("a target that is a directory throws and removes the temporary") {
    fs::create_directory(target);
    CHECK_THROWS_AS(save_npy(target, zeros({3})), std::system_error);
    CHECK(dir.entries() == std::vector<std::string>{"weights.npy"});
    CHECK(fs::is_directory(target));
  }
  SECTION("empty and large byte strings") {
    write_file_atomic(target, "");
    CHECK(read_file(target).empty());
    std::string large(3 << 20, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 7919 % 251);
    write_file_atomic(target, large);
    CHECK(read_file(target) == large);
    CHECK(dir.entries() == std::vector<std::string>{"weights.npy"});
  }
}
