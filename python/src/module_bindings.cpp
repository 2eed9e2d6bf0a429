// theta.nn.Module: the base class every bound layer and model derives from, shared by the nn and
// theory bindings (theory functions take any Module).

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "autograd/var.hpp"
#include "bindings.hpp"
#include "nn/module.hpp"

namespace theta::python {

// Note [One call per module]
// A Module is not safe to use from two threads at once (functional_call swaps its parameters in
// and out, training writes them). Python threads can now run theta calls concurrently, since long
// calls release the GIL, so every bound call that uses a Module holds that Module's lock for its
// duration: two threads on two models run in parallel, two on one model take turns. The lock is
// taken after the GIL is released (a thread waiting for it must not hold the GIL, or the holder
// could not poll for Ctrl-C), and it is keyed by the root module the call received. A call too
// short to be worth releasing the GIL may try the lock while holding it (try_lock_module), since
// trying never waits, and fall back to releasing the GIL and waiting when the lock is taken.
namespace {
std::mutex& module_mutex(const nn::Module& module) {
  // Striped locks: a fixed table indexed by the module's address, so nothing grows or dangles.
  // Two models share a stripe with probability 1/1024 and then merely take turns.
  static std::array<std::mutex, 1024> stripes;
  const auto address = reinterpret_cast<std::uintptr_t>(&module);
  return stripes[(address / alignof(nn::Module)) % stripes.size()];
}
}  // namespace

std::unique_lock<std::mutex> lock_module(const nn::Module& module) {
  return std::unique_lock<std::mutex>(module_mutex(module));
}

std::unique_lock<std::mutex> try_lock_module(const nn::Module& module) {
  return std::unique_lock<std::mutex>(module_mutex(module), std::try_to_lock);
}

void bind_module(py::module_& m) {
  py::class_<nn::Module, std::shared_ptr<nn::Module>>(m, "Module", R"doc(
A theta module (layer or model). Calling it on an array runs its forward pass without recording a
graph and returns a NumPy array; parameters and buffers are NumPy views of the module's own memory.
)doc")
      .def(
          "__call__",
          [](nn::Module& self, const Tensor& x) {
            ReleaseGil released;
            auto lock = lock_module(self);
            autograd::NoGradGuard no_grad;
            return self(autograd::Var(x)).value();
          },
          py::arg("x"), "The forward pass on a batch (no graph is recorded).")
      .def(
          "__call__",
          [](nn::Module& self, const autograd::Var& x) {
            ReleaseGil released;
            auto lock = lock_module(self);
            return self(x);
          },
          py::arg("x"),
          "The forward pass on a theta.autograd.Var: records the graph (as grad mode allows) and returns a Var, "
          "so the result can be differentiated with respect to x and the parameters.")
      .def(
          "named_parameters",
          [](const nn::Module& self) {
            py::dict out;
            for (const auto& [name, var] : self.named_parameters()) out[py::str(name)] = array_from_tensor(var.value());
            return out;
          },
          "{name: array}: views of the parameters in registration order (writes change the module).")
      .def(
          "named_buffers",
          [](const nn::Module& self) {
            py::dict out;
            for (const auto& [name, value] : self.named_buffers()) out[py::str(name)] = array_from_tensor(value);
            return out;
          },
          "{name: array}: views of the buffers (BatchNorm running statistics).")
      .def_property_readonly("parameter_count", &nn::Module::parameter_count, "Number of scalar parameters.")
      .def("train", &nn::Module::train, py::arg("mode") = true, "Training mode (the default), recursively.")
      .def("eval", &nn::Module::eval, "Evaluation mode, recursively.")
      .def_property_readonly("training", &nn::Module::training)
      .def("zero_grad", &nn::Module::zero_grad)
      .def(
          "clone", [](const nn::Module& self) { return std::shared_ptr<nn::Module>(self.clone()); },
          "A deep copy: same configuration, parameters and buffers copied, nothing shared.")
      .def("describe", &nn::Module::describe)
      .def("__repr__", [](const nn::Module& self) { return "theta.nn." + self.describe(); });
}

}  // namespace theta::python
