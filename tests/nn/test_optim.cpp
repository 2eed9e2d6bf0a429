// Optimizers against PyTorch's update rules written out by hand: torch.optim.SGD (momentum,
// dampening, Nesterov, weight decay), Adam (L2 weight decay) and AdamW (decoupled weight decay)
// as plain loops over std::vector<double>, StepLR / CosineAnnealingLR closed forms,
// clip_grad_norm_, the step observer's record, state round trips and error messages.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "nn/optim.hpp"
#include "tests/support/tensor_bytes.hpp"

using namespace theta;
using namespace theta::nn;
using Vec = std::vector<double>;

namespace {

Var param(const Vec& values) { return Var(from_vector(values), true); }
void set_grad(const Var& p, const Vec& g) { p.set_grad(from_vector(g, p.shape())); }

// Deterministic gradients that change from step to step.
Vec wave(std::size_t n, double phase) {
  Vec g(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i);
    g[i] = std::sin(phase + 1.3 * x) * (1.0 + 0.5 * x);
  }
  return g;
}

// The elements' bytes in hex: for bitwise comparisons with printable failures.
std::string bits(const Tensor& t) {
  const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : theta::test::element_bytes(t)) out += {hex[c >> 4], hex[c & 15]};
  return out;
}

// Every state entry as "name=bits", in order.
std::vector<std::string> state_bits(const Optimizer& opt) {
  std::vector<std::string> out;
  for (const auto& [name, t] : opt.state()) out.push_back(name + "=" + bits(t));
  return out;
}

void check_close(const Tensor& actual, const Vec& expected) {
  const Vec a = to_vector(actual);
  REQUIRE(a.size() == expected.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    CHECK(a[i] == Approx(expected[i]).epsilon(1e-12));
  }
}

// torch.optim.SGD for one parameter; `buf` empty means no momentum buffer yet.
void ref_sgd(Vec& p, Vec& buf, const Vec& g, const SgdOptions& o, double lr) {
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
void ref_adam(Vec& p, Vec& m, Vec& v, const Vec& grad, const AdamOptions& o, double lr, int t) {
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
std::string thrown(F&& f) {
  try { f(); } catch (const E& e) { return e.what(); }
  return "(nothing thrown)";
}

}  // namespace

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
