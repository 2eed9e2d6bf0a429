#pragma once
// RowStore: one [n, ...] tensor written a block of consecutive rows at a time, for results formed
// over blocks of samples: each block is copied in as it comes and can be dropped at once, and the
// whole tensor is allocated a single time, when the first block arrives (Note [Compact factors]
// in theory/ntk_compact_factors.cpp), rather than the blocks being kept and stacked at the end.

#include <algorithm>
#include <cstdint>
#include <utility>

#include "tensor/error.hpp"
#include "tensor/tensor.hpp"

namespace theta {

class RowStore {
 public:
  explicit RowStore(std::int64_t rows) : rows_(rows) {}

  /// Copies `block` into rows [begin, begin + block.size(0)); every block must have the first
  /// one's dtype and shape past dimension 0 (a ShapeError otherwise).
  void put(std::int64_t begin, const Tensor& block) {
    THETA_CHECK(block.dim() >= 1 && begin >= 0 && begin + block.size(0) <= rows_, ShapeError, "RowStore: a ",
                shape_str(block.shape()), " block at row ", begin, " does not fit in ", rows_, " rows");
    if (!all_.defined()) {
      Shape shape = block.shape();
      shape[0] = rows_;
      all_ = Tensor::empty(shape, block.dtype());  // every row is written by one block
    }
    THETA_CHECK(block.dim() == all_.dim() && block.dtype() == all_.dtype() &&
                    std::equal(block.shape().begin() + 1, block.shape().end(), all_.shape().begin() + 1),
                ShapeError, "RowStore: a ", shape_str(block.shape()), " ", dtype_name(block.dtype()),
                " block at row ", begin, " where the first block's rows make ", shape_str(all_.shape()), " ",
                dtype_name(all_.dtype()));
    all_.slice(0, begin, begin + block.size(0)).copy_(block);
  }

  /// Whether a block has arrived.
  bool started() const { return all_.defined(); }
  /// The tensor so far (rows no block has written are uninitialised).
  const Tensor& all() const { return all_; }
  /// The tensor, leaving the store empty.
  Tensor take() { return std::move(all_); }

 private:
  std::int64_t rows_;
  Tensor all_;
};

}  // namespace theta
