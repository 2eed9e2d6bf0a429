#pragma once
// Tiny float64 problems shared by the conserved-quantity tests (tests/theory/test_symmetry*.cpp).

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/engine.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"
#include "theory/linalg.hpp"
#include "theory/symmetry.hpp"

namespace symmetry_test {

using namespace theta;
using theta::autograd::Var;

// ---- tiny float64 problems ----------------------------------------------------------------------

enum class Net { softmax, batchnorm, relu_mlp, deep_linear };

inline const char* net_name(Net net) {
  switch (net) {
    case Net::softmax: return "softmax classifier";
    case Net::batchnorm: return "BatchNorm net";
    case Net::relu_mlp: return "ReLU MLP";
    case Net::deep_linear: return "deep linear net";
  }
  return "?";
}

struct Problem {
  std::shared_ptr<nn::Sequential> net;
  Tensor x, y;           // 32 samples; y: int64 labels (classifiers) or float targets
  bool classify = true;
  std::int64_t batch = 8;  // minibatch size; 0 = full batch
};

inline Problem make_problem(Net kind, std::uint64_t seed) {
  Rng rng(seed);
  Problem p;
  p.net = std::make_shared<nn::Sequential>();
  const std::int64_t n = 32, in = 5, classes = 3;
  p.x = rng.normal({n, in});
  p.y = rng.integers({n}, 0, classes);
  switch (kind) {
    case Net::softmax:
      p.net->add(std::make_shared<nn::Linear>(in, classes, rng));
      break;
    case Net::batchnorm:
      p.net->add(std::make_shared<nn::Linear>(in, 4, rng));
      p.net->add(std::make_shared<nn::BatchNorm1d>(4, nn::NormOptions{.eps = 0.0, .affine = false}));
      p.net->add(std::make_shared<nn::Activation>(nn::ActivationKind::relu));
      p.net->add(std::make_shared<nn::Linear>(4, classes, rng));
      break;
    case Net::relu_mlp:
      p.net = nn::mlp({in, 4, 4, classes}, rng);
      break;
    case Net::deep_linear:
      p.net = nn::mlp({in, 3, 3, 2}, rng, {.activation = nn::ActivationKind::identity, .bias = false});
      p.y = rng.normal({n, 2});
      p.classify = false;
      p.batch = 0;
      break;
  }
  return p;
}

inline Var loss_of(const Problem& p, const Tensor& x, const Tensor& y) {
  const Var out = (*p.net)(Var(x));
  return p.classify ? nn::cross_entropy(out, y) : nn::mse_loss(out, Var(y));
}

// Runs `steps` optimizer steps on random minibatches; `before_step` sees the gradients.
inline void train(const Problem& p, nn::Optimizer& opt, int steps, std::uint64_t seed,
           const std::function<void(int)>& before_step = {}) {
  Rng rng(seed);
  const std::int64_t n = p.x.size(0);
  for (int k = 0; k < steps; ++k) {
    Tensor x = p.x, y = p.y;
    if (p.batch > 0) {
      const Tensor idx = rng.integers({p.batch}, 0, n);
      x = index_select(p.x, 0, idx);
      y = index_select(p.y, 0, idx);
    }
    opt.zero_grad();
    autograd::backward(loss_of(p, x, y));
    if (before_step) before_step(k);
    opt.step();
  }
}

inline Tensor param(const nn::Module& m, const std::string& name) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == name) return v.value();
  FAIL("no parameter " << name);
  return Tensor();
}

inline Tensor grad_of(const nn::Module& m, const std::string& name) {
  for (const auto& [n, v] : m.named_parameters())
    if (n == name) return v.grad();
  FAIL("no parameter " << name);
  return Tensor();
}

inline double rel_diff(double a, double b) { return std::abs(a - b) / std::max({std::abs(a), std::abs(b), 1e-300}); }

struct OptimizerCase {
  const char* name;
  nn::SgdOptions options;
};

inline const std::vector<OptimizerCase> kOptimizers = {
    {"SGD", {.lr = 0.05}},
    {"SGD + weight decay", {.lr = 0.05, .weight_decay = 0.1}},
    {"SGD + momentum", {.lr = 0.02, .momentum = 0.9}},
    {"SGD + momentum + weight decay", {.lr = 0.02, .momentum = 0.9, .weight_decay = 0.1}},
};

}  // namespace symmetry_test
