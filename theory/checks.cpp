#include "theory/checks.hpp"

#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "tensor/ops.hpp"

namespace theta::theory::detail {

// Note [Non-finite values]
// theta's policy: NaN and Inf never pass silently through a theory tool. Scalar arguments (times,
// step sizes, scales) are checked on entry; data and parameters are checked where a kernel or an
// operator reads them: the empirical NTK checks its inputs, the model's parameters and outputs,
// and the factors every kernel is built from (output gradients, Jacobian rows: a finite output can
// have infinite derivatives, as sqrt at 0), a width-th of the kernel's size; the Hessian tools
// check every operator application. The checks are O(size) passes (SIMD max/min reductions),
// small next to the gemms and backward passes they guard. Training (nn::fit) has its own policy: it stops
// at the first non-finite loss.

void require_finite(double value, const char* op, const char* name) {
  THETA_CHECK(std::isfinite(value), std::invalid_argument, op, ": ", name, " must be finite, got ", value);
}

void require_finite(const Tensor& t, const char* op, const char* name) {
  THETA_CHECK(all_finite(t), std::invalid_argument, op, ": ", name, " ", shape_str(t.shape()),
              " contains NaN or Inf");
}

std::vector<std::pair<std::string, autograd::Var>> unshared_parameters(const nn::Module& model, const char* op) {
  auto params = model.named_parameters();
  THETA_CHECK(!params.empty(), std::invalid_argument, op, ": ", model.describe(), " has no parameters");
  std::set<const void*> seen;
  for (const auto& [name, p] : params)
    THETA_CHECK(seen.insert(p.id()).second, std::invalid_argument, op, ": parameter '", name,
                "' is listed twice (a module registered twice); each parameter must be listed once");
  return params;
}

void require_parameter_vector(const Tensor& v, std::int64_t size, const char* op, const std::string& name) {
  THETA_CHECK(v.defined() && v.dim() == 1 && v.size(0) == size, ShapeError, op, ": ", name, " must be [", size,
              "] (the model's parameter count), got ", v.defined() ? shape_str(v.shape()) : std::string("undefined"));
  THETA_CHECK(is_floating(v.dtype()), DTypeError, op, ": ", name, " must be floating, got ", dtype_name(v.dtype()));
  require_finite(v, op, name.c_str());
}

}  // namespace theta::theory::detail
