// .npy files that must be rejected with a clear FormatError, and atomic saving.

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/tensor/npy_test_support.hpp"

using namespace theta;
using namespace theta::npy_test;
using theta::test::TempDir;
namespace fs = std::filesystem;

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
  const std::string target = dir.file("weights.npy");

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
    const std::string missing = dir.file("no_such_dir/weights.npy");
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
