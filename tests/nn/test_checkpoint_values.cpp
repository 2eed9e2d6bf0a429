// Checkpoints whose archive is intact but whose optimizer counts, flags or buffers could not have
// been written by an optimizer (Note [Loaded optimizer state] in nn/optim.cpp): each is refused by
// name, and neither model nor optimizer changes.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tests/nn/checkpoint_test_support.hpp"
#include "tests/support/temp_dir.hpp"

using namespace theta;
using namespace theta::nn;
using namespace theta::checkpoint_test;
using theta::test::TempDir;
using theta::test::TinyNet;

namespace {

constexpr std::int64_t kMaxSteps = std::int64_t{1} << 53;

// An int64 scalar (built from an index list: a double would round counts above 2^53).
Tensor count(std::int64_t v) { return from_indices({v}).reshape({}); }

// The members of a checkpoint of `model` and `opt` (as save_checkpoint names them), with the
// member `key` replaced by `value`.
std::vector<NamedTensor> members_with(const Module& model, const Optimizer& opt, const std::string& key,
                                      const Tensor& value) {
  std::vector<NamedTensor> out = snapshot(model);
  for (const auto& [name, t] : opt.state()) out.emplace_back("optim/" + name, t.clone());
  bool found = false;
  for (auto& [name, t] : out)
    if (name == key) t = value, found = true;
  if (!found) out.emplace_back(key, value);
  return out;
}

// Loading the checkpoint into a fresh optimizer (whose own load_state sees every value first) and
// into a trained one (load_checkpoint compares with the state it holds) must both fail.
template <class MakeOptimizer>
void check_refused(const std::string& path, const MakeOptimizer& make, const std::string& needle) {
  TinyNet fresh(4, 3, 2, 6);
  auto fresh_opt = make(fresh);
  INFO("fresh optimizer");
  check_load_fails(path, fresh, &fresh_opt, needle);
  TinyNet trained(4, 3, 2, 7);
  auto trained_opt = make(trained);
  train_steps(trained, trained_opt, 2);
  INFO("trained optimizer");
  check_load_fails(path, trained, &trained_opt, needle);
}

}  // namespace

TEST_CASE("SGD step counts and presence flags out of range are refused by name", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet model(4, 3, 2, 5);
  const auto make = [](const Module& m) { return Sgd(m.named_parameters(), {.lr = 0.1, .momentum = 0.9}); };
  Sgd opt = make(model);
  train_steps(model, opt, 3);
  const auto write = [&](const std::string& key, const Tensor& value) {
    return dir.write("ckpt.npz", npz_serialize(members_with(model, opt, key, value)));
  };

  SECTION("negative step") {
    check_refused(write("optim/step", count(-1)), make,
                  "optimizer state: load_state: 'step' is -1, must be in [0, 9007199254740992]");
  }
  SECTION("absurdly large step") {
    check_refused(write("optim/step", count(kMaxSteps + 1)), make, "'step' is 9007199254740993, must be in [0, ");
    check_refused(write("optim/step", count(std::numeric_limits<std::int64_t>::max())), make,
                  "'step' is 9223372036854775807");
  }
  SECTION("the largest step count loads and is kept") {
    TinyNet target(4, 3, 2, 6);
    Sgd target_opt = make(target);
    load_checkpoint(write("optim/step", count(kMaxSteps)), target, &target_opt);
    CHECK(target_opt.steps_taken() == kMaxSteps);
  }
  SECTION("a presence flag other than 0 or 1") {
    check_refused(write("optim/has_state", from_indices({1, 1, 2, 1})), make,
                  "load_state: 'has_state' element 2 is 2, must be 0 or 1");
    check_refused(write("optim/has_state", from_indices({-1, 1, 1, 1})), make,
                  "'has_state' element 0 is -1, must be 0 or 1");
  }
  SECTION("state flagged present before any step") {
    check_refused(write("optim/step", count(0)), make,
                  "load_state: 'has_state' flags parameter 'hidden.weight', but 'step' is 0");
  }
  SECTION("a step count or flags that are not int64") {
    check_refused(write("optim/step", full({}, std::nan(""))), make, "step' has dtype float64");
    check_refused(write("optim/has_state", from_vector({1, 1, 1, 1})), make, "has_state' has dtype float64");
  }
  SECTION("a momentum buffer of another dtype") {
    check_refused(write("optim/momentum.out.weight", zeros({2, 3}, DType::f32)), make,
                  "momentum.out.weight' has dtype float32");
  }
}

TEST_CASE("Adam per-parameter step counts and second moments out of range are refused by name", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet model(4, 3, 2, 5);
  const auto make = [](const Module& m) { return Adam(m.named_parameters(), {.lr = 0.01}); };
  Adam opt = make(model);
  train_steps(model, opt, 3);
  const auto write = [&](const std::string& key, const Tensor& value) {
    return dir.write("ckpt.npz", npz_serialize(members_with(model, opt, key, value)));
  };

  SECTION("negative, zero or more per-parameter steps than optimizer steps") {
    check_refused(write("optim/step.hidden.weight", count(-3)), make,
                  "optimizer state: load_state: 'step.hidden.weight' is -3, must be in [1, 3]");
    // A parameter with moments was updated at least once and at most once per step.
    check_refused(write("optim/step.out.bias", count(0)), make, "'step.out.bias' is 0, must be in [1, 3]");
    check_refused(write("optim/step.out.bias", count(4)), make, "'step.out.bias' is 4, must be in [1, 3]");
  }
  SECTION("a per-parameter step that is not int64") {
    check_refused(write("optim/step.hidden.bias", full({}, 1e300)), make, "step.hidden.bias' has dtype float64");
  }
  SECTION("the global step and the flags are checked for Adam too") {
    check_refused(write("optim/step", count(-2)), make, "'step' is -2");
    check_refused(write("optim/has_state", from_indices({1, 3, 1, 1})), make, "'has_state' element 1 is 3");
  }
  SECTION("negative or NaN second moments") {
    check_refused(write("optim/exp_avg_sq.out.bias", from_vector({0.5, -1.0})), make,
                  "load_state: 'exp_avg_sq.out.bias' has a negative or NaN element (-1)");
    check_refused(write("optim/exp_avg_sq.hidden.bias", from_vector({0.0, std::nan(""), 1.0})), make,
                  "'exp_avg_sq.hidden.bias' has a negative or NaN element (nan)");
  }
  SECTION("moments of another dtype") {
    check_refused(write("optim/exp_avg.out.weight", zeros({2, 3}, DType::f32)), make,
                  "exp_avg.out.weight' has dtype float32");
  }
  SECTION("the untouched state loads") {
    TinyNet target(4, 3, 2, 6);
    Adam target_opt = make(target);
    load_checkpoint(write("optim/step", count(3)), target, &target_opt);
    check_bitwise(snapshot(target_opt), snapshot(opt));
  }
}

TEST_CASE("load_state refuses counts that are not int64 without converting them", "[nn][optim]") {
  // Converting NaN or 1e300 to int64 is undefined behaviour: the dtype is checked first.
  TinyNet model(4, 3, 2, 5);
  Sgd sgd(model.named_parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(sgd.load_state({{"step", full({}, std::nan(""))}}), "load_state: 'step' has dtype float64, expected int64");
  Adam adam(model.named_parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(adam.load_state({{"step", full({}, 1e300)}}), "load_state: 'step' has dtype float64, expected int64");
  CHECK(sgd.steps_taken() == 0);
  CHECK(adam.steps_taken() == 0);
}
