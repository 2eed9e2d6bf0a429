#pragma once
// Helpers shared by the checkpoint tests: snapshots of model and optimizer state, bitwise
// comparison, a few training steps, and parsing that lets AddressSanitizer see overreads.

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/checkpoint.hpp"
#include "nn/npz.hpp"
#include "nn/optim.hpp"
#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tests/support/tensor_bytes.hpp"
#include "tests/nn/tiny_model.hpp"

namespace theta::checkpoint_test {

using namespace theta::nn;
using theta::test::element_bytes;

// Deep copies of a model's parameters and buffers, or of an optimizer's state.
inline std::vector<NamedTensor> snapshot(const Module& m) {
  std::vector<NamedTensor> out;
  for (const auto& [name, p] : m.named_parameters()) out.emplace_back("param/" + name, p.value().clone());
  for (const auto& [name, b] : m.named_buffers()) out.emplace_back("buffer/" + name, b.clone());
  return out;
}

inline std::vector<NamedTensor> snapshot(const Optimizer& o) {
  std::vector<NamedTensor> out;
  for (const auto& [name, t] : o.state()) out.emplace_back(name, t.clone());
  return out;
}

// Same names in the same order, same shapes and dtypes, bitwise equal elements.
inline void check_bitwise(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("tensor " << a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.shape() == b[i].second.shape());
    CHECK(a[i].second.dtype() == b[i].second.dtype());
    CHECK(element_bytes(a[i].second) == element_bytes(b[i].second));
  }
}

inline bool bitwise_equal(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || a[i].second.shape() != b[i].second.shape() ||
        a[i].second.dtype() != b[i].second.dtype() || element_bytes(a[i].second) != element_bytes(b[i].second))
      return false;
  return true;
}

// `steps` optimizer steps on a fixed regression batch (sizes read off the first and last parameter).
inline void train_steps(Module& model, Optimizer& opt, int steps) {
  const auto params = model.named_parameters();
  Rng rng(99);
  const Tensor x = rng.normal({8, params.front().second.size(1)});
  const Tensor y = rng.normal({8, params.back().second.size(0)});
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    const Var loss = autograd::mean(autograd::square(autograd::sub(model(Var(x)), Var(y))));
    autograd::backward(loss);
    opt.step();
  }
}

// Parses a copy of `bytes` held in a heap block of exactly bytes.size() bytes, so that under
// AddressSanitizer any read past the end is reported.
inline std::vector<NamedTensor> parse_exact(const std::string& bytes) {
  const auto block = std::make_unique<char[]>(bytes.size() + (bytes.empty() ? 1 : 0));
  if (!bytes.empty()) std::memcpy(block.get(), bytes.data(), bytes.size());
  return npz_parse(std::string_view(block.get(), bytes.size()), "test.npz");
}

// Asserts that loading `path` throws a FormatError containing `needle` and changes nothing.
inline void check_load_fails(const std::string& path, Module& model, Optimizer* opt, const std::string& needle) {
  const auto model_before = snapshot(model);
  const auto opt_before = opt ? snapshot(*opt) : std::vector<NamedTensor>{};
  try {
    load_checkpoint(path, model, opt);
    FAIL("the checkpoint was accepted");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(needle));
  }
  check_bitwise(snapshot(model), model_before);
  if (opt) check_bitwise(snapshot(*opt), opt_before);
}

inline std::string golden(const std::string& name) { return std::string(THETA_TEST_DATA_DIR) + "/npz/" + name; }

}  // namespace theta::checkpoint_test
