#pragma once
// Element types a Tensor can hold.

#include <cstddef>
#include <cstdint>
#include <string>

namespace theta {

/// The element type of a tensor. float64 is the default everywhere a choice exists.
enum class DType : std::uint8_t { f32, f64, i64 };

/// Bytes per element of `dtype`.
std::size_t dtype_size(DType dtype);

/// "float32", "float64" or "int64".
const char* dtype_name(DType dtype);

/// True for float32 and float64.
inline bool is_floating(DType dtype) { return dtype != DType::i64; }

/// The DType of a C++ element type (float, double, int64_t).
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }

/// Calls fn(T{}) with T the C++ type of `dtype`.
template <class Fn> decltype(auto) visit_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::i64: return fn(std::int64_t{});
  }
  return fn(double{});
}

/// Like visit_dtype, for the two floating dtypes only (the caller checks is_floating first).
template <class Fn> decltype(auto) visit_float_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::f32) return fn(float{});
  return fn(double{});
}

}  // namespace theta
