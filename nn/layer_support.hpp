#pragma once
// Internal to theta_nn: checks and passes that several layer kinds share.

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace theta::nn::detail {

/// Throws DTypeError naming the layer, both dtypes and the ways out when x is not of `dtype`
/// (Note [Layer input dtypes] in layers.cpp).
void check_input_dtype(const Module& layer, const Var& x, DType dtype);

/// What the batch-normalisation pass of BatchNorm1d and BatchNorm2d reads and updates.
struct BatchNormState {
  std::string layer{};        ///< the layer's description, for errors
  bool training = false;      ///< batch statistics (and running updates) or running statistics
  Tensor running_mean{};      ///< [C], updated in place in training
  Tensor running_var{};       ///< [C], updated in place in training
  Var weight{}, bias{};       ///< [C] each, undefined without affine
  double eps = 1e-5;
  double momentum = 0.1;
};

/// x normalised per channel over `axes`, then scaled and shifted, with the [C] statistics and
/// parameters reshaped to `param_shape` to broadcast against x.
Var batch_norm(const Var& x, const std::vector<std::int64_t>& axes, const Shape& param_shape,
               const BatchNormState& state);

/// Rows per block for a loop over n rows in blocks of at most max_rows (>= 1) that theta's threads
/// split evenly: the number of blocks rounded up to a multiple of the threads, or of twice the
/// threads when `paired` (block q runs with block blocks - 1 - q, so that the rows of a triangle
/// balance). parallel_for hands out contiguous ranges, so 13 panels paired into 7 units left one
/// of two threads with 4 pairs and the other with 2.5.
std::int64_t balanced_block_rows(std::int64_t n, std::int64_t max_rows, bool paired);

}  // namespace theta::nn::detail
