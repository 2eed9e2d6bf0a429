// Copies and the in-place writes that are copies: contiguous, clone, to, copy_, fill_ (add_, an
// arithmetic update, lives with the elementwise ops). One strided, converting copy serves them all.

#include <cstring>
#include <type_traits>

#include "tensor/overlap.hpp"
#include "tensor/parallel.hpp"
#include "tensor/strided_loop.hpp"
#include "tensor/tensor.hpp"

namespace theta {

namespace {

// Converting strided copy: dst (any layout) <- src (broadcast to dst's shape).
template <class Dst, class Src>
void copy_elements(const Tensor& dst, const Tensor& src, const Strides& src_strides) {
  Dst* d = static_cast<Dst*>(dst.raw_data());
  const Src* s = static_cast<const Src*>(src.raw_data());
  const auto layout = detail::coalesce<2>(dst.shape(), {dst.strides(), src_strides});
  const std::int64_t n = dst.numel();
  parallel_for(n, kElementwiseGrain, [&](std::int64_t begin, std::int64_t end) {
    detail::for_each_run(layout, begin, end, [&](auto off, auto step, std::int64_t len) {
      Dst* dp = d + off[0];
      const Src* sp = s + off[1];
      if (step[0] == 1 && step[1] == 1 && std::is_same_v<Dst, Src>) {
        if (static_cast<const void*>(dp) == static_cast<const void*>(sp)) return;  // copying onto itself
        std::memcpy(static_cast<void*>(dp), sp, static_cast<std::size_t>(len) * sizeof(Dst));
        return;
      }
      for (std::int64_t i = 0; i < len; ++i) dp[i * step[0]] = static_cast<Dst>(sp[i * step[1]]);
    });
  });
}

void copy_into(const Tensor& dst, const Tensor& src) {
  const Strides src_strides = detail::broadcast_strides(src.shape(), src.strides(), dst.shape());
  visit_dtype(dst.dtype(), [&](auto d) {
    visit_dtype(src.dtype(), [&](auto s) {
      copy_elements<decltype(d), decltype(s)>(dst, src, src_strides);
    });
  });
}

}  // namespace

// ---- copies -----------------------------------------------------------------------------

Tensor Tensor::contiguous() const {
  check_defined("contiguous");
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  check_defined("clone");
  Tensor out = empty(shape_, dtype_);
  copy_into(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  check_defined("to");
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype);
  copy_into(out, *this);
  return out;
}

void Tensor::copy_(const Tensor& src) const {
  check_defined("copy_");
  THETA_CHECK(src.defined(), std::invalid_argument, "copy_: source tensor is undefined");
  THETA_CHECK(src.dtype() == dtype_, DTypeError, "copy_: dtype mismatch, destination ",
              dtype_name(dtype_), ", source ", dtype_name(src.dtype()));
  const Shape b = broadcast_shapes(shape_, src.shape(), "copy_");
  THETA_CHECK(b == shape_, ShapeError, "copy_: cannot broadcast ", shape_str(src.shape()),
              " into ", shape_str(shape_));
  detail::check_no_internal_overlap(*this, "copy_");
  // Note [Overlapping in-place operands]
  copy_into(*this, detail::needs_source_copy(*this, src) ? src.clone() : src);
  storage_->bump_version();
}

void Tensor::fill_(double value) const {
  check_defined("fill_");
  // An expanded destination is fine: every write stores the same value.
  copy_into(*this, full({}, value, dtype_));
  storage_->bump_version();
}

}  // namespace theta
