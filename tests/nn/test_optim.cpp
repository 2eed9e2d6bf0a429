// Optimizers against PyTorch's update rules written out by hand: torch.optim.SGD (momentum,
// dampening, Nesterov, weight decay), Adam (L2 weight decay, per-parameter step counts) and AdamW
// (decoupled weight decay) as plain loops over std::vector<double>; StepLR / CosineAnnealingLR
// closed forms; clip_grad_norm_.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "tests/nn/optim_test_support.hpp"

using namespace theta;
using namespace theta::nn;
using namespace theta::optim_test;

TEST_CASE("Sgd follows torch.optim.SGD over several steps", "[nn][optim]") {
  const std::vector<std::pair<const char*, SgdOptions>> configs = {
      {"plain", {.lr = 0.1}},
      {"momentum", {.lr = 0.1, .momentum = 0.9}},
      {"dampening", {.lr = 0.1, .momentum = 0.8, .dampening = 0.3}},
      {"nesterov", {.lr = 0.1, .momentum = 0.9, .nesterov = true}},
      {"weight decay", {.lr = 0.1, .weight_decay = 0.05}},
      {"everything", {.lr = 0.05, .momentum = 0.7, .weight_decay = 0.2, .nesterov = true}},
      {"dampening + weight decay", {.lr = 0.2, .momentum = 0.5, .dampening = 0.5, .weight_decay = 0.1}},
  };
  for (const auto& [name, o] : configs) {
    INFO("config " << name);
    Vec w = {0.5, -1.0, 2.0, 0.25}, b = {1.0, -0.5, 0.0}, w_buf, b_buf;
    const Var pw(from_vector(w, {2, 2}), true), pb = param(b);
    Sgd opt({{"w", pw}, {"b", pb}}, o);
    for (int k = 1; k <= 5; ++k) {
      INFO("step " << k);
      const double lr = k <= 3 ? o.lr : o.lr / 4;  // set_lr applies from the next step
      opt.set_lr(lr);
      const Vec gw = wave(4, 0.9 * k), gb = wave(3, 2.0 - 0.4 * k);
      set_grad(pw, gw);
      set_grad(pb, gb);
      opt.step();
      ref_sgd(w, w_buf, gw, o, lr);
      ref_sgd(b, b_buf, gb, o, lr);
      check_close(pw.value(), w);
      check_close(pb.value(), b);
      CHECK(opt.steps_taken() == k);
    }
  }
}

TEST_CASE("Sgd skips a parameter without a gradient and leaves its momentum alone", "[nn][optim]") {
  const SgdOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.05};
  Vec a = {1.0, 2.0}, mid = {-1.0, 0.5, 3.0}, c = {0.3}, a_buf, mid_buf, c_buf;
  const Var pa = param(a), pm = param(mid), pc = param(c);
  Sgd opt({{"a", pa}, {"mid", pm}, {"c", pc}}, o);
  const auto momentum_of_mid = [&] {
    for (const auto& [name, t] : opt.state())
      if (name == "momentum.mid") return bits(t);
    return std::string("(none)");
  };
  std::string mid_value, mid_momentum;
  for (int k = 1; k <= 4; ++k) {
    INFO("step " << k);
    const bool mid_has_grad = k == 1 || k == 4;
    const Vec ga = wave(2, k), gm = wave(3, 0.5 * k), gc = wave(1, -k);
    set_grad(pa, ga);
    set_grad(pc, gc);
    if (mid_has_grad) set_grad(pm, gm);
    else pm.zero_grad();
    opt.step();
    ref_sgd(a, a_buf, ga, o, o.lr);
    ref_sgd(c, c_buf, gc, o, o.lr);
    if (mid_has_grad) {
      ref_sgd(mid, mid_buf, gm, o, o.lr);
    } else {
      CHECK(bits(pm.value()) == mid_value);
      CHECK(momentum_of_mid() == mid_momentum);
    }
    mid_value = bits(pm.value());
    mid_momentum = momentum_of_mid();
    check_close(pa.value(), a);
    check_close(pm.value(), mid);  // step 4 continues from the buffer left by step 1
    check_close(pc.value(), c);
  }
}

TEST_CASE("Adam and AdamW follow torch.optim.Adam / AdamW over several steps", "[nn][optim]") {
  const AdamOptions w = adamw_options();
  CHECK(w.decoupled_weight_decay);
  CHECK(w.weight_decay == 0.01);
  CHECK(w.lr == 1e-3);
  const std::vector<std::pair<const char*, AdamOptions>> configs = {
      {"Adam", {.lr = 0.01}},
      {"Adam, large eps and small betas", {.lr = 0.05, .beta1 = 0.5, .beta2 = 0.8, .eps = 0.1}},
      {"Adam, L2 weight decay", {.lr = 0.01, .weight_decay = 0.1}},
      {"AdamW", adamw_options(0.01, 0.1)},
      {"AdamW, large decay", adamw_options(0.2, 0.5)},
  };
  for (const auto& [name, o] : configs) {
    INFO("config " << name);
    Vec p = {0.5, -1.0, 2.0, 0.0, 1e-3}, m, v;
    const Var pv(from_vector(p), true);
    Adam opt({{"p", pv}}, o);
    for (int k = 1; k <= 6; ++k) {
      INFO("step " << k);
      const double lr = k <= 4 ? o.lr : o.lr / 2;
      opt.set_lr(lr);
      Vec g = wave(5, 0.8 * k);
      g[1] *= 1e-7;  // a gradient small enough that eps matters
      set_grad(pv, g);
      opt.step();
      ref_adam(p, m, v, g, o, lr, k);
      check_close(pv.value(), p);
    }
  }
}

