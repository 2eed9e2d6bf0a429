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
/// Checks x and the parameters for NaN/Inf and the model for sample independence first; `op`
/// names the caller in errors.
Var forward_captured(nn::Module& model, const Tensor& x, Captured& out, const char* op);

/// Total element count of `params`.
std::int64_t numel_of(const std::vector<std::pair<std::string, Var>>& params);

/// Per-sample Jacobian rows [count * O, P] of samples [begin, begin + count) for `params`
/// (named parameters of `model`, in order), one forward pass per sample.
Tensor jacobian_rows(nn::Module& model, const Tensor& x, std::int64_t begin, std::int64_t count,
                     const std::vector<std::pair<std::string, Var>>& params, std::int64_t outputs);

/// How many samples' Jacobian rows fit in max_bytes (two chunks live at a time), in [1, n].
std::int64_t samples_per_chunk(std::int64_t max_bytes, std::int64_t outputs, std::int64_t p_total, std::int64_t n);

struct OutputInfo {
  std::int64_t outputs = 0;  // O
  DType dtype = DType::f64;
};

/// Checks x:[n, d] (n > 0, finite), the parameters (finite) and the model's sample independence
/// with one forward pass of the batch without recording a graph; returns the output width O and
/// dtype. `op` names the caller in errors.
OutputInfo checked_output_info(nn::Module& model, const Tensor& x, const char* op);

/// Throws unless the model treats samples independently: row 0 of `batch_output` (the model on
/// all of x:[n, d]) must equal the model's output on a batch made of two copies of x[0] (Note
/// [Sample independence]). `op` names the caller in the message.
void check_samples_independent(nn::Module& model, const Tensor& x, const Tensor& batch_output, const char* op);

/// Throws when the inputs x or any parameter of `model` hold NaN or Inf (Note [Non-finite values]
/// in checks.cpp).
void check_finite_inputs(const nn::Module& model, const Tensor& x, const char* op);

/// Saves the model's buffers (BatchNorm running statistics, ...) and restores them when it goes
/// out of scope: the theory tools run the model's forward many times and must leave it as found.
class BufferGuard {
 public:
  explicit BufferGuard(const nn::Module& model);
  ~BufferGuard();
  BufferGuard(const BufferGuard&) = delete;
  BufferGuard& operator=(const BufferGuard&) = delete;

 private:
  struct Saved {
    Tensor buffer;          // the module's buffer (shares its storage)
    Tensor values;          // a copy of its values
    std::uint64_t version;  // its storage version when saved
  };
  std::vector<Saved> saved_;
};

}  // namespace theta::theory::detail
