#pragma once
// Helpers shared by the .npy tests: golden files, bitwise comparison, hand-built files and a
// parser entry point that lets AddressSanitizer see any read past the end.

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/tensor_bytes.hpp"

namespace theta::npy_test {

inline std::string golden_path(const std::string& name) {
  return std::string(THETA_TEST_DATA_DIR) + "/npy/" + name;
}

using theta::test::element_bytes;

// Same dtype, same shape and bitwise equal elements (so NaN payloads and -0.0 count).
inline void check_bitwise_equal(const Tensor& a, const Tensor& b) {
  CHECK(a.dtype() == b.dtype());
  CHECK(a.shape() == b.shape());
  CHECK(element_bytes(a) == element_bytes(b));
}

// Parses a copy of `bytes` held in a heap block of exactly bytes.size() bytes, so that under
// AddressSanitizer a read past the end is reported (a std::string keeps a terminator and spare
// capacity after its last byte, which would hide a one-byte overread).
inline Tensor parse_exact(const std::string& bytes, const std::string& what = "data.npy") {
  const auto block = std::make_unique<char[]>(bytes.size());
  if (!bytes.empty()) std::memcpy(block.get(), bytes.data(), bytes.size());
  return npy_parse(std::string_view(block.get(), bytes.size()), what);
}

// Asserts that parsing `bytes` throws a FormatError whose message contains `needle`.
inline void check_rejects(const std::string& bytes, const std::string& needle) {
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
inline std::string make_npy(const std::string& dict, const std::string& data, int major = 1,
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

inline std::string f8_bytes(const std::vector<double>& values) {
  std::string out(values.size() * sizeof(double), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

inline std::string dict_with_shape(const std::string& shape, const std::string& descr = "<f8") {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

inline double bits_to_double(std::uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

}  // namespace theta::npy_test