TEST_CASE("Adam counts steps per parameter, as torch does", "[nn][optim]") {
  // `late` gets its first gradient at step 3: its bias correction starts from t = 1 then.
  const AdamOptions o{.lr = 0.1};
  Vec p = {1.0, -2.0}, q = {1.0, 0.5}, pm, pv, qm, qv;
  const Var early(from_vector(p), true), late(from_vector(q), true);
  Adam opt({{"early", early}, {"late", late}}, o);
  for (int k = 1; k <= 4; ++k) {
    INFO("step " << k);
    const Vec gp = wave(2, 0.3 * k), gq = wave(2, 0.7 * k + 1.0);
    set_grad(early, gp);
    if (k >= 3) set_grad(late, gq);
    else late.zero_grad();
    opt.step();
    ref_adam(p, pm, pv, gp, o, o.lr, k);
    if (k >= 3) ref_adam(q, qm, qv, gq, o, o.lr, k - 2);
    check_close(early.value(), p);
    check_close(late.value(), q);
  }
  // The per-parameter counts are part of the state and survive a round trip.
  const auto step_of = [](const Optimizer& optimizer, const std::string& key) {
    for (const auto& [name, t] : optimizer.state())
      if (name == key) return t.item<std::int64_t>();
    return std::int64_t{-1};
  };
  CHECK(step_of(opt, "step.early") == 4);
  CHECK(step_of(opt, "step.late") == 2);
  Adam other({{"early", Var(from_vector(p), true)}, {"late", Var(from_vector(q), true)}}, o);
  other.load_state(opt.state());
  CHECK(step_of(other, "step.late") == 2);
}

TEST_CASE("LrSchedule gives the StepLR and CosineAnnealingLR closed forms", "[nn][optim]") {
  const LrSchedule constant{.kind = LrSchedule::Kind::constant, .base_lr = 0.3};
  for (std::int64_t e : {0, 1, 7, 1000}) CHECK(constant.at(e) == 0.3);

  const LrSchedule step{.kind = LrSchedule::Kind::step, .base_lr = 0.1, .step_size = 3, .gamma = 0.5};
  const std::vector<std::pair<std::int64_t, double>> step_values = {
      {0, 0.1}, {2, 0.1}, {3, 0.05}, {5, 0.05}, {6, 0.025}, {10, 0.0125}};
  for (const auto& [e, lr] : step_values) CHECK(step.at(e) == Approx(lr).epsilon(1e-12));

  const LrSchedule cosine{.kind = LrSchedule::Kind::cosine, .base_lr = 0.1, .t_max = 10, .eta_min = 0.001};
  const double span = 0.1 - 0.001;
  const double cos_pi_5 = (1.0 + std::sqrt(5.0)) / 4.0;  // cos(pi/5)
  // cos(4 pi / 5) = -cos(pi / 5); the closed form is periodic past t_max.
  const std::vector<std::pair<std::int64_t, double>> cosine_values = {
      {0, 0.1}, {2, 0.001 + span * (1.0 + cos_pi_5) / 2.0}, {5, 0.001 + span / 2.0},
      {8, 0.001 + span * (1.0 - cos_pi_5) / 2.0}, {10, 0.001}, {20, 0.1}};
  for (const auto& [e, lr] : cosine_values) {
    INFO("epoch " << e);
    CHECK(cosine.at(e) == Approx(lr).epsilon(1e-12));
  }
}

TEST_CASE("clip_grad_norm returns the total norm and scales gradients above max_norm", "[nn][optim]") {
  const Var a = param({0.0, 0.0, 0.0, 0.0}), b = param({0.0}), none = param({1.0, 1.0});
  const Vec ga = {1.0, -2.0, 2.0, 0.0}, gb = {4.0};  // total norm sqrt(9 + 16) = 5
  set_grad(a, ga);
  set_grad(b, gb);

  SECTION("above max_norm: scaled by max_norm / (norm + 1e-6), like torch") {
    CHECK(clip_grad_norm({a, none, b}, 2.0) == Approx(5.0).epsilon(1e-15));
    const double scale = 2.0 / (5.0 + 1e-6);
    check_close(a.grad(), {ga[0] * scale, ga[1] * scale, ga[2] * scale, 0.0});
    check_close(b.grad(), {gb[0] * scale});
    double total = 0.0;
    for (const Var& p : {a, b})
      for (double x : to_vector(p.grad())) total += x * x;
    CHECK(std::sqrt(total) == Approx(2.0).epsilon(1e-6));
    CHECK_FALSE(none.grad().defined());
  }
  SECTION("below max_norm: untouched") {
    const std::string before_a = bits(a.grad()), before_b = bits(b.grad());
    CHECK(clip_grad_norm({a, none, b}, 10.0) == Approx(5.0).epsilon(1e-15));
    CHECK(bits(a.grad()) == before_a);
    CHECK(bits(b.grad()) == before_b);
  }
}
