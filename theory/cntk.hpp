#pragma once
// The analytic (infinite-channel) NNGP and NTK of a ReLU convolutional network: the dynamic
// programme of Arora et al. 2019 over pixel pairs (Note [CNTK recursion] in cntk.cpp).

#include <cstdint>

#include "tensor/conv.hpp"
#include "tensor/tensor.hpp"
#include "theory/ntk.hpp"

namespace theta::theory {

/// How the last convolution's features reach the scalar output.
enum class CntkReadout {
  /// The mean over pixels, then a Linear layer C -> 1: the kernel averages over all pixel pairs
  /// (p, q) and is invariant under circular shifts with Padding::circular (CNTK-GAP).
  global_average,
  /// Flatten, then a Linear layer C H W -> 1: only same-position pairs (p, p) enter (CNTK-V).
  flatten,
};

/// The architecture whose infinite-channel limit analytic_cntk computes, in NTK parameterisation
/// with every weight and bias drawn from N(0, 1): x:[n, C0, H, W] goes through `conv_layers` times
///   y = sigma_w / sqrt(C_in k^2) conv(x, W) + sigma_b b, then ReLU,
/// with k x k kernels, stride 1 and padding k / 2 of the given mode (the image size is kept),
/// then the readout: sigma_w / sqrt(fan_in) x W^T + sigma_b b with fan_in = C (global average)
/// or C H W (flatten).
struct CntkOptions {
  std::int64_t conv_layers = 3;                       ///< convolution + ReLU blocks (>= 1)
  std::int64_t kernel_size = 3;                       ///< k, odd (>= 1)
  Padding padding = Padding::zeros;                   ///< what the k / 2 padding holds
  CntkReadout readout = CntkReadout::global_average;  ///< pixel mean or flatten before the Linear readout
  double sigma_w = 1.0;                               ///< weight scale (finite)
  double sigma_b = 0.0;                               ///< bias scale (finite)
};

/// The infinite-width NNGP and NTK of the network of CntkOptions between images
/// x1:[n1, C, H, W] and x2:[n2, C, H, W] (float32 or float64) -> {nngp, ntk}, each [n1, n2]
/// float64. When x1 and x2 are the same view, half of the symmetric kernels is computed and
/// mirrored (exactly symmetric). Throws ShapeError for inputs of the wrong rank or different C,
/// H, W, and std::invalid_argument for an even or non-positive kernel size, conv_layers < 1,
/// non-finite sigmas or inputs. Cost per pair: O(L k^2 (HW)^2) with the global average,
/// O(L k^2 HW) with flatten; memory per thread 4 (H + k - 1)^2 (W + k - 1)^2 doubles (global
/// average). Runs on get_num_threads() threads and calls check_interrupt() between rows.
AnalyticKernels analytic_cntk(const Tensor& x1, const Tensor& x2, const CntkOptions& options = {});

}  // namespace theta::theory
