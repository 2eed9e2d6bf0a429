// libFuzzer target for the .npy parser: any input must either parse or throw, never crash, read
// out of bounds or overflow. A file that parses must survive a serialise/parse round trip.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "tensor/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  theta::Tensor t;
  try {
    t = theta::npy_parse(bytes, "fuzz input");
  } catch (const std::exception&) {
    return 0;
  }
  const std::string once = theta::npy_serialize(t);
  const std::string twice = theta::npy_serialize(theta::npy_parse(once, "round trip"));
  if (once != twice) __builtin_trap();
  return 0;
}
