#pragma once
// Internal to theta_theory: the empirical NTK between two blocks of inputs. The structured
// kernel is built from per-block factors (Note [Structured NTK] in ntk_blocks.cpp) that can be
// computed once and reused against many other blocks: the whole-batch kernels (ntk.cpp) are one
// pair of blocks, the tiled kernels (ntk_tiled.cpp) many.

#include <cstdint>
#include <vector>

#include "nn/module.hpp"
#include "theory/model_probe.hpp"

namespace theta::theory::detail {

/// Which kernel a block pair produces: [b1, b2, O, O], its trace over outputs [b1, b2], or one
/// output's kernel [b1, b2] (Theta[:, :, o, o]).
enum class KernelForm { full, trace, output };

/// What the structured kernel needs of one block of inputs x:[b, d]: the model's forward with
/// its structured layers recorded, and per such layer the gradients of every output with respect
/// to the layer's output, [b, O, width] (dense or factored by channel). Compact factors
/// (compact_block_factors) hold, for a layer whose rule prefers them, the rule's per-sample
/// features [b, O, w] instead of the layer's input and cotangents (both then undefined).
struct BlockFactors {
  Tensor x;
  Captured captured;
  std::vector<nn::Cotangents> output_grads;
  std::vector<Tensor> features;  // per layer; undefined where the cotangents are kept

  std::int64_t rows() const { return x.size(0); }
  std::int64_t outputs() const { return captured.output.size(1); }
  DType dtype() const { return captured.output.dtype(); }
};

/// Runs the model on x (with the checks of forward_captured, the sample-independence check only
/// with check_samples) and forms its factors; `op` names the caller in errors.
BlockFactors block_factors(nn::Module& model, const Tensor& x, const char* op, bool check_samples = true);

/// The factors of x formed a block of rows at a time, each block's forward graph and dense
/// cotangents dropped once its factors are kept (Note [Compact factors] in
/// ntk_compact_factors.cpp): the same kernel as block_factors' with less memory held. A block's
/// cotangents take about min(max_bytes, 8 MiB) (at least 32 rows; the first block is 8 rows).
BlockFactors compact_block_factors(nn::Module& model, const Tensor& x, const char* op, std::int64_t max_bytes);

/// What structured_block_kernel does with the factors: `keep` them (a tiled kernel pairs a
/// block's factors with many other blocks), or `consume` them (a whole-batch kernel): the forward
/// graph goes first, all but each layer's input (the digits CNN: ~30 MiB of activations and what
/// their backward saved), and each layer's cotangents go as soon as its rule has added its block
/// (the first convolution's: 40 MiB), so the largest rule runs without either.
enum class FactorUse { keep, consume };

/// The structured kernel between two blocks. With `same`, f2 is f1 (a block with itself) and the
/// symmetric half is computed once. Parameters outside structured layers are added by Jacobian
/// contraction with chunks under max_bytes. `output` is o for KernelForm::output.
Tensor structured_block_kernel(nn::Module& model, BlockFactors& f1, BlockFactors& f2, bool same, KernelForm form,
                               std::int64_t max_bytes, std::int64_t output = 0,
                               FactorUse use = FactorUse::keep);

/// The kernel by Jacobian contraction alone (NtkMethod::contraction); checks inputs and model.
Tensor contraction_kernel(nn::Module& model, const Tensor& x1, const Tensor& x2, bool same, KernelForm form,
                          std::int64_t max_bytes, const char* op);

/// Whether two tensors are the same view of the same memory (the kernel of x with itself).
bool same_view(const Tensor& a, const Tensor& b);

}  // namespace theta::theory::detail
