#pragma once
// A small two-layer model for the nn tests that need a Module: parameters "hidden.weight",
// "hidden.bias", "out.weight", "out.bias" and buffers "hidden.scale", "out.scale", built from
// autograd primitives only so the tests do not depend on nn/layers.

#include <cstdint>
#include <memory>
#include <string>

#include "autograd/ops.hpp"
#include "nn/module.hpp"
#include "tensor/rng.hpp"

namespace theta::test {

// y = (x W^T + b) * scale, with a buffer `scale` that forward reads but never trains.
class TinyLinear : public nn::Cloneable<TinyLinear> {
 public:
  TinyLinear(std::int64_t in, std::int64_t out, Rng& rng) {
    register_parameter("weight", rng.normal({out, in}, 0.0, 1.0 / static_cast<double>(in)));
    register_parameter("bias", rng.normal({out}, 0.0, 0.1));
    register_buffer("scale", rng.uniform({out}, 0.5, 1.5));
  }
  nn::Var forward(const nn::Var& x) override {
    return autograd::mul(autograd::add(autograd::matmul(x, autograd::t(param(0))), param(1)),
                         nn::Var(buffer(0)));
  }
  std::string describe() const override { return "TinyLinear"; }
};

// out(tanh(hidden(x))): in -> hidden -> out.
class TinyNet : public nn::Cloneable<TinyNet> {
 public:
  TinyNet(std::int64_t in, std::int64_t hidden, std::int64_t out, std::uint64_t seed) {
    Rng rng(seed);
    register_module("hidden", std::make_shared<TinyLinear>(in, hidden, rng));
    register_module("out", std::make_shared<TinyLinear>(hidden, out, rng));
  }
  nn::Var forward(const nn::Var& x) override { return child(1)(autograd::tanh(child(0)(x))); }
  std::string describe() const override { return "TinyNet"; }
};

}  // namespace theta::test
