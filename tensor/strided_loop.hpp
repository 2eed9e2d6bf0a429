#pragma once
// The one strided iterator: walks N operands that share a logical shape and calls a kernel on
// each innermost run (Note [Strided runs]).

#include <array>
#include <cstdint>

#include "tensor/shape.hpp"

namespace theta::detail {

// Note [Strided runs]
// Adjacent axes that are laid out back to back in every operand are merged first, so a
// contiguous (or identically strided) set of operands becomes a single run and a transposed or
// sliced one becomes as few runs as possible. The callback then sees one innermost run at a time:
// a start offset (in elements) per operand, a stride per operand, and a length. Kernels specialise
// on the inner stride (1: contiguous, 0: broadcast scalar, else gathered into a small buffer).
// The walk covers the linear range [begin, end) of the row-major index space, which is how
// parallel loops split work deterministically.

template <std::size_t N> struct LoopLayout {
  Shape shape;
  std::array<Strides, N> strides;
};

/// Drops size-1 axes and merges axes that are contiguous with their neighbour in all operands.
template <std::size_t N>
LoopLayout<N> coalesce(const Shape& shape, const std::array<Strides, N>& strides) {
  LoopLayout<N> out;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !out.shape.empty();
    for (std::size_t k = 0; k < N && merge; ++k)
      merge = out.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      out.shape.back() *= shape[d];
      for (std::size_t k = 0; k < N; ++k) out.strides[k].back() = strides[k][d];
    } else {
      out.shape.push_back(shape[d]);
      for (std::size_t k = 0; k < N; ++k) out.strides[k].push_back(strides[k][d]);
    }
  }
  return out;
}

/// Calls run(offsets, inner_strides, length) for every innermost run of the linear index range
/// [begin, end) of `layout`. Offsets are in elements relative to each operand's first element.
template <std::size_t N, class Run>
void for_each_run(const LoopLayout<N>& layout, std::int64_t begin, std::int64_t end, Run&& run) {
  using Offsets = std::array<std::int64_t, N>;
  if (begin >= end) return;
  const std::size_t ndim = layout.shape.size();
  if (ndim == 0) {
    run(Offsets{}, Offsets{}, std::int64_t{1});
    return;
  }
  const std::int64_t inner = layout.shape[ndim - 1];
  Offsets inner_strides{};
  for (std::size_t k = 0; k < N; ++k) inner_strides[k] = layout.strides[k][ndim - 1];

  // Multi-index of the outer axes at `begin`, and the matching offsets.
  Shape index(ndim, 0);
  std::int64_t rest = begin / inner;
  std::int64_t inner_pos = begin % inner;
  for (std::size_t d = ndim - 1; d-- > 0;) {
    index[d] = rest % layout.shape[d];
    rest /= layout.shape[d];
  }
  Offsets base{};
  for (std::size_t k = 0; k < N; ++k)
    for (std::size_t d = 0; d + 1 < ndim; ++d) base[k] += index[d] * layout.strides[k][d];

  std::int64_t pos = begin;
  while (pos < end) {
    const std::int64_t len = inner - inner_pos < end - pos ? inner - inner_pos : end - pos;
    Offsets start;
    for (std::size_t k = 0; k < N; ++k) start[k] = base[k] + inner_pos * inner_strides[k];
    run(start, inner_strides, len);
    pos += len;
    inner_pos = 0;
    // Advance the outer odometer by one.
    for (std::size_t d = ndim - 1; d-- > 0;) {
      ++index[d];
      for (std::size_t k = 0; k < N; ++k) base[k] += layout.strides[k][d];
      if (index[d] < layout.shape[d]) break;
      for (std::size_t k = 0; k < N; ++k) base[k] -= index[d] * layout.strides[k][d];
      index[d] = 0;
    }
  }
}

/// Strides of `strides`/`shape` broadcast to `target` (stride 0 on new or size-1 axes).
Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target);

}  // namespace theta::detail
