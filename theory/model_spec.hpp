#pragma once
// MLPs trained elsewhere: a JSON description (the model.json that ntk_demo --dump writes) and
// weights named as in a PyTorch state_dict, turned into an nn::Sequential for the theory tools.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/npz.hpp"

namespace theta::theory {

/// An MLP as model.json describes it:
///   {"widths": [in, hidden..., out], "activation": "relu", "bias": true,
///    "parameterisation": "ntk" | "standard", "sigma_w": 1.41, "sigma_b": 0.1}
/// widths, activation, parameterisation, sigma_w and sigma_b are required ("bias" defaults to
/// true); other keys are ignored. The forward is nn::mlp's: Linear layers with the activation
/// between them, y = sigma_w / sqrt(in) x W^T + sigma_b b in NTK parameterisation.
struct MlpSpec {
  std::vector<std::int64_t> widths = {};
  nn::ActivationKind activation = nn::ActivationKind::relu;
  bool bias = true;
  nn::Parameterization parameterization = nn::Parameterization::ntk;
  double sigma_w = 1.0;
  double sigma_b = 0.0;
};

/// Parses model.json text; `what` names the source in errors (FormatError with the byte offset
/// for malformed JSON, the key for a missing or wrong-typed field).
MlpSpec parse_mlp_spec(std::string_view json, const std::string& what = "model.json");
/// Reads and parses a model.json file.
MlpSpec load_mlp_spec(const std::string& path);

/// Named tensors from an .npz archive, or from a directory of .npy files (the name is the file
/// name without .npy, as ntk_demo --dump and numpy.save write them).
std::vector<nn::NamedTensor> load_named_tensors(const std::string& path);

/// One Linear layer's tensors in a PyTorch state_dict: their names there and their values as given
/// (no dtype conversion).
struct StateDictLinear {
  std::string weight_name{};
  Tensor weight{};  // [out, in]
  std::string bias_name{};
  Tensor bias{};  // [out]; undefined for a model without biases
};

/// The Linear layers of an MLP with the given widths ({in, hidden..., out}), with or without
/// biases, found in `weights` named as in a PyTorch state_dict of nn.Sequential(Linear,
/// activation, Linear, ...) (the naming rules of mlp_from_state_dict below), in layer order. A
/// missing, extra or misshapen tensor is an error naming the tensor and both shapes (ShapeError)
/// or the name (FormatError); `what` names the weights' source.
std::vector<StateDictLinear> mlp_layers_from_state_dict(const std::vector<std::int64_t>& widths, bool bias,
                                                        const std::vector<nn::NamedTensor>& weights,
                                                        const std::string& what);

/// The MLP of `spec` in float64 with the given weights. Weights are named as in a PyTorch
/// state_dict of nn.Sequential(Linear, activation, Linear, ...): "<k>.weight" [out, in] and
/// "<k>.bias" [out] with k the Linear layer's index in the Sequential, under one common prefix
/// or none ("0.weight", "layers.0.weight", "net.0.weight"); the Linear layers are taken in
/// increasing k. A missing, extra or misshapen tensor is an error naming the tensor and both
/// shapes (ShapeError) or the name (FormatError); `what` names the weights' source.
std::shared_ptr<nn::Sequential> mlp_from_state_dict(const MlpSpec& spec, const std::vector<nn::NamedTensor>& weights,
                                                    const std::string& what);

}  // namespace theta::theory
