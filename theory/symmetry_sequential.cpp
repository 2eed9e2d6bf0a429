// SymmetryTracker::track_sequential: which symmetry laws the layer sequence of a network carries.

#include <string>

#include "nn/conv.hpp"
#include "theory/symmetry.hpp"

namespace theta::theory {

// Note [Pooling between weight layers]
// AvgPool2d and GlobalAvgPool2d act on each channel alone, linearly, so they commute with scaling a
// channel by a > 0 and with mixing channels by any matrix A. Between two Conv2d layers they are
// therefore as transparent as the identity: Conv2d -> ReLU -> AvgPool2d -> Conv2d keeps the rescale
// symmetry, Conv2d -> AvgPool2d -> Conv2d the balancedness one. GlobalAvgPool2d turns channel c
// into feature c of [n, C], so a Linear after it pairs with the Conv2d before it (its column c
// against the Conv2d's output channel c); after a GlobalAvgPool2d nothing but activations may
// follow before that Linear. Flatten is not looked through: it spreads a channel over H W features.

SymmetryTracker& SymmetryTracker::track_sequential(const nn::Sequential& net, bool softmax_output) {
  auto prefix = [](std::size_t i) { return "layers." + std::to_string(i) + "."; };
  // The layers that carry the weights of the laws; the others are looked through or break a pair.
  enum class Kind { other, linear, conv };
  auto kind_of = [&](std::size_t i) {
    if (dynamic_cast<const nn::Linear*>(&net.at(i))) return Kind::linear;
    if (dynamic_cast<const nn::Conv2d*>(&net.at(i))) return Kind::conv;
    return Kind::other;
  };
  auto bias_of = [&](std::size_t i, Kind kind) {
    const bool bias = kind == Kind::linear ? dynamic_cast<const nn::Linear&>(net.at(i)).options().bias
                                           : dynamic_cast<const nn::Conv2d&>(net.at(i)).options().bias;
    return bias ? prefix(i) + "bias" : std::string();
  };
  const std::size_t n = net.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Kind kind = kind_of(i);
    if (kind == Kind::other) continue;
    const std::string weight = prefix(i) + "weight", bias = bias_of(i, kind);
    if (i + 1 < n) {
      const auto* bn1 = dynamic_cast<const nn::BatchNorm1d*>(&net.at(i + 1));
      const auto* bn2 = dynamic_cast<const nn::BatchNorm2d*>(&net.at(i + 1));
      const bool scale_invariant =
          kind == Kind::linear ? bn1 && bn1->options().eps == 0.0 : bn2 && bn2->options().eps == 0.0;
      if (scale_invariant) track_scale(weight, bias);
    }
    // The next weight layer, reached through positively homogeneous activations only, and for a
    // Conv2d also through pooling (Note [Pooling between weight layers]).
    bool homogeneous = true, all_identity = true, global_pool = false;
    std::size_t j = i + 1;
    for (; j < n && kind_of(j) == Kind::other; ++j) {
      const auto* act = dynamic_cast<const nn::Activation*>(&net.at(j));
      const bool pool = kind == Kind::conv && !global_pool && dynamic_cast<const nn::AvgPool2d*>(&net.at(j));
      const bool gap = kind == Kind::conv && !global_pool && dynamic_cast<const nn::GlobalAvgPool2d*>(&net.at(j));
      const bool identity = pool || gap || (act && act->kind() == nn::ActivationKind::identity);
      const bool relu_like =
          act && (act->kind() == nn::ActivationKind::relu || act->kind() == nn::ActivationKind::leaky_relu);
      homogeneous = homogeneous && (identity || relu_like);
      all_identity = all_identity && identity;
      global_pool = global_pool || gap;
    }
    // Conv2d -> Conv2d, Linear -> Linear, or Conv2d -> GlobalAvgPool2d -> Linear (channels as features).
    const Kind next = j < n ? kind_of(j) : Kind::other;
    const bool paired = global_pool ? next == Kind::linear : next == kind;
    if (paired && homogeneous) {
      const std::string out = prefix(j) + "weight";
      if (all_identity) track_balancedness(weight, out, bias);
      else track_rescale(weight, bias, out);
    }
    if (i + 1 == n && softmax_output && kind == Kind::linear) track_translation(weight, bias);
  }
  return *this;
}

}  // namespace theta::theory
