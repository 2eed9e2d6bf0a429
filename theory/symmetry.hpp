#pragma once
// Conserved quantities of training (Kunin et al. 2021, "Neural Mechanics"). A symmetry of the loss
// makes the gradient g orthogonal to a direction in parameter space, so a linear or quadratic
// function Q of the parameters obeys a closed law under SGD:
//
// - translation (the layer feeding softmax cross-entropy): Q_j = sum_c W[c, j], and sum_c b_c;
// - scale (a Linear feeding BatchNorm1d, or a Conv2d feeding BatchNorm2d, with eps = 0):
//   Q_c = |W[c, :]|^2 + b_c^2, for Conv2d |W[c, :, :, :]|^2 + b_c^2 per output channel c;
// - rescale (a positively homogeneous hidden unit i between Linear layers l and l + 1, or a
//   hidden channel i between Conv2d layers, or between a Conv2d and, through global average
//   pooling, a Linear): Q_i = |W_{l+1}[:, i]|^2 - |W_l[i, :]|^2 - b_l[i]^2, for Conv2d
//   |W_{l+1}[:, i, :, :]|^2 - |W_l[i, :, :, :]|^2 - b_l[i]^2;
// - balancedness (a linear hidden layer): D = W_{l+1}^T W_{l+1} - W_l W_l^T - b_l b_l^T, for
//   Conv2d layers with the channel slices above as rows (channel mixing is the symmetry).
//
// SymmetryTracker records them at every step of an nn::Sgd run and predicts them two ways: by the
// exact discrete laws of SGD with weight decay and momentum (Note [Exact discrete laws] in
// symmetry.cpp; they hold to rounding for any minibatch sequence) and by Kunin's continuous-time
// modified flows (Note [Continuous predictions]; an O(lr) approximation), both computed with
// discounted recursions so no intermediate grows like e^{+lambda t}.
//
// Conventions: parameters in PyTorch layout (Linear weight [out, in], Conv2d weight
// [C_out, C_in, k, k], bias [out]); a Conv2d weight's units are its channel slices, flattened
// (Note [Convolution units] in symmetry_tracker.cpp); time
// t_k = lr_1 + ... + lr_k after k steps; weight decay lambda, momentum beta and dampening tau as
// in torch.optim.SGD (nn::SgdOptions).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.hpp"
#include "nn/optim.hpp"

namespace theta::theory {

// ---- the quantities, from parameter tensors -----------------------------------------------------

/// Translation: weight:[C, J] -> [J], Q_j = sum_c weight[c, j]. (For a bias b:[C], sum(b).)
Tensor translation_quantity(const Tensor& weight);

/// Scale: weight:[C, I] or Conv2d [C, C_in, k, k], bias:[C] or undefined -> [C],
/// Q_c = |weight[c, ...]|^2 + bias[c]^2.
Tensor scale_quantity(const Tensor& weight, const Tensor& bias = Tensor());

/// Rescale: in_weight:[H, I], in_bias:[H] or undefined, out_weight:[O, H] -> [H],
/// Q_i = |out_weight[:, i]|^2 - |in_weight[i, :]|^2 - in_bias[i]^2. Conv2d weights
/// in_weight:[H, C, k, k], out_weight:[O, H, k', k'] use the channel slices [i, ...] and [:, i, ...]
/// (either may be a Conv2d weight and the other 2-D: a Conv2d, global pooling, then a Linear).
Tensor rescale_quantity(const Tensor& in_weight, const Tensor& in_bias, const Tensor& out_weight);

/// Balancedness: in_weight:[H, I], out_weight:[O, H], in_bias:[H] or undefined -> [H, H],
/// out_weight^T out_weight - in_weight in_weight^T - in_bias in_bias^T. Conv2d weights
/// [H, C, k, k] and [O, H, k', k'] (or [O, H]): entry (a, b) is <out[:, a, ...], out[:, b, ...]> -
/// <in[a, ...], in[b, ...]> - in_bias[a] in_bias[b].
Tensor balancedness(const Tensor& in_weight, const Tensor& out_weight, const Tensor& in_bias = Tensor());

// ---- discounted recursions for the continuous predictions ---------------------------------------

/// One step of u' = -rate u + f with f constant over the step, solved exactly:
/// u(t + h) = decay u(t) + gain f, decay = e^{-rate h}, gain = (1 - e^{-rate h}) / rate (h at rate 0).
struct DecayStep {
  double decay = 1.0;
  double gain = 0.0;
};

/// The exact one-step propagator of u' = -rate u + f for rate >= 0 and step h >= 0.
DecayStep decay_step(double rate, double h);

/// One step of the damped oscillator m u'' + c u' + k u = f with f constant over the step, solved
/// exactly: (u, v)(t + h) = transition (u, v)(t) + response f, where v = u'.
struct OscillatorStep {
  double transition[2][2] = {{1.0, 0.0}, {0.0, 1.0}};
  double response[2] = {0.0, 0.0};
};

/// The exact one-step propagator of mass u'' + damping u' + stiffness u = f (mass > 0,
/// damping >= 0, stiffness >= 0, h >= 0), by a scaled-and-squared Taylor series of the 2x2
/// matrix exponential (any damping regime: over-, under- or critically damped).
OscillatorStep oscillator_step(double mass, double damping, double stiffness, double h);

// ---- tracking a training run --------------------------------------------------------------------

enum class Symmetry { translation, scale, rescale, balancedness };

/// "translation", "scale", "rescale" or "balancedness".
const char* symmetry_name(Symmetry symmetry);

/// The history of one tracked group of quantities (one layer's units) over a run of K steps.
/// Quantity tensors are [K + 1, units...]: units = [J] or [J + 1] (translation; the last entry is
/// the bias sum), [C] (scale), [H] (rescale), [H, H] (balancedness). Row k is after k steps.
struct ConservedHistory {
  std::string name{};          // e.g. "rescale layers.0 -> layers.2"
  Symmetry symmetry = Symmetry::translation;
  std::vector<double> time{};  // [K + 1], t_k = sum of the first k learning rates
  Tensor measured{};           // Q computed from the parameters
  Tensor exact{};              // the exact discrete law's prediction (Note [Exact discrete laws])
  Tensor continuous{};         // Kunin's continuous-time prediction (Note [Continuous predictions])
  Tensor magnitude{};          // the size of the terms that make up Q (Note [Relative error])
};

/// max |measured - predicted| / magnitude over all entries; all three of the same shape.
double max_relative_error(const Tensor& measured, const Tensor& predicted, const Tensor& magnitude);

/// Per-row maximum of |measured - predicted| / magnitude: [K + 1, units...] -> [K + 1].
Tensor relative_error_per_step(const Tensor& measured, const Tensor& predicted, const Tensor& magnitude);

/// Records translation, scale, rescale and balancedness quantities at every step of an nn::Sgd
/// run, with their exact-law and continuous predictions. Configure with track_*() using the
/// optimizer's parameter names ("layers.0.weight"), then attach() before training. Copies share
/// one record (the optimizer's observer holds it too), so a tracker may be passed by value.
class SymmetryTracker {
 public:
  SymmetryTracker();

