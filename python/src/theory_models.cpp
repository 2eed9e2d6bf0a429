// theta.theory: MLPs trained elsewhere (model.json specs and PyTorch-style state dicts).

#include <string>
#include <utility>
#include <vector>

#include "theory/model_spec.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

const char* parameterization_name(nn::Parameterization p) {
  return p == nn::Parameterization::ntk ? "ntk" : "standard";
}

nn::Parameterization parameterization_from_name(const std::string& name) {
  if (name == "ntk") return nn::Parameterization::ntk;
  if (name == "standard") return nn::Parameterization::standard;
  throw std::invalid_argument("unknown parameterization '" + name + "': expected \"standard\" or \"ntk\"");
}

py::dict spec_dict(const theory::MlpSpec& spec) {
  py::dict out;
  out["widths"] = spec.widths;
  out["activation"] = nn::activation_name(spec.activation);
  out["bias"] = spec.bias;
  out["parameterisation"] = parameterization_name(spec.parameterization);
  out["sigma_w"] = spec.sigma_w;
  out["sigma_b"] = spec.sigma_b;
  return out;
}

}  // namespace

void bind_theory_models(py::module_& m) {
  m.def(
      "parse_mlp_spec", [](const std::string& json) { return spec_dict(theory::parse_mlp_spec(json, "model.json")); },
      py::arg("json"),
      "Parses model.json text ({\"widths\", \"activation\", \"bias\", \"parameterisation\", \"sigma_w\", "
      "\"sigma_b\"}) into a dict with every field; ValueError for malformed JSON or a missing field.");
  m.def(
      "load_mlp_spec", [](const std::string& path) { return spec_dict(theory::load_mlp_spec(path)); }, py::arg("path"),
      "Reads and parses a model.json file (see parse_mlp_spec).");
  m.def(
      "load_named_tensors",
      [](const std::string& path) {
        std::vector<nn::NamedTensor> tensors;
        {
          ReleaseGil released;
          tensors = theory::load_named_tensors(path);
        }
        py::dict out;
        for (const auto& [name, t] : tensors) out[py::str(name)] = array_from_tensor(t);
        return out;
      },
      py::arg("path"), "{name: array} from an .npz archive or a directory of .npy files.");
  m.def(
      "_mlp_from_state_dict",
      [](const std::vector<std::pair<std::string, Tensor>>& weights, const std::vector<std::int64_t>& widths,
         const std::string& activation, bool bias, const std::string& parameterisation, double sigma_w,
         double sigma_b) {
        theory::MlpSpec spec;
        spec.widths = widths;
        spec.activation = activation_kind(activation);
        spec.bias = bias;
        spec.parameterization = parameterization_from_name(parameterisation);
        spec.sigma_w = sigma_w;
        spec.sigma_b = sigma_b;
        ReleaseGil released;
        return std::shared_ptr<nn::Module>(theory::mlp_from_state_dict(spec, weights, "state_dict"));
      },
      py::arg("weights"), py::arg("widths"), py::arg("activation"), py::arg("bias"), py::arg("parameterisation"),
      py::arg("sigma_w"), py::arg("sigma_b"),
      "mlp_from_state_dict's core: (name, array) pairs and every spec field given explicitly.");
}

}  // namespace theta::python
