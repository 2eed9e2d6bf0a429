#pragma once
// Test support: the tensor ops under test, each paired with its naive reference and the input
// domain it is checked on. Shared by the per-op tests and the per-architecture kernel tests.

#include <cmath>
#include <functional>
#include <vector>

#include "tensor/ops.hpp"
#include "tests/support/reference.hpp"

namespace theta::ref {

/// A unary op, its reference on one double, and where its inputs are drawn from.
struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> want;
  Domain domain;
};

/// Every unary op (pow at p = 2, 3, -1, 0, 0.5, 1.7), the scalar operators, and their references.
inline std::vector<UnaryCase> unary_cases() {
  const Domain any{-3.0, 3.0};
  const Domain positive{0.05, 4.0};
  const Domain nonzero{-3.0, 3.0, true};
  const Domain log1p_domain{-0.9, 3.0};
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, any},
      {"operator-", [](const Tensor& x) { return -x; }, [](double v) { return -v; }, any},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::fabs(v); }, any},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, any},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, positive},
      {"log1p", [](const Tensor& x) { return log1p(x); }, [](double v) { return std::log1p(v); },
       log1p_domain},
      {"expm1", [](const Tensor& x) { return expm1(x); }, [](double v) { return std::expm1(v); }, any},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, positive},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double v) { return 1.0 / std::sqrt(v); },
       positive},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, any},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
       [](double v) { return 1.0 / (1.0 + std::exp(-v)); }, any},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; }, any},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double v) { return std::sin(v); }, any},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double v) { return std::cos(v); }, any},
      {"square", [](const Tensor& x) { return square(x); }, [](double v) { return v * v; }, any},
      {"sign", [](const Tensor& x) { return sign(x); },
       [](double v) { return v > 0   ? 1.0
                             : v < 0 ? -1.0
                                     : 0.0; }, Domain{-3.0, 3.0, false, true}},
      {"erf", [](const Tensor& x) { return erf(x); }, [](double v) { return std::erf(v); }, any},
      {"reciprocal", [](const Tensor& x) { return reciprocal(x); }, [](double v) { return 1.0 / v; },
       nonzero},
      {"pow 2", [](const Tensor& x) { return pow(x, 2.0); }, [](double v) { return v * v; }, any},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, [](double v) { return v * v * v; }, any},
      {"pow -1", [](const Tensor& x) { return pow(x, -1.0); }, [](double v) { return 1.0 / v; }, nonzero},
      {"pow 0", [](const Tensor& x) { return pow(x, 0.0); }, [](double) { return 1.0; }, any},
      {"pow 0.5", [](const Tensor& x) { return pow(x, 0.5); }, [](double v) { return std::sqrt(v); },
       positive},
      {"pow 1.7", [](const Tensor& x) { return pow(x, 1.7); }, [](double v) { return std::pow(v, 1.7); },
       positive},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
       [](double v) { return v < -0.5  ? -0.5
                             : v > 0.7 ? 0.7
                                       : v; }, any},
      {"scalar ops", [](const Tensor& x) { return (2.0 * x + 1.0) / 4.0 - 0.5; },
       [](double v) { return (2.0 * v + 1.0) / 4.0 - 0.5; }, any},
      {"scalar on the left", [](const Tensor& x) { return 3.0 - 1.0 / x; },
       [](double v) { return 3.0 - 1.0 / v; }, nonzero},
  };
}

/// A binary op, its reference, and its operands' domains. `exact` ops are correctly rounded:
/// the reference computed in double and rounded to the dtype must match bit for bit (double
/// has enough precision that this double rounding is harmless for + - * / and comparisons).
struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> want;
  Domain a_domain;
  Domain b_domain;
  bool exact = true;
};

/// Every broadcasting binary op and operator, with its reference.
inline std::vector<BinaryCase> binary_cases() {
  const Domain any{-3.0, 3.0};
  const Domain nonzero{-3.0, 3.0, true};
  const Domain positive{0.1, 3.0};
  const Domain ints{-2.0, 3.0, false, true};  // {-2, ..., 2}: frequent ties
  auto cmp = [](bool v) { return v ? 1.0 : 0.0; };
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
       [](double a, double b) { return a + b; }, any, any},
      {"operator+", [](const Tensor& a, const Tensor& b) { return a + b; },
       [](double a, double b) { return a + b; }, any, any},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
       [](double a, double b) { return a - b; }, any, any},
      {"operator-", [](const Tensor& a, const Tensor& b) { return a - b; },
       [](double a, double b) { return a - b; }, any, any},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
       [](double a, double b) { return a * b; }, any, any},
      {"operator*", [](const Tensor& a, const Tensor& b) { return a * b; },
       [](double a, double b) { return a * b; }, any, any},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
       [](double a, double b) { return a / b; }, any, nonzero},
      {"operator/", [](const Tensor& a, const Tensor& b) { return a / b; },
       [](double a, double b) { return a / b; }, any, nonzero},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, positive, any, false},
      {"pow, negative base, integral exponent", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, nonzero, ints, false},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return a > b ? a : b; }, ints, ints},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return a < b ? a : b; }, any, ints},
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); },
       [cmp](double a, double b) { return cmp(a == b); }, ints, ints},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); },
       [cmp](double a, double b) { return cmp(a != b); }, ints, ints},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); },
       [cmp](double a, double b) { return cmp(a < b); }, ints, ints},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); },
       [cmp](double a, double b) { return cmp(a <= b); }, ints, ints},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); },
       [cmp](double a, double b) { return cmp(a > b); }, ints, ints},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); },
       [cmp](double a, double b) { return cmp(a >= b); }, ints, ints},
      {"relu_grad", [](const Tensor& a, const Tensor& b) { return relu_grad(a, b); },
       [](double a, double b) { return b > 0 ? a : 0.0; }, any, ints},
  };
}

}  // namespace theta::ref
