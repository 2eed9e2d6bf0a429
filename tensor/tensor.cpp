#include "tensor/tensor.hpp"

#include <algorithm>
#include <iterator>
#include <limits>

#include "tensor/block_pool.hpp"

namespace theta {

namespace detail {
Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target) {
  Strides out(target.size(), 0);
  const std::size_t lead = target.size() - shape.size();
  for (std::size_t i = 0; i < shape.size(); ++i)
    out[lead + i] = shape[i] == 1 && target[lead + i] != 1 ? 0 : strides[i];
  return out;
}
}  // namespace detail

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const std::int64_t n = shape_numel(shape, "empty");
  std::int64_t bytes = 0;
  THETA_CHECK(!__builtin_mul_overflow(n, static_cast<std::int64_t>(dtype_size(dtype)), &bytes), ShapeError,
              "empty: shape ", shape_str(shape), " of ", dtype_name(dtype), " needs more bytes than int64 can count");
  auto storage = make_pooled<Storage>(static_cast<std::size_t>(bytes));
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, std::int64_t offset,
               DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)),
      offset_(offset), dtype_(dtype) {
  THETA_ASSERT(shape_.size() == strides_.size());
}

void Tensor::throw_undefined(const char* op) { THETA_THROW(std::logic_error, op, ": tensor is undefined"); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element is out of place
  std::int64_t expected = 1;
  for (std::size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

bool Tensor::is_dense() const {
  if (is_contiguous()) return true;
  // Sorted by stride, the axes of size > 1 must have the strides of a contiguous tensor.
  std::int64_t order[Dims::kInline * 4];
  if (shape_.size() > std::size(order)) return is_contiguous();
  std::size_t n = 0;
  for (std::size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1) order[n++] = static_cast<std::int64_t>(i);
  std::sort(order, order + n, [&](std::int64_t a, std::int64_t b) { return strides_[a] < strides_[b]; });
  std::int64_t expected = 1;
  for (std::size_t k = 0; k < n; ++k) {
    const auto axis = static_cast<std::size_t>(order[k]);
    if (shape_[axis] == 0) return true;
    if (strides_[axis] != expected) return false;
    expected *= shape_[axis];
  }
  return true;
}

Tensor Tensor::empty_like(const Tensor& like) {
  like.check_defined("empty_like");
  Tensor out = empty(like.shape_, like.dtype_);
  if (!like.is_contiguous() && like.is_dense()) out.strides_ = like.strides_;
  return out;
}

void* Tensor::raw_data() const {
  check_defined("data");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
}

template <class T> T* Tensor::data() const {
  THETA_CHECK(dtype_ == dtype_of<T>(), DTypeError, "data: tensor has dtype ", dtype_name(dtype_),
              ", requested ", dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;

double Tensor::at(const std::vector<std::int64_t>& index) const {
  check_defined("at");
  THETA_CHECK(static_cast<std::int64_t>(index.size()) == dim(), IndexError, "at: index has ",
              index.size(), " entries for a tensor of shape ", shape_str(shape_));
  std::int64_t off = 0;
  for (std::size_t i = 0; i < index.size(); ++i) {
    THETA_CHECK(index[i] >= 0 && index[i] < shape_[i], IndexError, "at: index ", index[i],
                " out of range for axis ", i, " of shape ", shape_str(shape_));
    off += index[i] * strides_[i];
  }
  return visit_dtype(dtype_, [&](auto v) {
    using T = decltype(v);
    return static_cast<double>(static_cast<const T*>(raw_data())[off]);
  });
}

template <class T> T Tensor::item() const {
  check_defined("item");
  THETA_CHECK(numel() == 1, ShapeError, "item: tensor of shape ", shape_str(shape_),
              " has ", numel(), " elements, expected 1");
  return visit_dtype(dtype_, [&](auto v) {
    using S = decltype(v);
    return static_cast<T>(*static_cast<const S*>(raw_data()));
  });
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template std::int64_t Tensor::item<std::int64_t>() const;

// ---- views ------------------------------------------------------------------------------

namespace {
// Strides for viewing (shape, strides) as new_shape without copying, if possible. Old axes are
// grouped, from the innermost outwards, into chunks that are contiguous among themselves; each
// chunk must be covered exactly by a run of new axes, which then get strides inside the chunk.
bool view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape,
                  Strides& out) {
  out.assign(new_shape.size(), 0);
  auto view_d = static_cast<std::int64_t>(new_shape.size()) - 1;
  std::int64_t chunk_stride = strides.back();
  std::int64_t chunk_numel = 1;
  std::int64_t view_numel = 1;
  for (auto d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
    const auto du = static_cast<std::size_t>(d);
    chunk_numel *= shape[du];
    const bool chunk_ends =
        d == 0 || (shape[du - 1] != 1 && strides[du - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 &&
           (view_numel < chunk_numel || new_shape[static_cast<std::size_t>(view_d)] == 1)) {
      out[static_cast<std::size_t>(view_d)] = view_numel * chunk_stride;
      view_numel *= new_shape[static_cast<std::size_t>(view_d)];
      --view_d;
    }
    if (view_numel != chunk_numel) return false;
    if (d > 0) {
      chunk_stride = strides[du - 1];
      chunk_numel = 1;
      view_numel = 1;
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& requested, std::int64_t numel, const Shape& from) {
  Shape shape = requested;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      THETA_CHECK(infer < 0, ShapeError, "reshape: more than one -1 in ", shape_str(requested));
      infer = static_cast<int>(i);
      shape[i] = 1;
    } else {
      THETA_CHECK(shape[i] >= 0, ShapeError, "reshape: negative size in ", shape_str(requested));
    }
  }
  // The product of the given sizes; a shape too large for int64 cannot hold numel elements.
  std::int64_t known = 0;
  const detail::ShapeProblem problem = detail::check_shape(shape, known);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, "reshape: cannot reshape ", shape_str(from),
              " (", numel, " elements) into ", shape_str(requested), ": ", detail::describe(problem));
  if (infer >= 0) {
    THETA_CHECK(known != 0 && numel % known == 0, ShapeError, "reshape: cannot reshape ",
                shape_str(from), " into ", shape_str(requested));
    shape[static_cast<std::size_t>(infer)] = numel / known;
    known *= shape[static_cast<std::size_t>(infer)];
  }
  THETA_CHECK(known == numel, ShapeError, "reshape: cannot reshape ", shape_str(from),
              " (", numel, " elements) into ", shape_str(requested));
  return shape;
}
}  // namespace

Tensor Tensor::reshape(Shape new_shape) const {
  check_defined("reshape");
  new_shape = infer_shape(new_shape, numel(), shape_);
  Strides new_strides;
  if (numel() == 0 || is_contiguous()) {
    new_strides = contiguous_strides(new_shape);
  } else if (!view_strides(shape_, strides_, new_shape, new_strides)) {
    THETA_THROW(ShapeError, "reshape: cannot view ", shape_str(shape_), " (strides ",
                shape_str(strides_), ") as ", shape_str(new_shape),
                "; call contiguous() or reshape_copy() to copy");
  }
  return Tensor(storage_, new_shape, new_strides, offset_, dtype_);
}

Tensor Tensor::reshape_copy(Shape new_shape) const {
  check_defined("reshape_copy");
  new_shape = infer_shape(new_shape, numel(), shape_);
  Strides new_strides;
  if (numel() == 0 || is_contiguous() || view_strides(shape_, strides_, new_shape, new_strides))
    return reshape(new_shape);
  return contiguous().reshape(new_shape);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& perm) const {
  check_defined("permute");
  THETA_CHECK(static_cast<std::int64_t>(perm.size()) == dim(), ShapeError, "permute: ",
              perm.size(), " axes given for a tensor of shape ", shape_str(shape_));
  Shape s(perm.size());
  Strides st(perm.size());
  Dims seen(perm.size(), 0);
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto a = static_cast<std::size_t>(normalize_axis(perm[i], dim(), "permute"));
    THETA_CHECK(!seen[a], ShapeError, "permute: axis ", perm[i], " repeated in ", shape_str(perm));
    seen[a] = 1;
    s[i] = shape_[a];
    st[i] = strides_[a];
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::transpose(std::int64_t a, std::int64_t b) const {
  check_defined("transpose");
  const auto i = static_cast<std::size_t>(normalize_axis(a, dim(), "transpose"));
  const auto j = static_cast<std::size_t>(normalize_axis(b, dim(), "transpose"));
  Tensor out = *this;
  std::swap(out.shape_[i], out.shape_[j]);
  std::swap(out.strides_[i], out.strides_[j]);
  return out;
}

Tensor Tensor::t() const {
  THETA_CHECK(dim() == 2, ShapeError, "t: expected a 2-D tensor, got ", shape_str(shape_));
  return transpose(0, 1);
}

Tensor Tensor::slice(std::int64_t axis, std::int64_t start, std::int64_t stop,
                     std::int64_t step) const {
  check_defined("slice");
  const auto a = static_cast<std::size_t>(normalize_axis(axis, dim(), "slice"));
  THETA_CHECK(step > 0, std::invalid_argument, "slice: step must be positive, got ", step);
  const std::int64_t n = shape_[a];
  auto clamp_index = [n](std::int64_t i) {
    if (i < 0) i += n;
    return std::clamp<std::int64_t>(i, 0, n);
  };
  start = clamp_index(start);
  stop = clamp_index(stop);
  // Neither the count nor the stride may overflow for a step far beyond the axis: the stride is
  // scaled only when a second element exists, so it stays inside the axis's own extent.
  const std::int64_t len = stop > start ? (stop - start - 1) / step + 1 : 0;
  Shape s = shape_;
  Strides st = strides_;
  s[a] = len;
  if (len > 1) st[a] = strides_[a] * step;
  return Tensor(storage_, s, st, offset_ + (len > 0 ? start * strides_[a] : 0), dtype_);
}

Tensor Tensor::select(std::int64_t axis, std::int64_t index) const {
  check_defined("select");
  const auto a = static_cast<std::size_t>(normalize_axis(axis, dim(), "select"));
  const std::int64_t i = index < 0 ? index + shape_[a] : index;
  THETA_CHECK(i >= 0 && i < shape_[a], IndexError, "select: index ", index,
              " out of range for axis ", axis, " of shape ", shape_str(shape_));
  Shape s = shape_;
  Strides st = strides_;
  s.erase(s.begin() + static_cast<std::ptrdiff_t>(a));
  st.erase(st.begin() + static_cast<std::ptrdiff_t>(a));
  return Tensor(storage_, s, st, offset_ + i * strides_[a], dtype_);
}

Tensor Tensor::expand(const Shape& target) const {
  check_defined("expand");
  THETA_CHECK(target.size() >= shape_.size(), ShapeError, "expand: cannot expand ",
              shape_str(shape_), " to ", shape_str(target));
  Shape s = target;
  const std::size_t lead = target.size() - shape_.size();
  for (std::size_t i = 0; i < shape_.size(); ++i) {
    if (s[lead + i] == -1) s[lead + i] = shape_[i];
    THETA_CHECK(shape_[i] == s[lead + i] || shape_[i] == 1, ShapeError, "expand: cannot expand ",
                shape_str(shape_), " to ", shape_str(target));
  }
  std::int64_t n = 0;
  const detail::ShapeProblem problem = detail::check_shape(s, n);
  THETA_CHECK(problem == detail::ShapeProblem::none, ShapeError, "expand: cannot expand ", shape_str(shape_),
              " to ", shape_str(target), ": ", detail::describe(problem));
  return Tensor(storage_, s, detail::broadcast_strides(shape_, strides_, s), offset_, dtype_);
}

Tensor Tensor::squeeze(std::int64_t axis) const {
  check_defined("squeeze");
  const auto a = static_cast<std::size_t>(normalize_axis(axis, dim(), "squeeze"));
  THETA_CHECK(shape_[a] == 1, ShapeError, "squeeze: axis ", axis, " of shape ", shape_str(shape_),
              " has size ", shape_[a], ", not 1");
  Shape s = shape_;
  Strides st = strides_;
  s.erase(s.begin() + static_cast<std::ptrdiff_t>(a));
  st.erase(st.begin() + static_cast<std::ptrdiff_t>(a));
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::squeeze() const {
  check_defined("squeeze");
  Shape s;
  Strides st;
  for (std::size_t i = 0; i < shape_.size(); ++i)
    if (shape_[i] != 1) {
      s.push_back(shape_[i]);
      st.push_back(strides_[i]);
    }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::unsqueeze(std::int64_t axis) const {
  check_defined("unsqueeze");
  const auto a = static_cast<std::size_t>(normalize_axis(axis, dim() + 1, "unsqueeze"));
  Shape s = shape_;
  Strides st = strides_;
  const std::int64_t stride = a < shape_.size() ? shape_[a] * strides_[a] : 1;
  s.insert(s.begin() + static_cast<std::ptrdiff_t>(a), 1);
  st.insert(st.begin() + static_cast<std::ptrdiff_t>(a), stride);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::flatten() const { return reshape_copy({numel()}); }

}  // namespace theta
