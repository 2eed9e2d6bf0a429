// theta.theory: the shared helpers of the theory bindings and the area's entry point. The
// functions themselves live in theory_ntk.cpp (kernels), theory_cntk.cpp (convolutional kernels),
// theory_hessian.cpp (Hessian spectra), theory_dynamics.cpp (symmetries, deep linear networks),
// theory_similarity.cpp (CKA, CCA), theory_implicit_bias.cpp (least squares, max margin, diagonal
// nets), theory_landscape.cpp (loss landscapes, trajectory PCA, lazy scaling) and
// theory_models.cpp (model specs).

#include <sstream>

#include "tensor/error.hpp"
#include "tensor/shape.hpp"
#include "theory_common.hpp"

namespace theta::python {

nn::LossFn batch_loss(const std::string& name) {
  if (name == "mse") {
    return [](const autograd::Var& out, const Tensor& y) { return nn::mse_loss(out, autograd::Var(y)); };
  }
  if (name == "cross_entropy") {
    return [](const autograd::Var& out, const Tensor& y) { return nn::cross_entropy(out, y); };
  }
  throw std::invalid_argument("unknown loss '" + name + "': expected \"mse\" or \"cross_entropy\"");
}

theory::PerSampleLoss per_sample_loss(const std::string& name, const Tensor& y) {
  if (name == "mse") {
    return [y](const autograd::Var& out) {
      return autograd::mean(nn::mse_loss(out, autograd::Var(y), nn::Reduction::none), {1});
    };
  }
  if (name == "cross_entropy") {
    return [y](const autograd::Var& out) { return nn::cross_entropy(out, y, nn::Reduction::none); };
  }
  throw std::invalid_argument("unknown loss '" + name + "': expected \"mse\" or \"cross_entropy\"");
}

nn::ActivationKind activation_kind(const std::string& name) { return nn::activation_from_name(name); }

void require_batch(const Tensor& x, const char* function, const char* what) {
  THETA_CHECK(x.dim() == 2 && x.size(0) > 0, ShapeError, function, ": ", what,
              " must be a non-empty batch [n, d], got shape ", shape_str(x.shape()));
}

void require_same_width(const Tensor& x1, const Tensor& x2, const char* function) {
  THETA_CHECK(x1.size(1) == x2.size(1), ShapeError, function, ": x1 ", shape_str(x1.shape()), " and x2 ",
              shape_str(x2.shape()), " must have the same width");
}

void bind_theory(py::module_& m) {
  bind_theory_models(m);
  bind_theory_ntk(m);
  bind_theory_cntk(m);
  bind_theory_hessian(m);
  bind_theory_dynamics(m);
  bind_theory_similarity(m);
  bind_theory_implicit_bias(m);
  bind_theory_landscape(m);
}

}  // namespace theta::python
