#include <cmath>
#include <cstring>

#include "tensor/tensor.hpp"

namespace theta {

namespace {
Tensor filled(const Shape& shape, double value, DType dtype, const char* op) {
  shape_numel(shape, op);
  Tensor out = Tensor::empty(shape, dtype);
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    const T x = static_cast<T>(value);
    for (std::int64_t i = 0, n = out.numel(); i < n; ++i) p[i] = x;
  });
  return out;
}
}  // namespace

Tensor zeros(const Shape& shape, DType dtype) {
  shape_numel(shape, "zeros");
  Tensor out = Tensor::empty(shape, dtype);
  std::memset(out.raw_data(), 0, static_cast<std::size_t>(out.numel()) * dtype_size(dtype));
  return out;
}

Tensor ones(const Shape& shape, DType dtype) { return filled(shape, 1.0, dtype, "ones"); }

Tensor full(const Shape& shape, double value, DType dtype) { return filled(shape, value, dtype, "full"); }

Tensor scalar_tensor(double value, DType dtype) { return filled({}, value, dtype, "scalar_tensor"); }

Tensor arange(double start, double stop, double step, DType dtype) {
  THETA_CHECK(step != 0 && std::isfinite(step) && std::isfinite(start) && std::isfinite(stop),
              std::invalid_argument, "arange: need finite start/stop and a non-zero step, got (",
              start, ", ", stop, ", ", step, ")");
  const double count = std::ceil((stop - start) / step);
  THETA_CHECK(count < 0x1p63, ShapeError, "arange: (", start, ", ", stop, ", ", step, ") gives ", count,
              " elements, more than int64 can count");
  const auto n = static_cast<std::int64_t>(count > 0 ? count : 0);
  Tensor out = Tensor::empty({n}, dtype);
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return out;
}

Tensor linspace(double start, double stop, std::int64_t count, DType dtype) {
  THETA_CHECK(count >= 0, std::invalid_argument, "linspace: negative count ", count);
  Tensor out = Tensor::empty({count}, dtype);
  const double step = count > 1 ? (stop - start) / static_cast<double>(count - 1) : 0.0;
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0; i < count; ++i)
      p[i] = static_cast<T>(i == count - 1 && count > 1 ? stop : start + static_cast<double>(i) * step);
  });
  return out;
}

Tensor eye(std::int64_t n, DType dtype) {
  THETA_CHECK(n >= 0, std::invalid_argument, "eye: negative size ", n);
  shape_numel({n, n}, "eye");
  Tensor out = zeros({n, n}, dtype);
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    for (std::int64_t i = 0; i < n; ++i) p[i * n + i] = T(1);
  });
  return out;
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  THETA_CHECK(shape_numel(shape, "from_vector") == static_cast<std::int64_t>(values.size()), ShapeError,
              "from_vector: ", values.size(), " values do not fill shape ", shape_str(shape));
  Tensor out = Tensor::empty(shape, dtype);
  visit_dtype(dtype, [&](auto v) {
    using T = decltype(v);
    T* p = static_cast<T*>(out.raw_data());
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return out;
}

Tensor from_vector(const std::vector<double>& values, DType dtype) {
  return from_vector(values, {static_cast<std::int64_t>(values.size())}, dtype);
}

Tensor from_indices(const std::vector<std::int64_t>& values) {
  Tensor out = Tensor::empty({static_cast<std::int64_t>(values.size())}, DType::i64);
  if (!values.empty())
    std::memcpy(out.raw_data(), values.data(), values.size() * sizeof(std::int64_t));
  return out;
}

Tensor tensor(std::initializer_list<double> values, const Shape& shape, DType dtype) {
  const std::vector<double> v(values);
  return shape.empty() ? from_vector(v, dtype) : from_vector(v, shape, dtype);
}

std::vector<double> to_vector(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<double> out(static_cast<std::size_t>(c.numel()));
  visit_dtype(c.dtype(), [&](auto v) {
    using T = decltype(v);
    const T* p = static_cast<const T*>(c.raw_data());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

}  // namespace theta
