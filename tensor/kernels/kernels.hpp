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
  /// A small constant matrix applied to runs of n values (the transforms of Note [Winograd
  /// convolution] in tensor/conv_winograd.cpp): out[i][k] = sum_j matrix[i cols + j] in[j][k] for
  /// i < rows, j < cols (both at most 8), k < n, or out[i][k] += that with accumulate. Zero entries
  /// are skipped; the others are fused multiply-adds in order of j. This repeats `count` times, the
  /// input runs moved by in_step and the output runs by out_step each time; one repetition finishes
  /// before the next starts (their outputs may overlap), while within one the output runs must not
  /// overlap the input runs or each other.
  void (*combine_runs)(const T* matrix, int rows, int cols, const T* const* in, T* const* out, std::int64_t n,
                       bool accumulate, std::int64_t count, std::int64_t in_step, std::int64_t out_step);
  /// out[i out_row + x] = sum_j a[i a_row + j a_col] b[j b_row + x], or out[...] += that with
  /// accumulate, for i < rows, j < depth, x < n: a product whose left factor has few rows, read in
  /// place (Note [Few-row products] in tensor/kernels/few_rows_impl.hpp). Every entry is one
  /// multiply-add per term (fused where the instruction set has FMA) in order of j, from 0 or from
  /// out's value. out must not overlap a or b.
  void (*few_rows_product)(const T* a, std::int64_t rows, std::int64_t a_row, std::int64_t a_col, std::int64_t depth,
                           const T* b, std::int64_t b_row, T* out, std::int64_t out_row, std::int64_t n,
                           bool accumulate);
  /// The most rows few_rows_product takes in at most two passes over b (two register groups).
  std::int64_t few_rows_max;
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