  /// Translation of a layer feeding softmax cross-entropy: weight:[C, J], optional bias:[C].
  SymmetryTracker& track_translation(const std::string& weight, const std::string& bias = "");
  /// Scale of a Linear feeding BatchNorm1d with eps = 0 (weight:[C, I]) or of a Conv2d feeding
  /// BatchNorm2d with eps = 0 (weight:[C, C_in, k, k]); optional bias:[C].
  SymmetryTracker& track_scale(const std::string& weight, const std::string& bias = "");
  /// Rescale of a positively homogeneous hidden layer (ReLU, leaky ReLU, identity):
  /// in_weight:[H, I], in_bias:[H] (or ""), out_weight:[O, H]; or between Conv2d layers,
  /// in_weight:[H, C, k, k], out_weight:[O, H, k', k'] (units: hidden channels).
  SymmetryTracker& track_rescale(const std::string& in_weight, const std::string& in_bias,
                                 const std::string& out_weight);
  /// Balancedness of a linear hidden layer: in_weight:[H, I], out_weight:[O, H], optional in_bias:[H]
  /// (or Conv2d weights [H, C, k, k] and [O, H, k', k']).
  SymmetryTracker& track_balancedness(const std::string& in_weight, const std::string& out_weight,
                                      const std::string& in_bias = "");
  /// Tracks every symmetry the layer sequence of `net` carries (names "layers.<i>.weight"):
  /// scale for a Linear followed by BatchNorm1d, or a Conv2d followed by BatchNorm2d, with
  /// eps = 0; rescale for Linear -> ReLU or leaky ReLU -> Linear and the same between two Conv2d;
  /// balancedness for Linear -> (identity) -> Linear and Conv2d -> (identity) -> Conv2d; and
  /// translation for a final Linear when `softmax_output` (the net's logits go to softmax
  /// cross-entropy). After a Conv2d, AvgPool2d and GlobalAvgPool2d count as identities, and a
  /// Linear after GlobalAvgPool2d pairs with the last Conv2d (its columns are channels), so the
  /// nets of nn::cnn with the global-average readout are covered. Any other layer between two
  /// weight layers (BatchNorm, Flatten) breaks the pair.
  SymmetryTracker& track_sequential(const nn::Sequential& net, bool softmax_output);

  /// Records Q at the current parameters and installs the tracker as `optimizer`'s observer.
  /// Throws std::invalid_argument on an unknown parameter name, mismatched shapes or Nesterov
  /// momentum, and std::logic_error when already attached.
  void attach(nn::Sgd& optimizer);

  /// Number of tracked groups.
  std::size_t size() const;
  /// Steps recorded so far.
  std::int64_t steps() const;
  /// The history of group i (tensors stacked from the per-step records).
  ConservedHistory history(std::size_t i) const;
  /// Worst relative error of the exact-law predictions over every group, step and unit.
  double max_exact_error() const;
  /// Worst relative error of the continuous predictions over every group, step and unit.
  double max_continuous_error() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace theta::theory
