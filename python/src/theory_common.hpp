#pragma once
// Shared by the theta.theory translation units: losses and activations chosen by name, and the
// argument checks every theory binding makes before it releases the GIL.

#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "nn/functional.hpp"
#include "nn/module.hpp"
#include "nn/train.hpp"
#include "theory/ntk.hpp"

namespace theta::python {

/// The batch loss "mse" (mean over every element, torch.nn.MSELoss) or "cross_entropy" (mean over
/// samples of softmax cross-entropy with int64 labels, torch.nn.CrossEntropyLoss) of (output, y).
/// Any other name raises ValueError listing the valid ones.
nn::LossFn batch_loss(const std::string& name);

/// The per-sample form of the same loss with the targets fixed: "mse" gives the mean over outputs
/// of row i's squared errors (so their mean over rows is the batch "mse"), "cross_entropy" row i's
/// cross-entropy. y:[n, O] (mse) or [n] int64 (cross_entropy).
theory::PerSampleLoss per_sample_loss(const std::string& name, const Tensor& y);

/// "relu" -> ActivationKind::relu; ValueError listing the valid names otherwise.
nn::ActivationKind activation_kind(const std::string& name);

/// Raises ValueError unless x is a non-empty [n, d] batch; `what` names the argument.
void require_batch(const Tensor& x, const char* function, const char* what);

/// Raises ValueError unless x1 and x2 have the same width.
void require_same_width(const Tensor& x1, const Tensor& x2, const char* function);

void bind_theory_ntk(py::module_& m);
void bind_theory_cntk(py::module_& m);  // analytic convolutional kernels
void bind_theory_hessian(py::module_& m);
void bind_theory_dynamics(py::module_& m);  // symmetries and deep linear networks
void bind_theory_models(py::module_& m);    // model.json specs and state dicts
void bind_theory_similarity(py::module_& m);  // CKA and CCA
void bind_theory_implicit_bias(py::module_& m);  // least squares, max margin, diagonal nets
void bind_theory_landscape(py::module_& m);   // loss landscapes, trajectory PCA, lazy scaling

}  // namespace theta::python
