#pragma once
// Tensor: an eager, strided view of a shared Storage. Not differentiable (see autograd/).
//
// A tensor is (storage, shape, strides in elements, offset in elements, dtype). View operations
// (reshape, permute, transpose, slice, select, expand, squeeze, unsqueeze) are O(1) and share the
// storage; every other op returns a freshly allocated tensor that shares nothing with its
// operands. That result is dense but not always contiguous: an elementwise op on operands that
// share one dense layout (all transposed, say) writes that layout (Note [Output layout] in
// ops_elementwise.cpp). Read results through their strides, or call contiguous().

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string_view>
#include <vector>

#include "tensor/dtype.hpp"
#include "tensor/error.hpp"
#include "tensor/shape.hpp"
#include "tensor/storage.hpp"

namespace theta {

class Tensor {
 public:
  /// An undefined tensor (no storage). Most operations on it throw.
  Tensor() = default;

  /// A new contiguous tensor of `shape` with uninitialised elements.
  static Tensor empty(const Shape& shape, DType dtype = DType::f64);
  /// A new tensor of like's shape and dtype with uninitialised elements, laid out like `like` when
  /// that is dense (e.g. a transpose), so an elementwise pass over both walks memory in order;
  /// contiguous otherwise.
  static Tensor empty_like(const Tensor& like);

  /// A view of `storage` (used by views and by I/O).
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Strides strides, std::int64_t offset,
         DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  std::int64_t offset() const { return offset_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto s : shape_) n *= s;
    return n;
  }
  /// Size of `axis` (negative counts from the end).
  std::int64_t size(std::int64_t axis) const {
    return shape_[static_cast<std::size_t>(normalize_axis(axis, dim(), "size"))];
  }
  /// True when the elements are laid out row-major without gaps.
  bool is_contiguous() const;
  /// True when the elements fill one block of memory without gaps or overlaps in some axis order
  /// (contiguous, or a permutation of it such as a transpose).
  bool is_dense() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  /// Pointer to the first element; throws DTypeError when T does not match dtype().
  template <class T> T* data() const;
  /// Untyped pointer to the first element.
  void* raw_data() const;

  /// The single element of a tensor with numel() == 1, converted to T.
  template <class T = double> T item() const;
  /// Element at a multi-index, converted to double (for tests and printing; slow).
  double at(const std::vector<std::int64_t>& index) const;

  // ---- O(1) views -------------------------------------------------------------------------
  /// A view with a new shape (one size may be -1). Throws ShapeError when the strides do not
  /// allow a view; call contiguous() first to copy.
  Tensor reshape(Shape shape) const;
  /// reshape(), copying first only when a view is impossible.
  Tensor reshape_copy(Shape shape) const;
  /// Reorders axes: result axis i is input axis perm[i].
  Tensor permute(const std::vector<std::int64_t>& perm) const;
  /// Swaps two axes.
  Tensor transpose(std::int64_t a, std::int64_t b) const;
  /// Transpose of a 2-D tensor: [m,n] -> [n,m].
  Tensor t() const;
  /// Elements start, start+step, ... < stop along `axis` (Python semantics, clamped; step > 0).
  Tensor slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const;
  /// Removes `axis` by fixing it at `index` (negative counts from the end).
  Tensor select(std::int64_t axis, std::int64_t index) const;
  /// Broadcasts to `shape` with stride 0 on expanded axes (NumPy rules; -1 keeps a size).
  Tensor expand(const Shape& shape) const;
  /// Removes `axis`, which must have size 1.
  Tensor squeeze(std::int64_t axis) const;
  /// Removes every axis of size 1.
  Tensor squeeze() const;
  /// Inserts an axis of size 1 at `axis` (in [-dim-1, dim]).
  Tensor unsqueeze(std::int64_t axis) const;
  /// [d0, ..., dk] -> [d0 * ... * dk] (a view when possible, else a copy).
  Tensor flatten() const;

  // ---- copies -----------------------------------------------------------------------------
  /// This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;
  /// A contiguous copy that shares nothing with this tensor.
  Tensor clone() const;
  /// A copy converted to `dtype` (this tensor itself when the dtype already matches).
  Tensor to(DType dtype) const;

