#pragma once
// Helpers shared by the optimizer tests: parameters and gradients from plain vectors, bitwise
// comparison, and PyTorch's SGD and Adam update rules written out as loops over std::vector<double>.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "nn/optim.hpp"
#include "tests/support/tensor_bytes.hpp"

namespace theta::optim_test {

using namespace theta::nn;
using Vec = std::vector<double>;

inline Var param(const Vec& values) { return Var(from_vector(values), true); }
inline void set_grad(const Var& p, const Vec& g) { p.set_grad(from_vector(g, p.shape())); }

// Deterministic gradients that change from step to step.
inline Vec wave(std::size_t n, double phase) {
  Vec g(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i);
    g[i] = std::sin(phase + 1.3 * x) * (1.0 + 0.5 * x);
  }
  return g;
}

// The elements' bytes in hex: for bitwise comparisons with printable failures.
inline std::string bits(const Tensor& t) {
  const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : theta::test::element_bytes(t)) out += {hex[c >> 4], hex[c & 15]};
  return out;
}

// Every state entry as "name=bits", in order.
inline std::vector<std::string> state_bits(const Optimizer& opt) {
  std::vector<std::string> out;
  for (const auto& [name, t] : opt.state()) out.push_back(name + "=" + bits(t));
  return out;
}

inline void check_close(const Tensor& actual, const Vec& expected) {
  const Vec a = to_vector(actual);
  REQUIRE(a.size() == expected.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    CHECK(a[i] == Approx(expected[i]).epsilon(1e-12));
  }
}

// torch.optim.SGD for one parameter; `buf` empty means no momentum buffer yet.
inline void ref_sgd(Vec& p, Vec& buf, const Vec& g, const SgdOptions& o, double lr) {
  const bool first = buf.empty();
  if (first && o.momentum != 0) buf.assign(p.size(), 0.0);
  for (std::size_t i = 0; i < p.size(); ++i) {
    double d = g[i] + o.weight_decay * p[i];
    if (o.momentum != 0) {
      buf[i] = first ? d : o.momentum * buf[i] + (1.0 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}

// torch.optim.Adam / AdamW for one parameter at step t (1-based).
inline void ref_adam(Vec& p, Vec& m, Vec& v, const Vec& grad, const AdamOptions& o, double lr, int t) {
  if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
  const double bc1 = 1.0 - std::pow(o.beta1, t), bc2 = 1.0 - std::pow(o.beta2, t);
  for (std::size_t i = 0; i < p.size(); ++i) {
    double g = grad[i];
    if (o.decoupled_weight_decay) p[i] -= lr * o.weight_decay * p[i];
    else g += o.weight_decay * p[i];
    m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * g;
    v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
    p[i] -= (lr / bc1) * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
  }
}

template <class E, class F>
inline std::string thrown(F&& f) {
  try { f(); } catch (const E& e) { return e.what(); }
  return "(nothing thrown)";
}

}  // namespace theta::optim_test
