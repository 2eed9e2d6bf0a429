#pragma once
// Memory overlap between the operands of an in-place op (Note [Overlapping in-place operands]).

#include "tensor/tensor.hpp"

namespace theta::detail {

/// Throws ShapeError naming `op` when two elements of `dst` share memory (an expanded view has
/// stride 0 on an axis of size > 1): a write through such a view has no single meaning.
void check_no_internal_overlap(const Tensor& dst, const char* op);

/// True when `src`, broadcast to dst's shape, may share memory with `dst` other than element for
/// element; an in-place op must then read a copy of `src`. Conservative: may say true for views
/// that interleave without touching.
bool needs_source_copy(const Tensor& dst, const Tensor& src);

}  // namespace theta::detail
