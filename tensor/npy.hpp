#pragma once
// NumPy .npy files: read versions 1.0-3.0, write 1.0 (2.0 when the header needs it).
// Supported element types: float32, float64, int64, little-endian; C or Fortran order on read.
// Malformed input throws FormatError naming the file and the problem; the parser never reads
// past the end of its input.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/file_io.hpp"
#include "tensor/tensor.hpp"

namespace theta {

/// Parses a whole .npy file held in memory. `what` names the source in error messages.
Tensor npy_parse(std::string_view bytes, const std::string& what = "<memory>");

/// The header of a C-order .npy file holding `shape` elements of `dtype` (magic, version, the
/// header dict, padding to 64 bytes); the elements follow it. For writers that fill the data in
/// place (pwrite at computed offsets).
std::string npy_header(const Shape& shape, DType dtype);

/// What a .npy file's header declares.
struct NpyInfo {
  Shape shape;
  DType dtype = DType::f64;
  bool fortran_order = false;
  std::uint64_t data_offset = 0;  // byte offset of the first element
};

/// Reads and checks a .npy file's header without reading its data (the file size must match the
/// declared shape exactly); throws FormatError as load_npy does.
NpyInfo read_npy_info(const std::string& path);

/// Serialises `t` as a .npy file (C order).
std::string npy_serialize(const Tensor& t);

/// Reads a .npy file: a regular file only, each read bounded by what its header declares.
Tensor load_npy(const std::string& path);

/// Writes a .npy file atomically (temporary file in the same directory, fsync, rename).
void save_npy(const std::string& path, const Tensor& t);

}  // namespace theta
