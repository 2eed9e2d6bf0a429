// Module.state_dict / load_state_dict (theta's names, and PyTorch's for MLPs), Module.named_grads,
// checkpoints and .npz archives.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.hpp"
#include "nn/checkpoint.hpp"
#include "nn/npz.hpp"
#include "nn/residual.hpp"
#include "nn_common.hpp"
#include "theory/model_spec.hpp"

namespace theta::python {

namespace {

// Note [Loading state dicts]
// load_state_dict reads two namings. theta's own (named_parameters / named_buffers, what
// state_dict() writes) is used whenever one of the given names is among the model's. Otherwise
// the dict is read as a PyTorch state_dict of nn.Sequential(Linear, activation, Linear, ...)
// ("0.weight", "layers.2.bias", any common prefix; weight [out, in] in both libraries), which
// theory::mlp_layers_from_state_dict maps onto the Linear layers in order; that needs a model
// that is an MLP in the same sense: a Sequential of Linear layers and parameter-free layers,
// widths chaining, all with or all without biases. Either way every tensor is checked (name,
// shape, dtype: no silent cast) before any is copied, so an error leaves the model untouched.
// `strict` applies to theta's names (missing and unexpected names are then skipped and reported);
// a PyTorch-named dict must always describe every Linear layer.

using Assignment = std::pair<Tensor, Tensor>;  // (the model's tensor, the value to copy into it)

struct LoadPlan {
  std::vector<Assignment> copies{};
  std::vector<std::string> missing{}, unexpected{};
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
  return out;
}

// The dtype and shape of `value` (the source named `source`) against the model's `target` (named
// `target_name`).
void check_compatible(const std::string& source, const Tensor& value, const std::string& target_name,
                      const Tensor& target) {
  THETA_CHECK(value.dtype() == target.dtype(), DTypeError, "load_state_dict: '", source, "' is ",
              dtype_name(value.dtype()), " but the model's '", target_name, "' is ", dtype_name(target.dtype()),
              "; theta never casts silently: convert it first (numpy: a.astype(numpy.", dtype_name(target.dtype()),
              "), torch: t.to(torch.", dtype_name(target.dtype()), ") or model.double())");
  THETA_CHECK(value.shape() == target.shape(), ShapeError, "load_state_dict: '", source, "' has shape ",
              shape_str(value.shape()), " but the model's '", target_name, "' has shape ", shape_str(target.shape()));
}

LoadPlan plan_theta_names(const std::vector<NamedTensor>& given, const std::vector<NamedTensor>& targets, bool strict) {
  LoadPlan plan;
  std::map<std::string, Tensor> by_name(targets.begin(), targets.end());
  std::set<std::string> seen;
  for (const auto& [name, value] : given) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      plan.unexpected.push_back(name);
      continue;
    }
    seen.insert(name);
    check_compatible(name, value, name, it->second);
    plan.copies.emplace_back(it->second, value);
  }
  for (const auto& [name, t] : targets)
    if (!seen.count(name)) plan.missing.push_back(name);
  if (strict && (!plan.missing.empty() || !plan.unexpected.empty())) {
    std::string message = "load_state_dict: the names do not match the model's (strict=True)";
    if (!plan.missing.empty()) message += "; missing: " + join(plan.missing);
    if (!plan.unexpected.empty()) message += "; unexpected: " + join(plan.unexpected);
    THETA_THROW(std::invalid_argument, message);
  }
  return plan;
}

// The Linear layers of `model` when it is an MLP in the sense of Note [Loading state dicts], with
// their names; empty (and `why` set) otherwise.
std::vector<std::pair<std::string, nn::Linear*>> mlp_linears(nn::Module& model, std::string& why) {
  std::vector<std::pair<std::string, nn::Linear*>> out;
  auto* seq = dynamic_cast<nn::Sequential*>(&model);
  if (seq == nullptr) {
    why = "the model is not a Sequential";
    return {};
  }
  for (std::size_t i = 0; i < seq->size(); ++i) {
    nn::Module& layer = seq->at(i);
    const std::string name = "layers." + std::to_string(i);
    if (auto* linear = dynamic_cast<nn::Linear*>(&layer)) {
      if (!out.empty() && out.back().second->out_features() != linear->in_features()) {
        why = "its Linear layers do not chain (" + out.back().first + " has " +
              std::to_string(out.back().second->out_features()) + " outputs, " + name + " " +
              std::to_string(linear->in_features()) + " inputs)";
        return {};
      }
      if (!out.empty() && out.back().second->options().bias != linear->options().bias) {
        why = "some of its Linear layers have a bias and some do not";
        return {};
      }
      out.emplace_back(name, linear);
    } else if (!layer.named_parameters().empty() || !layer.named_buffers().empty()) {
      why = name + " (" + layer.describe() + ") has parameters or buffers but is not Linear";
      return {};
    }
  }
  if (out.empty()) why = "it has no Linear layer";
  return out;
}

