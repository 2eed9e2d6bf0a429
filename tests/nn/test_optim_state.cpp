// What optimizers report and keep: the step observer's record, state round trips (bitwise
// continuation, presence flags, older states), and clear errors for bad options and gradients.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "tests/nn/optim_test_support.hpp"

using namespace theta;
using namespace theta::nn;
using namespace theta::optim_test;

TEST_CASE("the step observer records what each step did, by optimizer index", "[nn][optim]") {
  const SgdOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1};
  const Var a = param({1.0, -2.0}), mid = param({0.5, 0.5, 0.5}), c(from_vector({3.0, 1.0, -1.0, 2.0}, {2, 2}), true);
  Sgd opt({{"a", a}, {"mid", mid}, {"c", c}}, o);
  std::vector<StepRecord> records;
  records.reserve(3);
  opt.set_observer([&](const StepRecord& r) { records.push_back(r); });

  const Vec a0 = to_vector(a.value()), c0 = to_vector(c.value());
  const Vec ga = {0.5, 1.5}, gc = {-1.0, 0.25, 2.0, 0.0};
  set_grad(a, ga);
  set_grad(c, gc);
  opt.step();
  REQUIRE(records.size() == 1);
  const StepRecord& r = records[0];
  CHECK(r.step == 1);
  CHECK(r.lr == 0.1);
  REQUIRE(r.params == std::vector<std::size_t>{0, 2});
  REQUIRE((r.params_before.size() == 2 && r.grads.size() == 2 && r.updates.size() == 2));
  CHECK(to_vector(r.params_before[0]) == a0);
  CHECK(to_vector(r.params_before[1]) == c0);
  CHECK(to_vector(r.grads[0]) == ga);  // the loss gradient, without weight decay
  CHECK(to_vector(r.grads[1]) == gc);
  for (std::size_t k = 0; k < 2; ++k) {
    const Vec before = to_vector(r.params_before[k]), after = to_vector((k == 0 ? a : c).value());
    Vec diff(after.size());
    for (std::size_t i = 0; i < after.size(); ++i) diff[i] = after[i] - before[i];
    CHECK(to_vector(r.updates[k]) == diff);
  }
  REQUIRE(r.momentum.size() == 3);
  CHECK_FALSE(r.momentum[1].defined());
  Vec ba, bc, pa = a0, pc = c0;  // first step: the buffer is d = g + wd p
  ref_sgd(pa, ba, ga, o, o.lr);
  ref_sgd(pc, bc, gc, o, o.lr);
  check_close(r.momentum[0], ba);
  check_close(r.momentum[2], bc);

  // The record holds copies: a second step with every gradient and a new lr leaves it intact.
  set_grad(mid, {1.0, 1.0, 1.0});
  opt.set_lr(0.05);
  opt.step();
  REQUIRE(records.size() == 2);
  CHECK(records[1].step == 2);
  CHECK(records[1].lr == 0.05);
  CHECK(records[1].params == std::vector<std::size_t>{0, 1, 2});
  CHECK(to_vector(records[0].params_before[0]) == a0);
  CHECK(records[1].momentum[1].defined());

  // Adam keeps no momentum buffers to report.
  Adam adam({{"a", a}}, {.lr = 0.01});
  adam.set_observer([&](const StepRecord& rec) { records.push_back(rec); });
  adam.step();
  REQUIRE(records.size() == 3);
  CHECK(records[2].params == std::vector<std::size_t>{0});
  CHECK(records[2].momentum.empty());
}