  // ---- in-place (bump the storage version; const: a Tensor is a handle, like shared_ptr) --
  // The source may share memory with this tensor: it is read as it was before the write. A
  // destination whose elements share memory (an expanded view) is refused with a ShapeError.
  /// Copies `src` (broadcast to this shape, same dtype) into this tensor's elements.
  void copy_(const Tensor& src) const;
  /// Sets every element to `value` (an expanded view too: every write stores the same value).
  void fill_(double value) const;
  /// this += alpha * other (other broadcast to this shape, same dtype).
  void add_(const Tensor& other, double alpha = 1.0) const;
  /// this += a @ b for a:[m, k], b:[k, n] and this [m, n], all of one floating dtype. One gemm
  /// that accumulates into this tensor's memory when its layout allows (row-major or a
  /// transposed view); otherwise, or when an operand shares this tensor's storage, the product
  /// is formed first and added.
  void add_matmul_(const Tensor& a, const Tensor& b) const;
  /// this = a @ b, as add_matmul_ but without reading what this tensor held (gemm with beta 0),
  /// so it may fill a buffer straight from Tensor::empty. With k = 0 it is filled with zeros.
  void assign_matmul_(const Tensor& a, const Tensor& b) const;
  /// Lower triangle (row >= column) of this [m, m] tensor += a a^T for a:[m, k] of this floating
  /// dtype; the strict upper triangle is left as it is. One syrk into this tensor's memory, which
  /// may be a view with any row stride >= m and unit column stride (a slice of a wider layout);
  /// other layouts, and operands sharing this tensor's storage, are refused. A row-major or
  /// transposed view of a is read where it lies; other layouts of a are copied first.
  void add_gram_(const Tensor& a) const;

 private:
  void check_defined(const char* op) const {
    if (!defined()) [[unlikely]]
      throw_undefined(op);
  }
  [[noreturn]] static void throw_undefined(const char* op);

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_;
  std::int64_t offset_ = 0;
  DType dtype_ = DType::f64;
};

/// Prints dtype, shape and the elements (summarised past 1000 elements):
/// tensor([1, 2], dtype=float64, shape=[2]).
std::ostream& operator<<(std::ostream& out, const Tensor& t);
/// Prints t as `kind(elements, dtype=..., shape=...<extra>)`; operator<< of Tensor and of
/// autograd::Var are this with kind "tensor" and "var".
void print_tensor(std::ostream& out, const Tensor& t, std::string_view kind, std::string_view extra);

// ---- factories (tensor/factories.cpp) -----------------------------------------------------
/// Tensor of `shape` filled with 0.
Tensor zeros(const Shape& shape, DType dtype = DType::f64);
/// Tensor of `shape` filled with 1.
Tensor ones(const Shape& shape, DType dtype = DType::f64);
/// Tensor of `shape` filled with `value`.
Tensor full(const Shape& shape, double value, DType dtype = DType::f64);
/// 0-d tensor holding `value`.
Tensor scalar_tensor(double value, DType dtype = DType::f64);
/// [start, start+step, ...) below `stop` (above for step < 0).
Tensor arange(double start, double stop, double step = 1.0, DType dtype = DType::f64);
/// `count` evenly spaced points from start to stop inclusive.
Tensor linspace(double start, double stop, std::int64_t count, DType dtype = DType::f64);
/// Identity matrix [n, n].
Tensor eye(std::int64_t n, DType dtype = DType::f64);
/// 1-D tensor copied from `values`.
Tensor from_vector(const std::vector<double>& values, DType dtype = DType::f64);
/// Tensor of `shape` copied from `values` (row-major; sizes must match).
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f64);
/// 1-D int64 tensor of indices or labels.
Tensor from_indices(const std::vector<std::int64_t>& values);
/// Tensor of `shape` from a nested-free initializer list: tensor({1, 2, 3, 4}, {2, 2}).
Tensor tensor(std::initializer_list<double> values, const Shape& shape = {}, DType dtype = DType::f64);

/// Elements as a row-major vector of doubles (for tests and small outputs).
std::vector<double> to_vector(const Tensor& t);

}  // namespace theta