LoadPlan plan_torch_names(nn::Module& model, const std::vector<NamedTensor>& given,
                          const std::vector<NamedTensor>& targets) {
  std::string why;
  const auto linears = mlp_linears(model, why);
  if (linears.empty()) {
    std::vector<std::string> given_names, model_names;
    for (const auto& [n, t] : given) given_names.push_back(n);
    for (const auto& [n, t] : targets) model_names.push_back(n);
    THETA_THROW(std::invalid_argument, "load_state_dict: none of the names ", join(given_names),
                " is among the model's (", join(model_names),
                "), and PyTorch-named state dicts are read only into MLPs (a Sequential of Linear and "
                "parameter-free layers), which this model is not: ",
                why);
  }
  std::vector<std::int64_t> widths{linears.front().second->in_features()};
  for (const auto& [name, linear] : linears) widths.push_back(linear->out_features());
  const bool bias = linears.front().second->options().bias;
  const auto layers = theory::mlp_layers_from_state_dict(widths, bias, given, "load_state_dict");
  LoadPlan plan;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const auto& [name, linear] = linears[l];
    check_compatible(layers[l].weight_name, layers[l].weight, name + ".weight", linear->weight().value());
    plan.copies.emplace_back(linear->weight().value(), layers[l].weight);
    if (bias) {
      check_compatible(layers[l].bias_name, layers[l].bias, name + ".bias", linear->bias().value());
      plan.copies.emplace_back(linear->bias().value(), layers[l].bias);
    }
  }
  return plan;
}

std::vector<NamedTensor> model_state(const nn::Module& model) {
  std::vector<NamedTensor> out;
  for (const auto& [name, p] : model.named_parameters()) out.emplace_back(name, p.value());
  for (const auto& [name, b] : model.named_buffers()) out.emplace_back(name, b);
  return out;
}

