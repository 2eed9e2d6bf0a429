// theta.nn: the Module base class, then layers, convolutional layers, state dicts and checkpoints, losses and
// evaluation, optimisers and training, data sets (one translation unit each).

#include "bindings.hpp"
#include "nn_common.hpp"

namespace theta::python {

void bind_nn(py::module_& m) {
  bind_module(m);
  bind_nn_layers(m);
  bind_nn_conv(m);
  bind_nn_state(m);
  bind_nn_functional(m);
  bind_nn_training(m);
  bind_nn_data(m);
}

}  // namespace theta::python