TEST_CASE("an optimizer loaded from another's state continues bitwise identically", "[nn][optim]") {
  const auto run = [](auto make) {
    const Var w1(from_vector({0.5, -1.0, 2.0, 0.25}, {2, 2}), true), b1 = param({1.0, -0.5});
    auto first = make(std::vector<std::pair<std::string, Var>>{{"w", w1}, {"b", b1}});
    const auto grads = [&](int k, const Var& w, const Var& b) {
      set_grad(w, wave(4, 0.7 * k));
      set_grad(b, wave(2, 1.0 - k));
    };
    for (int k = 1; k <= 3; ++k) {
      grads(k, w1, b1);
      first.step();
    }

    const Var w2(w1.value().clone(), true), b2(b1.value().clone(), true);
    auto second = make(std::vector<std::pair<std::string, Var>>{{"w", w2}, {"b", b2}});
    second.load_state(first.state());
    CHECK(second.steps_taken() == 3);
    for (int k = 4; k <= 6; ++k) {
      grads(k, w1, b1);
      first.step();
      grads(k, w2, b2);
      second.step();
    }
    CHECK(bits(w2.value()) == bits(w1.value()));
    CHECK(bits(b2.value()) == bits(b1.value()));
    CHECK(state_bits(second) == state_bits(first));

    // A state entry of the wrong shape is refused, naming it, and nothing changes.
    auto bad = first.state();
    for (auto& [name, t] : bad)
      if (name.ends_with(".b")) t = zeros({3});
    const auto before = state_bits(second);
    CHECK_THAT(thrown<ShapeError>([&] { second.load_state(bad); }), Catch::Contains(".b' has shape [3]"));
    CHECK(state_bits(second) == before);  // step count and buffers

    // A flagged buffer that is missing is refused by name.
    auto missing = first.state();
    std::erase_if(missing, [](const auto& entry) { return entry.first.ends_with(".w") && entry.first != "step.w"; });
    CHECK_THAT(thrown<std::invalid_argument>([&] { second.load_state(missing); }),
               Catch::Contains("missing optimizer state") && Catch::Contains(".w'"));
    CHECK(state_bits(second) == before);

    // A state written without the presence flags and per-parameter step counts (older
    // checkpoints) still loads: every parameter then has buffers and took every step.
    auto unflagged = first.state();
    std::erase_if(unflagged, [](const auto& entry) { return entry.first == "has_state" || entry.first.starts_with("step."); });
    auto third = make(std::vector<std::pair<std::string, Var>>{{"w", Var(w1.value().clone(), true)},
                                                               {"b", Var(b1.value().clone(), true)}});
    third.load_state(unflagged);
    CHECK(state_bits(third) == state_bits(first));
  };
  SECTION("Sgd") {
    run([](auto p) { return Sgd(std::move(p), {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true}); });
  }
  SECTION("Adam") { run([](auto p) { return Adam(std::move(p), {.lr = 0.01, .weight_decay = 0.1}); }); }
  SECTION("AdamW") { run([](auto p) { return Adam(std::move(p), adamw_options(0.01, 0.1)); }); }
}

TEST_CASE("optimizers reject bad options and bad gradients clearly", "[nn][optim]") {
  const Var p = param({1.0, 2.0});
  const std::vector<std::pair<std::string, Var>> ps = {{"p", p}};
  CHECK_THROWS_AS(Sgd(ps, {.lr = -0.1}), std::invalid_argument);
  CHECK_THROWS_AS(Sgd(ps, {.momentum = -0.5}), std::invalid_argument);
  CHECK_THROWS_AS(Sgd(ps, {.weight_decay = -1e-3}), std::invalid_argument);
  CHECK_THROWS_WITH(Sgd(ps, {.nesterov = true}), Catch::Contains("nesterov needs momentum > 0"));
  CHECK_THROWS_AS(Sgd(ps, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, {.lr = -1e-3}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, {.eps = -1e-8}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, {.beta1 = 1.0}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, {.beta2 = -0.1}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, {.weight_decay = -0.01}), std::invalid_argument);
  CHECK_THROWS_AS(Adam(ps, adamw_options(1e-3, -0.01)), std::invalid_argument);
  CHECK_THROWS_WITH(Sgd({{"frozen", param({1.0}).detach()}}, {}), Catch::Contains("'frozen'"));

  // set_grad checks shapes itself, so the bad gradient is written straight into the variable.
  const Var q = param({1.0, 2.0, 3.0});
  Sgd opt({{"p", p}, {"q", q}}, {.lr = 0.1});
  set_grad(p, {1.0, 1.0});
  q.id()->grad = from_vector({1.0, 1.0});
  const std::string p_before = bits(p.value());
  CHECK_THAT(thrown<ShapeError>([&] { opt.step(); }), Catch::Contains("gradient of 'q' has shape [2]"));
  // Nothing was applied: not the valid gradient of the earlier parameter, not the step count.
  CHECK(bits(p.value()) == p_before);
  CHECK(opt.steps_taken() == 0);
}