void bind_module_state(py::module_& m) {
  auto module = py::reinterpret_borrow<py::class_<nn::Module, std::shared_ptr<nn::Module>>>(m.attr("Module"));
  module
      .def(
          "state_dict",
          [](const nn::Module& self) {
            std::vector<NamedTensor> state;
            {
              ReleaseGil released;
              auto lock = lock_module(self);
              for (auto& [name, t] : model_state(self)) state.emplace_back(name, t.clone());
            }
            py::dict out;
            for (const auto& [name, t] : state) out[py::str(name)] = array_from_tensor(t);
            return out;
          },
          "{name: array}: copies of the parameters, then the buffers, named as named_parameters() / "
          "named_buffers() name them.")
      .def(
          "load_state_dict",
          [](nn::Module& self, const py::dict& state, bool strict) {
            const std::vector<NamedTensor> given = named_tensors_from_dict(state, "load_state_dict");
            LoadPlan plan;
            {
              ReleaseGil released;
              auto lock = lock_module(self);
              const auto targets = model_state(self);
              bool theta_names = false;
              for (const auto& [name, t] : given)
                for (const auto& [target, u] : targets) theta_names |= name == target;
              plan = theta_names || given.empty() ? plan_theta_names(given, targets, strict)
                                                  : plan_torch_names(self, given, targets);
              for (auto& [target, value] : plan.copies) target.copy_(value);
              plan.copies.clear();
            }
            return py::make_tuple(plan.missing, plan.unexpected);
          },
          py::arg("state_dict"), py::arg("strict") = true, R"doc(
Copies the values of {name: array} into the model's parameters and buffers. Names are theta's
(state_dict()'s) or, for an MLP (a Sequential of Linear and parameter-free layers), PyTorch's for
nn.Sequential(Linear, ReLU, ...): "0.weight" / "layers.2.bias" with weight [out, in]. Values may be
NumPy arrays or anything numpy.asarray takes (torch tensors: t.numpy() or the tensor itself). A
missing or unexpected name (strict=True, theta's names) or a wrong shape is a ValueError naming the
tensor and both shapes; a wrong dtype is a TypeError (theta never casts). Nothing changes on error.
Returns (missing_keys, unexpected_keys), both empty unless strict=False.
)doc")
      .def(
          "named_grads",
          [](const nn::Module& self) {
            std::vector<std::pair<std::string, Tensor>> grads;
            {
              ReleaseGil released;
              auto lock = lock_module(self);
              for (const auto& [name, p] : self.named_parameters())
                grads.emplace_back(name, p.grad().defined() ? p.grad().clone() : Tensor());
            }
            py::dict out;
            for (const auto& [name, g] : grads)
              out[py::str(name)] = g.defined() ? py::object(array_from_tensor(g)) : py::object(py::none());
            return out;
          },
          "{name: array or None}: copies of the parameters' accumulated gradients (None where there is none).");
}

void bind_checkpoints(py::module_& m) {
  m.def(
      "save_checkpoint",
      [](const py::handle& path, nn::Module& model, BoundOptimizer* optimizer) {
        const std::string file = path_arg(path, "save_checkpoint: path");
        if (optimizer != nullptr) check_same_model(*optimizer, model, "save_checkpoint");
        ReleaseGil released;
        auto lock = lock_module(model);
        nn::save_checkpoint(file, model, optimizer != nullptr ? optimizer->impl.get() : nullptr);
      },
      py::arg("path"), py::arg("model"), py::arg("optimizer") = py::none(),
      "Writes the model's parameters and buffers, and the optimizer's state when given, to an .npz file "
      "(np.load reads it) atomically: a crash never leaves a partial checkpoint.");
  m.def(
      "load_checkpoint",
      [](const py::handle& path, nn::Module& model, BoundOptimizer* optimizer) {
        const std::string file = path_arg(path, "load_checkpoint: path");
        if (optimizer != nullptr) check_same_model(*optimizer, model, "load_checkpoint");
        ReleaseGil released;
        auto lock = lock_module(model);
        nn::load_checkpoint(file, model, optimizer != nullptr ? optimizer->impl.get() : nullptr);
      },
      py::arg("path"), py::arg("model"), py::arg("optimizer") = py::none(),
      "Restores what save_checkpoint wrote into a model of the same structure (and the optimizer, when "
      "given). Everything is checked first: on error (ValueError naming the file and tensor) nothing changes.");
  m.def(
      "save_npz",
      [](const py::handle& path, const py::dict& arrays) {
        const std::string file = path_arg(path, "save_npz: path");
        const auto tensors = named_tensors_from_dict(arrays, "save_npz");
        ReleaseGil released;
        nn::save_npz(file, tensors);
      },
      py::arg("path"), py::arg("arrays"),
      "Writes {name: array} as an uncompressed .npz archive (np.load reads it), atomically.");
  m.def(
      "load_npz",
      [](const py::handle& path) {
        const std::string file = path_arg(path, "load_npz: path");
        std::vector<NamedTensor> tensors;
        {
          ReleaseGil released;
          tensors = nn::load_npz(file);
        }
        py::dict out;
        for (const auto& [name, t] : tensors) out[py::str(name)] = array_from_tensor(t);
        return out;
      },
      py::arg("path"), "Reads an uncompressed .npz archive (np.savez's) as {name: array}, checking every CRC-32.");
}

}  // namespace

std::vector<NamedTensor> named_tensors_from_dict(const py::dict& state, const char* op) {
  py::object asarray = py::module_::import("numpy").attr("asarray");
  std::vector<NamedTensor> out;
  for (const auto& [key, value] : state) {
    if (!py::isinstance<py::str>(key))
      throw py::type_error(std::string(op) + ": keys must be str, got " + std::string(py::str(py::type::of(key))));
    const auto name = key.cast<std::string>();
    py::array array = asarray(value);
    theta_dtype(array.dtype(), (std::string(op) + ": '" + name + "'").c_str());
    out.emplace_back(name, tensor_from_array(array));
  }
  return out;
}

py::dict dict_of_copies(const std::vector<NamedTensor>& tensors) {
  py::dict out;
  for (const auto& [name, t] : tensors) out[py::str(name)] = array_from_tensor(t.clone());
  return out;
}

void bind_nn_state(py::module_& m) {
  bind_module_state(m);
  bind_checkpoints(m);
}

}  // namespace theta::python
