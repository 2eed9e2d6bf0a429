#pragma once
// Internal: the SIMD kernel table, one per instruction set, chosen once at run time
// (Note [Kernel dispatch]). Ops call these on contiguous runs; see tensor/strided_loop.hpp.

#include <cstdint>

namespace theta::detail {

// Note [Kernel dispatch]
// Each kernel family (unary, binary, where, reduce) is written once, as a template over the
// element type and the xsimd architecture, in kernels_impl.hpp. That header is compiled three
// times, in kernels_avx512.cpp, kernels_avx2.cpp and kernels_sse2.cpp, each with its own compiler
// flags and inside its own namespace, so no inline function compiled for a newer instruction set
// can be picked by the linker for code that runs on an older CPU. kernels() picks the best table
// the CPU supports (THETA_SIMD=sse2|avx2|avx512 lowers the choice, for tests and comparisons).
// The scalar tail of every loop runs through the same vector functor on a padded buffer, so the
// tail gives bit-identical results to the body.

enum class UnaryOp {
  neg, abs, exp, log, log1p, expm1, sqrt, rsqrt, tanh, sigmoid, relu, sin, cos, square, sign,
  erf, reciprocal, pow_scalar, clamp
};

/// relu_grad: a where b > 0, else 0 (the derivative of relu at b applied to a).
enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, relu_grad };

enum class ReduceOp { sum, max, min };

/// Extra arguments of parameterised unary ops: pow_scalar uses a; clamp uses [a, b].
/// The elementwise steps of Winograd's F(2x2, 3x3) (Note [Winograd convolution] in
/// tensor/conv_winograd.cpp), each mapping runs i0.. to runs o0..:
enum class WinogradStep {
  input,           ///< (o0, o1, o2, o3) = (i0 - i2, i1 + i2, i2 - i1, i1 - i3): B^T
  input_adjoint,   ///< (o0, o1, o2, o3) += (i0, i1 - i2 + i3, i1 + i2 - i0, -i3): B, accumulated
  output,          ///< (o0, o1) = (i0 + i1 + i2, i1 - i2 - i3): A^T
  output_adjoint,  ///< (o0, o1, o2, o3) = (i0, i0 + i1, i0 - i1, -i1): A
};

struct UnaryParams {
  double a = 0.0;
  double b = 0.0;
};

template <class T> struct TypedKernels {
  /// y[i] = op(x[i]) for i < n. x and y may alias.
  void (*unary)(UnaryOp op, const T* x, T* y, std::int64_t n, UnaryParams params);
  /// y[i] = op(a[i * sa], b[i * sb]) with sa, sb in {0, 1}. Comparisons give 1 or 0.
  void (*binary)(BinaryOp op, const T* a, std::int64_t sa, const T* b, std::int64_t sb, T* y,
                 std::int64_t n);
  /// y[i] = m[i * sm] != 0 ? a[i * sa] : b[i * sb], strides in {0, 1}.
  void (*where)(const T* m, std::int64_t sm, const T* a, std::int64_t sa, const T* b,
                std::int64_t sb, T* y, std::int64_t n);
  /// Reduces x[0..n) with op; max and min propagate NaN; the empty sum is 0.
  T (*reduce)(ReduceOp op, const T* x, std::int64_t n);
  /// `count` filters of kh x kw taps w[f][i kw + j] (dilation dh, dw), each correlated with one
  /// pre-padded plane `in` (row stride in_row) at stride 1:
  /// out[f][y][x] = sum_{i, j} w[f][i kw + j] in[(y + i dh) in_row + x + j dw], y < h, x < width.
  void (*correlate)(const T* in, std::int64_t in_row, const T* w, std::int64_t count, std::int64_t kh,
                    std::int64_t kw, std::int64_t dh, std::int64_t dw, T* out, std::int64_t h, std::int64_t width);
  /// One WinogradStep over runs of n: in[k] is run ik (4 runs, 2 for output_adjoint), out[k] is
  /// run ok (4 runs, 2 for output). Output runs must not overlap input runs or each other.
  void (*winograd)(WinogradStep step, const T* const* in, T* const* out, std::int64_t n);
};

struct KernelTable {
  const char* arch_name;
  TypedKernels<float> f32;
  TypedKernels<double> f64;
};

/// The table for the best instruction set of this CPU (or THETA_SIMD's choice).
const KernelTable& kernels();

/// Tables compiled into this binary that this CPU can run, best first (for tests).
int available_kernel_tables(const KernelTable** out, int capacity);

/// Makes kernels() return `table` (for tests that compare architectures); nullptr restores.
void override_kernels(const KernelTable* table);

template <class T> const TypedKernels<T>& typed_kernels(const KernelTable& table);
template <> inline const TypedKernels<float>& typed_kernels<float>(const KernelTable& t) { return t.f32; }
template <> inline const TypedKernels<double>& typed_kernels<double>(const KernelTable& t) { return t.f64; }

}  // namespace theta::detail
