#include "nn/residual.hpp"

#include <sstream>
#include <stdexcept>
#include <utility>

namespace theta::nn {

// ---- Flatten --------------------------------------------------------------------------------

Var Flatten::forward(const Var& x) {
  THETA_CHECK(x.dim() >= 1, ShapeError, "Flatten: input ", shape_str(x.shape()),
              " has no batch axis (expected [n, d1, d2, ...])");
  std::int64_t features = 1;
  for (std::int64_t d = 1; d < x.dim(); ++d) features *= x.size(d);
  return autograd::reshape(x, {x.size(0), features});
}

// ---- Residual -------------------------------------------------------------------------------

Residual::Residual(std::shared_ptr<Module> body, std::shared_ptr<Module> projection)
    : has_projection_(projection != nullptr) {
  THETA_CHECK(body != nullptr, std::invalid_argument, "Residual: body is null");
  register_module("body", std::move(body));
  if (projection) register_module("projection", std::move(projection));
}

Var Residual::forward(const Var& x) {
  const Var branch = body()(x);
  const Var shortcut = has_projection_ ? (*projection())(x) : x;
  THETA_CHECK(branch.shape() == shortcut.shape(), ShapeError, describe(), ": body output ",
              shape_str(branch.shape()), " and shortcut ", shape_str(shortcut.shape()), " differ for input ",
              shape_str(x.shape()),
              has_projection_ ? " (the projection must map the input to the body's output shape)"
                              : " (give a projection, e.g. a Linear layer, to map the shortcut to the body's shape)");
  THETA_CHECK(branch.dtype() == shortcut.dtype(), DTypeError, describe(), ": body output is ",
              dtype_name(branch.dtype()), ", shortcut is ", dtype_name(shortcut.dtype()));
  return branch + shortcut;
}

std::string Residual::describe() const {
  std::ostringstream out;
  out << "Residual(" << body().describe();
  if (has_projection_) out << ", projection " << projection()->describe();
  out << ")";
  return out.str();
}

// ---- residual MLP ---------------------------------------------------------------------------

std::shared_ptr<Sequential> residual_mlp(const ResidualMlpOptions& options, Rng& rng) {
  THETA_CHECK(options.in_features > 0 && options.width > 0 && options.out_features > 0, ShapeError,
              "residual_mlp: widths must be positive, got ", options.in_features, " -> ", options.width,
              " -> ", options.out_features);
  THETA_CHECK(options.blocks >= 0, std::invalid_argument, "residual_mlp: blocks must be >= 0, got ",
              options.blocks);
  const LinearOptions linear{.bias = options.bias,
                             .parameterization = options.parameterization,
                             .sigma_w = options.sigma_w,
                             .sigma_b = options.sigma_b,
                             .dtype = options.dtype};
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Linear>(options.in_features, options.width, rng, linear));
  for (std::int64_t b = 0; b < options.blocks; ++b) {
    auto body = std::make_shared<Sequential>();
    body->add(std::make_shared<Activation>(options.activation));
    body->add(std::make_shared<Linear>(options.width, options.width, rng, linear));
    net->add(std::make_shared<Residual>(std::move(body)));
  }
  net->add(std::make_shared<Activation>(options.activation));
  net->add(std::make_shared<Linear>(options.width, options.out_features, rng, linear));
  return net;
}

}  // namespace theta::nn
