#pragma once
// Internal to theta_theory: one forward pass that records every single-use Linear layer (its
// input, its output and which parameters it owns), and per-sample Jacobian rows for the
// parameters outside such layers. The structured NTK (ntk.cpp) and the per-sample gradients
// (per_sample.cpp) are built on these (Note [Structured NTK] in ntk.cpp).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "nn/layers.hpp"

namespace theta::theory::detail {

using autograd::Var;

struct Captured {
  Var output;                        // f(x): [n, O]
  std::vector<nn::LinearCapture::Record> layers;  // single-use Linear layers
  std::vector<std::pair<std::string, Var>> other_params;  // everything else
};

/// Runs `model` on x [n, d] and records its single-use Linear layers; returns f(x) [n, O].
Var forward_captured(nn::Module& model, const Tensor& x, Captured& out);

/// Total element count of `params`.
std::int64_t numel_of(const std::vector<std::pair<std::string, Var>>& params);

/// Per-sample Jacobian rows [count * O, P] of samples [begin, begin + count) for `params`
/// (named parameters of `model`, in order), one forward pass per sample.
Tensor jacobian_rows(nn::Module& model, const Tensor& x, std::int64_t begin, std::int64_t count,
                     const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs);

/// How many samples' Jacobian rows fit in max_bytes (two chunks live at a time), in [1, n].
std::int64_t samples_per_chunk(std::int64_t max_bytes, std::int64_t outputs, std::int64_t p_total, std::int64_t n);

/// The model's output width O, from one sample without recording a graph.
std::int64_t output_count(nn::Module& model, const Tensor& x);

}  // namespace theta::theory::detail
