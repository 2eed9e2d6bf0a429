#pragma once
// Output cotangents of a structured layer, m per sample, dense or factored by channel (Note
// [Channel-factored cotangents] in conv_ntk.cpp).

#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/row_store.hpp"
#include "tensor/tensor.hpp"

namespace theta::nn {

/// Cotangents d:[n, m, C, ...] of a layer's output: d[i, a] for sample i and slot a (m = O outputs
/// for the NTK). Held dense, or, when known to factor by channel, as
///   d[i, a, c, ...] = u[a, c] v[i, c, ...],   u:[m, C], v:[n, C, ...]
/// which takes m times less memory and spares a rule that uses the factors from finding them. A
/// dense tensor converts implicitly.
class Cotangents {
 public:
  Cotangents() = default;
  Cotangents(Tensor dense);  // NOLINT(google-explicit-constructor): any dense tensor is one
  /// Factored cotangents from u:[m, C] and v:[n, C, ...] of one floating dtype.
  static Cotangents by_channel(Tensor u, Tensor v);
  /// The channel factors of dense d:[n, m, C, ...] (m >= 2, at least 3 dimensions) when every
  /// d[i, a, c, :] equals u[a, c] v[i, c, :] to 1e-13 of channel c's largest entry; nullopt
  /// otherwise. u is normalised to 1 at the output holding the channel's largest entry at the first
  /// sample where the channel is not all zero (channels zero throughout get u = 0, v = 0). One pass
  /// over d, stopping early once a deviation is far past rounding; an Inf or NaN entry anywhere
  /// gives nullopt (the dense tensor keeps it for the caller's checks).
  static std::optional<Cotangents> find_channel_factors(const Tensor& d);
  /// One u for factored cotangents of several blocks of samples: block b's u[:, c] must be
  /// scales[b][c] u[:, c] (to 1e-13 of the column's largest entry), so that its cotangents are
  /// u (scales[b] v_b). The reference column of channel c is that of the first block where it is
  /// not all zero (a block zero in the channel gets scale 0). nullopt when a block is dense or the
  /// columns are not proportional (the blocks then factor over no common u).
  struct CommonU {
    Tensor u;                    // [m, C], the blocks' dtype
    std::vector<Tensor> scales;  // per block, [C] float64
  };
  static std::optional<CommonU> common_u(const std::vector<Cotangents>& blocks);
  /// Block b's v on the common u: v_b scaled per channel by scales[b].
  static Tensor rescaled_v(const Cotangents& block, const Tensor& scale);

  bool defined() const { return dense_.defined() || u_.defined(); }
  bool factored() const { return u_.defined(); }
  const Tensor& u() const { return u_; }
  const Tensor& v() const { return v_; }
  /// The [n, m, C, ...] tensor: the stored one, or formed from the factors.
  Tensor dense() const;
  /// [n, m, C, ...] either way.
  Shape shape() const;
  std::int64_t rows() const { return shape()[0]; }
  std::int64_t count() const { return shape()[1]; }
  DType dtype() const { return factored() ? v_.dtype() : dense_.dtype(); }
  /// Slots [begin, end) of every sample, in the same form.
  Cotangents slots(std::int64_t begin, std::int64_t end) const;

 private:
  Tensor dense_, u_, v_;
};

/// The cotangents of `rows` samples, written a block of consecutive rows at a time (each block
/// can be dropped once put): factored blocks as their v rows and u, brought to one u by take()
/// (common_u, each block's rows rescaled in place); dense blocks, or every block once one is dense
/// or the blocks' u share no common one, as dense rows.
class CotangentRows {
 public:
  explicit CotangentRows(std::int64_t rows) : v_(rows), dense_(rows) {}
  void put(std::int64_t begin, const Cotangents& block);
  /// Every row must have been put.
  Cotangents take();

 private:
  struct Block {
    std::int64_t begin, rows;
    Tensor u;
  };
  Tensor rows_of(const Block& b) const { return v_.all().slice(0, b.begin, b.begin + b.rows); }
  void to_dense();

  RowStore v_, dense_;
  std::vector<Block> blocks_;
};

}  // namespace theta::nn
