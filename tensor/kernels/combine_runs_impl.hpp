// Internal: the kernel that applies a small constant matrix to runs of values (the transforms of
// Note [Winograd convolution] in tensor/conv_winograd.cpp), included by kernels_impl.hpp inside
// its architecture's namespace (Note [Kernel dispatch]), where Vec<T> is that architecture's
// vector.

// combine_runs with rows R and columns C known at compile time (0: read from the arguments). The
// vector body handles whole vectors; a tail shorter than a vector goes through the same body on
// zero-padded copies, so it rounds exactly as the body does.
template <class T, int R, int C>
void combine_runs_fixed(const T* matrix, int rows_in, int cols_in, const T* const* in, T* const* out, std::int64_t n,
                        bool accumulate, std::int64_t count, std::int64_t in_step, std::int64_t out_step) {
  using V = Vec<T>;
  constexpr std::int64_t W = V::size;
  constexpr int kMaxRuns = 8;
  const int rows = R > 0 ? R : rows_in, cols = C > 0 ? C : cols_in;
  const auto body = [&](const T* const* ins, T* const* outs, std::int64_t k) {
    V x[kMaxRuns];
    for (int j = 0; j < cols; ++j) x[j] = V::load_unaligned(ins[j] + k);
    for (int i = 0; i < rows; ++i) {
      V acc = accumulate ? V::load_unaligned(outs[i] + k) : V(T(0));
      const T* coefficients = matrix + i * cols;
      for (int j = 0; j < cols; ++j)
        if (coefficients[j] != T(0)) acc = fused_multiply_add(V(coefficients[j]), x[j], acc);
      acc.store_unaligned(outs[i] + k);
    }
  };
  const T* ins[kMaxRuns];
  T* outs[kMaxRuns];
  for (int j = 0; j < cols; ++j) ins[j] = in[j];
  for (int i = 0; i < rows; ++i) outs[i] = out[i];
  const std::int64_t whole = n - n % W, tail = n - whole;
  for (std::int64_t r = 0; r < count; ++r) {
    for (std::int64_t k = 0; k < whole; k += W) body(ins, outs, k);
    if (tail > 0) {
      alignas(64) T tail_in[kMaxRuns][W] = {}, tail_out[kMaxRuns][W] = {};
      const T* tin[kMaxRuns];
      T* tout[kMaxRuns];
      for (int j = 0; j < cols; ++j) {
        std::copy(ins[j] + whole, ins[j] + n, tail_in[j]);
        tin[j] = tail_in[j];
      }
      for (int i = 0; i < rows; ++i) {
        if (accumulate) std::copy(outs[i] + whole, outs[i] + n, tail_out[i]);
        tout[i] = tail_out[i];
      }
      body(tin, tout, 0);
      for (int i = 0; i < rows; ++i) std::copy(tail_out[i], tail_out[i] + tail, outs[i] + whole);
    }
    for (int j = 0; j < cols; ++j) ins[j] += in_step;
    for (int i = 0; i < rows; ++i) outs[i] += out_step;
  }
}

// The shapes Winograd's F(2x2, 3x3) and F(4x4, 3x3) use get code of their own.
template <class T>
void combine_runs(const T* matrix, int rows, int cols, const T* const* in, T* const* out, std::int64_t n,
                  bool accumulate, std::int64_t count, std::int64_t in_step, std::int64_t out_step) {
  auto* run = &combine_runs_fixed<T, 0, 0>;
  if (rows == 4 && cols == 4) run = &combine_runs_fixed<T, 4, 4>;
  if (rows == 2 && cols == 4) run = &combine_runs_fixed<T, 2, 4>;
  if (rows == 4 && cols == 2) run = &combine_runs_fixed<T, 4, 2>;
  if (rows == 6 && cols == 6) run = &combine_runs_fixed<T, 6, 6>;
  if (rows == 4 && cols == 6) run = &combine_runs_fixed<T, 4, 6>;
  if (rows == 6 && cols == 4) run = &combine_runs_fixed<T, 6, 4>;
  run(matrix, rows, cols, in, out, n, accumulate, count, in_step, out_step);
}
