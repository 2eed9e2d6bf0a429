#pragma once
// The loss on points of a low-dimensional slice through parameter space: 1-D interpolation
// between two parameter vectors, 1-D and 2-D slices along given directions (Li et al. 2018;
// directions from theory/landscape_directions.hpp or theory/trajectory_pca.hpp).
//
// Every function here evaluates loss(model(x), y) at points theta = origin + sum_k c_k d_k, with
// theta, origin and the directions flat float64 vectors [P] in named_parameters() order. The
// model's own forward runs (nn::functional_call) in the mode it is in: a BatchNorm in training
// mode normalises with the statistics of x as one batch. Nothing is recorded and the caller's
// model is never touched: each worker thread evaluates its share of the points on its own clone,
// whose buffers are restored after every point (Note [Grid determinism] in landscape_grid.cpp),
// so the losses are bitwise identical for any thread count (set_num_threads).

#include <vector>

#include "nn/module.hpp"
#include "nn/train.hpp"

namespace theta::theory {

/// The loss at points origin + coordinates[i, 0] directions[0] + ... + coordinates[i, k-1]
/// directions[k-1] (added in that order), i = 0..m-1, on get_num_threads() threads.
/// x:[n, ...], y as `loss` expects, origin:[P], k directions [P], coordinates:[m, k] -> [m] float64.
/// Throws ShapeError naming the shapes when a vector does not have the model's parameter count P
/// or coordinates is not [m, k], std::invalid_argument for NaN or Inf in the vectors or
/// coordinates, a model with a shared parameter or an empty loss function; whatever the model or
/// the loss throws propagates.
Tensor evaluate_losses(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                       const Tensor& origin, const std::vector<Tensor>& directions, const Tensor& coordinates);

/// The 1-D slice L(origin + alpha_i d): alphas:[m] -> [m] (evaluate_losses with one direction).
/// Throws as evaluate_losses does, and ShapeError when alphas is not 1-D.
Tensor loss_slice(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                  const Tensor& origin, const Tensor& direction, const Tensor& alphas);

/// The 2-D slice L(origin + alpha_i d1 + beta_j d2): alphas:[a], betas:[b] -> [a, b], row i for
/// alpha_i (evaluate_losses with two directions over the grid, row-major). Throws as
/// evaluate_losses does, and ShapeError when alphas or betas is not 1-D.
Tensor loss_surface(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                    const Tensor& origin, const Tensor& d1, const Tensor& d2, const Tensor& alphas,
                    const Tensor& betas);

/// Linear interpolation L(from + alpha_i (to - from)) between two parameter vectors (Goodfellow,
/// Vinyals and Saxe 2015): from:[P], to:[P], alphas:[m] -> [m]; alpha 0 is `from`, 1 is `to`
/// (up to the rounding of from + (to - from)). Throws as evaluate_losses does, and ShapeError when
/// alphas is not 1-D.
Tensor loss_interpolation(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                          const Tensor& from, const Tensor& to, const Tensor& alphas);

}  // namespace theta::theory
