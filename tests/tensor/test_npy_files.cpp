// Loading .npy files from disk: only regular files are read (Note [Regular files only] in
// tensor/file_io.cpp), and every read is bounded by what the file's header declares.

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <string>

#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/tensor/npy_test_support.hpp"

using namespace theta;
using namespace theta::npy_test;
using theta::test::TempDir;
using Catch::Contains;
namespace fs = std::filesystem;

namespace {
// Asserts that loading `path` throws a FormatError naming the path and containing `needle`.
void check_load_rejects(const std::string& path, const std::string& needle) {
  INFO("loading " << path << ", expecting an error mentioning: " << needle);
  try {
    load_npy(path);
    FAIL("the file was accepted");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Contains(needle) && Contains(path));
  }
}
}  // namespace

TEST_CASE("load_npy and read_file refuse what is not a regular file", "[npy][files]") {
  SECTION("a character device that never ends") {
    if (!fs::exists("/dev/zero")) {
      WARN("no /dev/zero on this system; skipped");
      return;
    }
    check_load_rejects("/dev/zero", "load_npy: '/dev/zero' is a character device, not a regular file");
    CHECK_THROWS_WITH(read_file("/dev/zero"), Contains("read_file: '/dev/zero' is a character device"));
  }
  SECTION("a FIFO nobody writes to (opening it for reading would block)") {
    TempDir dir;
    const std::string fifo = dir.file("pipe.npy");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    check_load_rejects(fifo, "is a FIFO, not a regular file");
    CHECK_THROWS_AS(read_file(fifo), FormatError);
  }
  SECTION("a directory") {
    TempDir dir;
    check_load_rejects(dir.file(""), "is a directory, not a regular file");
    CHECK_THROWS_WITH(read_file(dir.file("")), Contains("is a directory"));
  }
  SECTION("a missing file") {
    check_load_rejects("/nonexistent/theta/missing.npy", "No such file or directory");
  }
}

TEST_CASE("load_npy reads files of every kind the parser accepts", "[npy][files]") {
  TempDir dir;
  const Tensor t = arange(0, 24, 1, DType::f32).reshape({2, 3, 4});
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"v1.npy", npy_serialize(t)},
           {"v2.npy", make_npy(dict_with_shape("(2, 3, 4)", "<f4"), element_bytes(t), 2)},
           {"empty.npy", npy_serialize(zeros({0, 3}))},
           {"zero_d.npy", npy_serialize(scalar_tensor(-2.5))},
           {"many_axes.npy", npy_serialize(zeros(Shape(25000, 1)))}}) {
    INFO(name);
    check_bitwise_equal(load_npy(dir.write(name, bytes)), npy_parse(bytes, name));
  }
}

TEST_CASE("load_npy rejects malformed files like the in-memory parser", "[npy][files]") {
  TempDir dir;
  const std::string valid = npy_serialize(arange(0, 6).reshape({2, 3}));
  check_load_rejects(dir.write("long.npy", valid + "xy"), "trailing data after the elements of shape (2, 3): 2 bytes");
  check_load_rejects(dir.write("short.npy", valid.substr(0, valid.size() - 3)), "truncated data");
  check_load_rejects(dir.write("huge.npy", make_npy(dict_with_shape("(1000000000000,)"), f8_bytes({1, 2}))),
                     "needs 8000000000000 bytes, the file has 16");
  // Every prefix of a valid file, including those that end inside the 12-byte prefix read first.
  for (const std::string& file : {valid, make_npy(dict_with_shape("(2,)"), f8_bytes({1, 2}), 2)}) {
    for (std::size_t n = 0; n < file.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      CHECK_THROWS_AS(load_npy(dir.write("prefix.npy", file.substr(0, n))), FormatError);
    }
  }
}

TEST_CASE("an absurdly long .npy header is refused before it is read", "[npy][files]") {
  // A version 2.0 file declaring a header of 2^20 + 1 bytes, and holding that many.
  const std::size_t declared = (std::size_t{1} << 20) + 1;
  std::string bytes("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) bytes += static_cast<char>((declared >> (8 * i)) & 0xFF);
  bytes += std::string(declared - 1, ' ') + '\n';
  check_rejects(bytes, "header length 1048577 exceeds the 1048576 bytes a .npy header may have");
  TempDir dir;
  check_load_rejects(dir.write("long_header.npy", bytes), "header length 1048577 exceeds");
  // The writer never produces such a header (a tensor with 400000 axes of size 1).
  CHECK_THROWS_WITH(npy_serialize(zeros(Shape(400000, 1))), Contains("a .npy header may have"));
}
