#include "tensor/overlap.hpp"

#include <algorithm>

#include "tensor/strided_loop.hpp"

namespace theta::detail {

// Note [Overlapping in-place operands]
// An in-place op (copy_, add_) walks its destination in some order, split over threads, and reads
// its source as it goes. When the source shares memory with the destination, an element can be
// read after it was overwritten: x[1:] += x[:-1] turns into a running sum, y += y^T loses its
// symmetry. So these ops read a copy of the source whenever the two may overlap. The test is
// cheap and conservative: the same Storage and intersecting byte ranges [first, last element].
// The one overlap that needs no copy is exact aliasing, a source that (broadcast to the
// destination's shape) has the destination's offset and strides, as in x.add_(x): each element
// is read by the same iteration that then writes it.
//
// A destination whose elements share memory (an expanded view: stride 0 on an axis of size > 1)
// is refused: several results would be written to one location, and which one stays depends on
// the walk order and the threads. fill_ is exempt, since all its writes are the same value.
// Only stride 0 is detected, as PyTorch does: every view theta builds either keeps elements apart
// or expands, and other self-overlapping layouts need the raw constructor.

namespace {

struct ByteRange {
  std::int64_t begin = 0;  // first byte
  std::int64_t end = 0;    // one past the last byte
};

ByteRange byte_range(const Tensor& t) {
  std::int64_t lo = t.offset(), hi = t.offset();
  for (std::size_t d = 0; d < t.shape().size(); ++d) {
    const std::int64_t span = (t.shape()[d] - 1) * t.strides()[d];
    (span < 0 ? lo : hi) += span;
  }
  const auto item = static_cast<std::int64_t>(dtype_size(t.dtype()));
  return {lo * item, (hi + 1) * item};
}

// Same storage element for every destination element (dst has no internal overlap).
bool aliases_exactly(const Tensor& dst, const Tensor& src) {
  if (src.offset() != dst.offset() || src.dtype() != dst.dtype()) return false;
  const Strides s = broadcast_strides(src.shape(), src.strides(), dst.shape());
  for (std::size_t d = 0; d < dst.shape().size(); ++d)
    if (dst.shape()[d] != 1 && s[d] != dst.strides()[d]) return false;
  return true;
}

}  // namespace

void check_no_internal_overlap(const Tensor& dst, const char* op) {
  for (std::size_t d = 0; d < dst.shape().size(); ++d)
    THETA_CHECK(dst.strides()[d] != 0 || dst.shape()[d] <= 1, ShapeError, op, ": cannot write to ",
                shape_str(dst.shape()), " (strides ", shape_str(dst.strides()),
                "): several of its elements share memory (an expanded view); write to a clone() instead");
}

bool needs_source_copy(const Tensor& dst, const Tensor& src) {
  if (src.storage() != dst.storage() || src.numel() == 0 || dst.numel() == 0) return false;
  const ByteRange a = byte_range(dst), b = byte_range(src);
  if (a.end <= b.begin || b.end <= a.begin) return false;
  return !aliases_exactly(dst, src);
}

}  // namespace theta::detail
