#pragma once
// Internal to theta_theory: the vector loops of the analytic convolutional kernels (cntk.cpp),
// compiled once per instruction set like the tensor kernels (Note [Kernel dispatch] in
// tensor/kernels/kernels.hpp) and chosen at run time with them.

#include <cstdint>

namespace theta::theory::detail {

// Note [CNTK vector loops]
// Every loop below runs over n elements with n a multiple of `width` and reads and writes whole
// vectors only: there is no scalar tail. The callers pad their arrays so that the vectors past
// the last useful element stay inside the allocation and see zeros (Note [Padded pixel grid] in
// cntk.cpp). So every element of every array goes through the same vector code, and two entries
// with equal inputs get bit-identical results wherever they sit; the kernel of an image with
// itself relies on this to see cosines of exactly 1 (Note [Exact self-covariances] in cntk.cpp).
// The translation units are compiled with -ffp-contract=off, so no multiply-add is fused in one
// loop and not in another.
struct CntkKernelTable {
  const char* arch_name;
  /// Elements per vector: every n below is a multiple of it.
  std::int64_t width;
  /// out[i] = coef * sum_t in[i + offsets[t]] + (add ? add[i] : bias), the taps summed in order
  /// t = 0, 1, ..., taps - 1 starting from 0.
  void (*tap_sum)(const double* in, const std::int64_t* offsets, std::int64_t taps, double coef, const double* add,
                  double bias, double* out, std::int64_t n);
  /// out[j] = sum_c a[c * a_stride] * b[c * b_stride + j] over c < channels, in order of c;
  /// with a_stride = b_stride and `a` advancing with j (diagonal = true) the products pair a[c, j]
  /// with b[c, j] instead: out[j] = sum_c a[c * b_stride + j] * b[c * b_stride + j].
  void (*gram)(const double* a, std::int64_t a_stride, const double* b, std::int64_t b_stride, std::int64_t channels,
               bool diagonal, double* out, std::int64_t n);
  /// The ReLU expectations of Note [CNTK recursion] in cntk.cpp, for covariances s[i] with
  /// self-covariances sx[i * sx_step] (sx_step 0 or 1) and sy[i]:
  ///   k[i] = E[relu(u) relu(v)],  theta_kdot[i] = theta[i] * E[relu'(u) relu'(v)],
  /// both 0 where sx sy = 0.
  void (*relu_step)(const double* s, const double* theta, const double* sx, std::int64_t sx_step, const double* sy,
                    double* k, double* theta_kdot, std::int64_t n);
  /// The same expectations summed instead of stored: sums[0] += sum_i k[i],
  /// sums[1] += sum_i theta_kdot[i].
  void (*relu_sums)(const double* s, const double* theta, const double* sx, std::int64_t sx_step, const double* sy,
                    double* sums, std::int64_t n);
};

/// The table for the instruction set the tensor kernels use (so THETA_SIMD lowers both).
const CntkKernelTable& cntk_kernels();

}  // namespace theta::theory::detail
