// Elementwise primitives: forward value and backward rule side by side.

#include <cmath>
#include <numbers>

#include "autograd/primitive.hpp"

namespace theta::autograd {

using detail::binary_primitive;
using detail::constant;
using detail::scalar_like;
using detail::elementwise_unary;

THETA_PRIMITIVE(neg, "neg");
THETA_PRIMITIVE(abs, "abs");
THETA_PRIMITIVE(exp, "exp");
THETA_PRIMITIVE(log, "log");
THETA_PRIMITIVE(log1p, "log1p");
THETA_PRIMITIVE(expm1, "expm1");
THETA_PRIMITIVE(sqrt, "sqrt");
THETA_PRIMITIVE(rsqrt, "rsqrt");
THETA_PRIMITIVE(tanh, "tanh");
THETA_PRIMITIVE(sigmoid, "sigmoid");
THETA_PRIMITIVE(relu, "relu");
THETA_PRIMITIVE(sin, "sin");
THETA_PRIMITIVE(cos, "cos");
THETA_PRIMITIVE(square, "square");
THETA_PRIMITIVE(add_scalar, "add_scalar");
THETA_PRIMITIVE(mul_scalar, "mul_scalar");
THETA_PRIMITIVE(div_scalar, "div_scalar");
THETA_PRIMITIVE(sign, "sign");
THETA_PRIMITIVE(erf, "erf");
THETA_PRIMITIVE(reciprocal, "reciprocal");
THETA_PRIMITIVE(pow_scalar, "pow_scalar");
THETA_PRIMITIVE(clamp, "clamp");
THETA_PRIMITIVE(add, "add");
THETA_PRIMITIVE(sub, "sub");
THETA_PRIMITIVE(mul, "mul");
THETA_PRIMITIVE(div, "div");
THETA_PRIMITIVE(pow, "pow");
THETA_PRIMITIVE(maximum, "maximum");
THETA_PRIMITIVE(minimum, "minimum");
THETA_PRIMITIVE(where, "where");
THETA_PRIMITIVE(relu_grad, "relu_grad");

namespace {
// Note [Guarded derivatives]
// sqrt, rsqrt, log, reciprocal, div and pow have infinite derivatives (or none) on a singular set
// (x <= 0, or x == 0). Where the incoming gradient is 0 there (the untaken branch of a where()),
// the gradient is 0 rather than 0 * inf = NaN, and the rule is evaluated at a safe input (1) so its
// own backward stays finite (second order). Where the incoming gradient is not 0 the singularity
// is real and shows as inf or NaN. Masking on g == 0 alone would be wrong: g also vanishes at
// regular points (a zero residual, the zero cotangent of a JVP), and the mask would zero the
// rule's derivative there. `singular` broadcasts to g's shape; g may be larger than `in` (a
// broadcast operand), and then the rule sees `in` broadcast to g's shape.
template <class Rule> Var guarded(const Var& g, const Var& in, const Tensor& singular, Rule rule) {
  const Tensor zero = zeros({}, in.dtype());
  const Tensor off = theta::mul(theta::eq(g.value(), zero), singular);
  const Var safe_in = where(off, constant(ones({}, in.dtype())), in);
  return where(off, constant(zero), rule(g, safe_in));
}

Tensor non_positive(const Var& x) { return theta::le(x.value(), zeros({}, x.dtype())); }
Tensor is_zero(const Var& x) { return theta::eq(x.value(), zeros({}, x.dtype())); }
}  // namespace

Var neg(const Var& x) {
  return elementwise_unary("neg", x, theta::neg(x.value()), [](const Var& g, const Var&) { return neg(g); });
}

Var abs(const Var& x) {
  return elementwise_unary("abs", x, theta::abs(x.value()),
                         [](const Var& g, const Var& in) { return g * constant(theta::sign(in.value())); });
}

Var exp(const Var& x) {
  return elementwise_unary("exp", x, theta::exp(x.value()), [](const Var& g, const Var& in) { return g * exp(in); });
}

Var log(const Var& x) {
  return elementwise_unary("log", x, theta::log(x.value()), [](const Var& g, const Var& in) {
    return guarded(g, in, non_positive(in), [](const Var& gg, const Var& s) { return gg / s; });
  });
}

Var log1p(const Var& x) {
  return elementwise_unary("log1p", x, theta::log1p(x.value()),
                         [](const Var& g, const Var& in) { return g / (in + 1.0); });
}

Var expm1(const Var& x) {
  return elementwise_unary("expm1", x, theta::expm1(x.value()),
                         [](const Var& g, const Var& in) { return g * exp(in); });
}

Var sqrt(const Var& x) {
  return elementwise_unary("sqrt", x, theta::sqrt(x.value()), [](const Var& g, const Var& in) {
    return guarded(g, in, non_positive(in), [](const Var& gg, const Var& s) { return gg * 0.5 / sqrt(s); });
  });
}

Var rsqrt(const Var& x) {
  return elementwise_unary("rsqrt", x, theta::rsqrt(x.value()), [](const Var& g, const Var& in) {
    return guarded(g, in, non_positive(in), [](const Var& gg, const Var& s) { return gg * -0.5 * rsqrt(s) / s; });
  });
}

Var tanh(const Var& x) {
  return elementwise_unary("tanh", x, theta::tanh(x.value()), [](const Var& g, const Var& in) {
    const Var y = tanh(in);
    return g * (1.0 - y * y);
  });
}

Var sigmoid(const Var& x) {
  return elementwise_unary("sigmoid", x, theta::sigmoid(x.value()), [](const Var& g, const Var& in) {
    const Var s = sigmoid(in);
    return g * s * (1.0 - s);
  });
}

Var relu(const Var& x) {
  return elementwise_unary("relu", x, theta::relu(x.value()),
                         [](const Var& g, const Var& in) { return relu_grad(g, in.value()); });
}

Var relu_grad(const Var& grad, const Tensor& x) {
  return make_result(
      theta::relu_grad(grad.value(), x), "relu_grad", {grad},
      [x](const Var& g, const Node& n, const InputMask&) { return VarList{sum_to(relu_grad(g, x), n.inputs[0].shape())}; },
      [&x](const VarList& t, const VarList&) { return relu_grad(t[0], x); });
}

Var sin(const Var& x) {
  return elementwise_unary("sin", x, theta::sin(x.value()), [](const Var& g, const Var& in) { return g * cos(in); });
}

Var cos(const Var& x) {
  return elementwise_unary("cos", x, theta::cos(x.value()), [](const Var& g, const Var& in) { return -(g * sin(in)); });
}

Var square(const Var& x) {
  return elementwise_unary("square", x, theta::square(x.value()),
                         [](const Var& g, const Var& in) { return g * (in * 2.0); });
}

Var sign(const Var& x) {
  // Piecewise constant: zero gradient and zero tangent.
  return make_result(
      theta::sign(x.value()), "sign", {x}, [](const Var&, const Node&, const InputMask&) { return VarList{Var()}; },
      [](const VarList&, const VarList&) { return Var(); });
}

Var erf(const Var& x) {
  return elementwise_unary("erf", x, theta::erf(x.value()), [](const Var& g, const Var& in) {
    return g * (exp(-square(in)) * (2.0 / std::sqrt(std::numbers::pi)));
  });
}

Var reciprocal(const Var& x) {
  return elementwise_unary("reciprocal", x, theta::reciprocal(x.value()), [](const Var& g, const Var& in) {
    return guarded(g, in, is_zero(in), [](const Var& gg, const Var& s) {
      const Var r = reciprocal(s);
      return -(gg * r * r);
    });
  });
}

Var pow(const Var& x, double p) {
  return elementwise_unary("pow_scalar", x, theta::pow(x.value(), p), [p](const Var& g, const Var& in) {
    if (p == 0.0) return g * constant(zeros({}, g.dtype()));
    const auto rule = [p](const Var& gg, const Var& s) { return gg * (pow(s, p - 1.0) * p); };
    // x^p is smooth for integer p >= 1; a negative integer p is singular at 0, any other p
    // (whose derivatives of some order involve a fractional power) on x <= 0.
    const bool integer = p == std::floor(p);
    if (integer && p >= 1.0) return rule(g, in);
    return guarded(g, in, integer ? is_zero(in) : non_positive(in), rule);
  });
}

Var clamp(const Var& x, double lo, double hi) {
  return elementwise_unary("clamp", x, theta::clamp(x.value(), lo, hi), [lo, hi](const Var& g, const Var& in) {
    const Tensor& v = in.value();
    const Tensor inside = theta::mul(theta::ge(v, full({}, lo, v.dtype())), theta::le(v, full({}, hi, v.dtype())));
    return g * constant(inside);
  });
}

Var add(const Var& a, const Var& b) {
  return binary_primitive("add", a, b, theta::add(a.value(), b.value()),
                          [](const Var& g, const Var&, const Var&) { return g; },
                          [](const Var& g, const Var&, const Var&) { return g; });
}

Var sub(const Var& a, const Var& b) {
  return binary_primitive("sub", a, b, theta::sub(a.value(), b.value()),
                          [](const Var& g, const Var&, const Var&) { return g; },
                          [](const Var& g, const Var&, const Var&) { return neg(g); });
}

Var mul(const Var& a, const Var& b) {
  return binary_primitive("mul", a, b, theta::mul(a.value(), b.value()),
                          [](const Var& g, const Var&, const Var& y) { return g * y; },
                          [](const Var& g, const Var& x, const Var&) { return g * x; });
}

Var div(const Var& a, const Var& b) {
  return binary_primitive(
      "div", a, b, theta::div(a.value(), b.value()),
      [](const Var& g, const Var&, const Var& y) {
        return guarded(g, y, is_zero(y), [](const Var& gg, const Var& s) { return gg / s; });
      },
      [](const Var& g, const Var& x, const Var& y) {
        return guarded(g, y, is_zero(y), [&x](const Var& gg, const Var& s) { return -(gg * x / (s * s)); });
      });
}

Var pow(const Var& a, const Var& b) {
  return binary_primitive(
      "pow", a, b, theta::pow(a.value(), b.value()),
      [](const Var& g, const Var& x, const Var& y) {
        // Outside the domain x > 0: x < 0 (NaN for fractional y), and x = 0 with y < 1 (infinite;
        // finite for y >= 1, so not masked there).
        const Tensor below = theta::lt(x.value(), zeros({}, x.dtype()));
        const Tensor singular =
            theta::maximum(below, theta::mul(is_zero(x), theta::lt(y.value(), ones({}, y.dtype()))));
        return guarded(g, x, singular, [&y](const Var& gg, const Var& s) { return gg * y * pow(s, y - 1.0); });
      },
      [](const Var& g, const Var& x, const Var& y) {
        return guarded(g, x, non_positive(x), [&y](const Var& gg, const Var& s) { return gg * pow(s, y) * log(s); });
      });
}

namespace {
// 1 where a wins, 0.5 at ties, 0 where b wins (`greater` picks maximum or minimum).
Tensor winner_mask(const Tensor& a, const Tensor& b, bool greater) {
  const Tensor wins = greater ? theta::gt(a, b) : theta::lt(a, b);
  return theta::add(wins, theta::mul(theta::eq(a, b), full({}, 0.5, a.dtype())));
}
}  // namespace

Var maximum(const Var& a, const Var& b) {
  return binary_primitive(
      "maximum", a, b, theta::maximum(a.value(), b.value()),
      [](const Var& g, const Var& x, const Var& y) { return g * constant(winner_mask(x.value(), y.value(), true)); },
      [](const Var& g, const Var& x, const Var& y) { return g * constant(winner_mask(y.value(), x.value(), true)); });
}

Var minimum(const Var& a, const Var& b) {
  return binary_primitive(
      "minimum", a, b, theta::minimum(a.value(), b.value()),
      [](const Var& g, const Var& x, const Var& y) { return g * constant(winner_mask(x.value(), y.value(), false)); },
      [](const Var& g, const Var& x, const Var& y) { return g * constant(winner_mask(y.value(), x.value(), false)); });
}

Var where(const Tensor& mask, const Var& a, const Var& b) {
  Tensor value = theta::where(mask, a.value(), b.value());
  const Shape out_shape = value.shape();
  return make_result(
      std::move(value), "where", {a, b},
      [mask](const Var& g, const Node& n, const InputMask& needs) {
        const Var zero = constant(zeros({}, g.dtype()));
        const Var& x = n.inputs[0];
        const Var& y = n.inputs[1];
        return VarList{needs[0] ? sum_to(where(mask, g, zero), x.shape()) : Var(),
                       needs[1] ? sum_to(where(mask, zero, g), y.shape()) : Var()};
      },
      [&](const VarList& t, const VarList& in) {
        const Var zero = constant(zeros({}, in[0].dtype()));
        const Var picked = where(mask, t[0].defined() ? t[0] : zero, t[1].defined() ? t[1] : zero);
        return picked.shape() == out_shape ? picked : expand(picked, out_shape);
      });
}

Var operator-(const Var& x) { return neg(x); }
Var operator+(const Var& a, const Var& b) { return add(a, b); }
Var operator-(const Var& a, const Var& b) { return sub(a, b); }
Var operator*(const Var& a, const Var& b) { return mul(a, b); }
Var operator/(const Var& a, const Var& b) { return div(a, b); }
// A Var and a double: the constant lives in the backward rule, not in a recorded 0-d input.
// x - c is x + (-c) and c * x is x * c, exactly in IEEE arithmetic.
Var add_scalar(const Var& x, double c) {
  return make_result(
      x.value() + c, "add_scalar", {x}, [](const Var& g, const Node&, const InputMask&) { return VarList{g}; },
      [](const VarList& t, const VarList&) { return t[0]; });
}

Var mul_scalar(const Var& x, double c) {
  return make_result(
      x.value() * c, "mul_scalar", {x}, [c](const Var& g, const Node&, const InputMask&) { return VarList{mul_scalar(g, c)}; },
      [c](const VarList& t, const VarList&) { return mul_scalar(t[0], c); });
}

Var div_scalar(const Var& x, double c) {
  return make_result(
      x.value() / c, "div_scalar", {x}, [c](const Var& g, const Node&, const InputMask&) { return VarList{div_scalar(g, c)}; },
      [c](const VarList& t, const VarList&) { return div_scalar(t[0], c); });
}

Var operator+(const Var& a, double b) { return add_scalar(a, b); }
Var operator-(const Var& a, double b) { return add_scalar(a, -b); }
Var operator*(const Var& a, double b) { return mul_scalar(a, b); }
Var operator/(const Var& a, double b) { return div_scalar(a, b); }
Var operator+(double a, const Var& b) { return add_scalar(b, a); }
Var operator-(double a, const Var& b) { return sub(scalar_like(a, b), b); }
Var operator*(double a, const Var& b) { return mul_scalar(b, a); }
Var operator/(double a, const Var& b) { return div(scalar_like(a, b), b); }

}  // namespace theta::autograd
