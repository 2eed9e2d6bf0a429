// Internal: the few-row product kernel, included by kernels_impl.hpp inside its architecture's
// namespace (Note [Kernel dispatch]), where Vec<T> is that architecture's vector.

// Note [Few-row products]
// out = a b with a of a few rows (at most two register groups: 24 with AVX-512, 12 otherwise)
// and long rows of b: a readout mixing per-channel planes (Conv2d's channel pullback mixes 64
// planes of 2048 numbers into 10 outputs per sample). OpenBLAS packs both operands into its own
// layout first; for so few rows every number of b takes part in only `rows` multiply-adds, and
// the packing costs as much as the product (the digits CNN's pullback ran at ~24 GFlop/s). Here b
// is read where it lies: a block of rows of out, two vectors wide, is held in registers while the
// depth runs, each row of b loaded once per block and each entry of a broadcast. The rows go in
// groups that fit the architecture's registers (kGroupRows: 32 vector registers with AVX-512, 16
// otherwise); a column tail narrower than a vector goes through the same body on zero-padded
// copies, so every column rounds alike: one multiply-add per term (fused where the instruction
// set has FMA: Note [Fused multiply-add]), in order of depth, starting from 0 (or from out's
// value). The same blocks serve larger products by panels (Note [Own products] in
// tensor/simd_gemm.cpp).

template <class T> constexpr int kGroupRows = Vec<T>::size * sizeof(T) >= 64 ? 12 : 6;

// Rows [0, G) of out (row stride out_row) over N vectors of columns (N = 1 or 2).
template <class T, int G, int N>
void few_rows_block(const T* a, std::int64_t a_row, std::int64_t a_col, std::int64_t depth, const T* b,
                    std::int64_t b_row, T* out, std::int64_t out_row, bool accumulate) {
  using V = Vec<T>;
  constexpr std::int64_t W = V::size;
  V acc[G][N];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 2
    for (int v = 0; v < N; ++v) acc[g][v] = accumulate ? V::load_unaligned(out + g * out_row + v * W) : V(T(0));
  for (std::int64_t j = 0; j < depth; ++j, b += b_row, a += a_col) {
    V bj[N];
#pragma GCC unroll 2
    for (int v = 0; v < N; ++v) bj[v] = V::load_unaligned(b + v * W);
#pragma GCC unroll 16
    for (int g = 0; g < G; ++g) {
      const V coefficient(a[g * a_row]);
#pragma GCC unroll 2
      for (int v = 0; v < N; ++v) acc[g][v] = fused_multiply_add(coefficient, bj[v], acc[g][v]);
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 2
    for (int v = 0; v < N; ++v) acc[g][v].store_unaligned(out + g * out_row + v * W);
}

// G rows of out over all n columns; the last run < W columns through zero-padded copies.
template <class T, int G>
void few_rows_group(const T* a, std::int64_t a_row, std::int64_t a_col, std::int64_t depth, const T* b,
                    std::int64_t b_row, T* out, std::int64_t out_row, std::int64_t n, bool accumulate) {
  constexpr std::int64_t W = Vec<T>::size;
  std::int64_t x = 0;
  for (; x + 2 * W <= n; x += 2 * W)
    few_rows_block<T, G, 2>(a, a_row, a_col, depth, b + x, b_row, out + x, out_row, accumulate);
  if (x + W <= n) {
    few_rows_block<T, G, 1>(a, a_row, a_col, depth, b + x, b_row, out + x, out_row, accumulate);
    x += W;
  }
  if (x == n) return;
  const std::int64_t run = n - x, tail_size = depth * W;
  // b's last columns, zero-padded: on the stack unless the depth is large.
  constexpr std::int64_t kStackTail = 2048;
  alignas(64) T stack_tail[kStackTail];
  std::vector<T> heap_tail(static_cast<std::size_t>(tail_size > kStackTail ? tail_size : 0));
  T* tail_b = tail_size > kStackTail ? heap_tail.data() : stack_tail;
  std::fill(tail_b, tail_b + tail_size, T(0));
  for (std::int64_t j = 0; j < depth; ++j) std::copy(b + j * b_row + x, b + j * b_row + n, tail_b + j * W);
  alignas(64) T tail_out[G * W] = {};
  if (accumulate)
    for (int g = 0; g < G; ++g) std::copy(out + g * out_row + x, out + g * out_row + n, tail_out + g * W);
  few_rows_block<T, G, 1>(a, a_row, a_col, depth, tail_b, W, tail_out, W, accumulate);
  for (int g = 0; g < G; ++g) std::copy(tail_out + g * W, tail_out + g * W + run, out + g * out_row + x);
}

template <class T, int... G>
void few_rows_dispatch(std::integer_sequence<int, G...>, int rows, const T* a, std::int64_t a_row,
                       std::int64_t a_col, std::int64_t depth, const T* b, std::int64_t b_row, T* out,
                       std::int64_t out_row, std::int64_t n, bool accumulate) {
  using Group = void (*)(const T*, std::int64_t, std::int64_t, std::int64_t, const T*, std::int64_t, T*,
                         std::int64_t, std::int64_t, bool);
  static constexpr Group groups[] = {&few_rows_group<T, G + 1>...};
  groups[rows - 1](a, a_row, a_col, depth, b, b_row, out, out_row, n, accumulate);
}

template <class T>
void few_rows_product(const T* a, std::int64_t rows, std::int64_t a_row, std::int64_t a_col, std::int64_t depth,
                      const T* b, std::int64_t b_row, T* out, std::int64_t out_row, std::int64_t n, bool accumulate) {
  constexpr int kMax = kGroupRows<T>;
  const std::int64_t groups = (rows + kMax - 1) / kMax;
  for (std::int64_t q = 0, r0 = 0; q < groups; ++q) {
    const std::int64_t r1 = (q + 1) * rows / groups;  // groups of equal size, within one row
    few_rows_dispatch<T>(std::make_integer_sequence<int, kMax>{}, static_cast<int>(r1 - r0), a + r0 * a_row,
                         a_row, a_col, depth, b, b_row, out + r0 * out_row, out_row, n, accumulate);
    r0 = r1;
  }
}
