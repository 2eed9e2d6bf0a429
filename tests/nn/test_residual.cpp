// Residual, Identity, Flatten and residual_mlp.
//
// Forward values are checked against the block's children called by hand and summed by loops,
// and residual_mlp against a forward pass written as plain loops over std::vector<double> with
// the network's own weights; gradients with respect to every parameter (and the input) against
// central differences; errors, clones and forward hooks by observable behaviour.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/residual.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/reference.hpp"

using namespace theta;
using namespace theta::nn;
using Catch::Contains;

namespace {

std::vector<double> values(const Var& v) { return ref::read(v.value()); }

std::vector<double> sum_of(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  std::vector<double> out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

std::shared_ptr<Sequential> tanh_linear(std::int64_t in, std::int64_t out, Rng& rng) {
  auto body = std::make_shared<Sequential>();
  body->add(std::make_shared<Activation>(ActivationKind::tanh));
  body->add(std::make_shared<Linear>(in, out, rng));
  return body;
}

// ---- residual_mlp written as loops ----------------------------------------------------------

double activation_ref(double v, ActivationKind kind) {
  switch (kind) {
    case ActivationKind::relu: return v > 0 ? v : 0.0;
    case ActivationKind::tanh: return std::tanh(v);
    case ActivationKind::softplus: return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
    default: FAIL("no reference for this activation"); return 0.0;
  }
}

// y[i, j] = ws * sum_k h[i, k] W[j, k] + bs * b[j] for h:[rows, in], W:[out, in].
std::vector<double> dense_ref(const std::vector<double>& h, std::int64_t in, const std::vector<double>& w,
                              const std::vector<double>& b, std::int64_t out, double ws, double bs) {
  const std::int64_t rows = static_cast<std::int64_t>(h.size()) / in;
  std::vector<double> y(static_cast<std::size_t>(rows * out));
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < out; ++j) {
      double acc = 0;
      for (std::int64_t k = 0; k < in; ++k) acc += h[i * in + k] * w[j * in + k];
      y[i * out + j] = ws * acc + (b.empty() ? 0.0 : bs * b[j]);
    }
  return y;
}

// The documented architecture: Linear, blocks x (h + Linear(act(h))), act, Linear.
std::vector<double> residual_mlp_ref(const std::vector<double>& x, const ResidualMlpOptions& o,
                                     const std::map<std::string, std::vector<double>>& p) {
  const bool ntk = o.parameterization == Parameterization::ntk;
  const auto ws = [&](std::int64_t fan_in) { return ntk ? o.sigma_w / std::sqrt(static_cast<double>(fan_in)) : 1.0; };
  const double bs = ntk ? o.sigma_b : 1.0;
  const auto bias = [&](const std::string& name) { return o.bias ? p.at(name) : std::vector<double>{}; };
  std::vector<double> h =
      dense_ref(x, o.in_features, p.at("layers.0.weight"), bias("layers.0.bias"), o.width, ws(o.in_features), bs);
  for (std::int64_t blk = 1; blk <= o.blocks; ++blk) {
    const std::string name = "layers." + std::to_string(blk) + ".body.layers.1.";
    std::vector<double> a(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) a[i] = activation_ref(h[i], o.activation);
    const auto branch = dense_ref(a, o.width, p.at(name + "weight"), bias(name + "bias"), o.width, ws(o.width), bs);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] += branch[i];
  }
  for (auto& v : h) v = activation_ref(v, o.activation);
  const std::string last = "layers." + std::to_string(o.blocks + 2) + ".";
  return dense_ref(h, o.width, p.at(last + "weight"), bias(last + "bias"), o.out_features, ws(o.width), bs);
}

std::map<std::string, std::vector<double>> parameter_values(const Module& m) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, p] : m.named_parameters()) out[name] = values(p);
  return out;
}

// A module whose output is float32 whatever its input.
class Float32Zeros : public Cloneable<Float32Zeros> {
 public:
  Var forward(const Var& x) override { return Var(zeros(x.shape(), DType::f32)); }
  std::string describe() const override { return "Float32Zeros"; }
};

}  // namespace

TEST_CASE("Identity returns its input", "[nn][residual]") {
  Rng rng(1);
  Identity id;
  for (const Shape& shape : {Shape{}, Shape{4}, Shape{3, 2, 5}}) {
    INFO("x " << ref::str(shape));
    const Var x(rng.normal(shape), true);
    const Var y = id(x);
    CHECK(y.shape() == shape);
    CHECK(values(y) == values(x));
    const Var g = autograd::grad(autograd::sum(y), x);
    CHECK(values(g) == std::vector<double>(static_cast<std::size_t>(ref::count(shape)), 1.0));
  }
  CHECK(id.describe() == "Identity");
  CHECK(id.named_parameters().empty());
  CHECK(id.clone()->describe() == "Identity");
}

TEST_CASE("Flatten merges the axes after the first, for any layout", "[nn][residual]") {
  Rng rng(2);
  Flatten flatten;
  for (const ref::Layout layout : ref::kLayouts) {
    INFO(ref::layout_name(layout));
    const Tensor x = ref::make_input({2, 3, 4}, layout, DType::f64, rng);
    const Var y = flatten(Var(x));
    CHECK(y.shape() == Shape{2, 12});
    CHECK(values(y) == ref::read(x));  // row-major order of the input's logical elements
    const auto check = testing::gradcheck([&](const std::vector<Var>& in) { return flatten(in[0]); }, {x});
    INFO(check.message);
    CHECK(check.ok);
  }
  // A view of a contiguous input.
  const Tensor x = rng.normal({3, 2, 2});
  CHECK(flatten(Var(x)).value().storage() == x.storage());
  // A transposed input is copied, and its values still come out row-major.
  const Tensor base = rng.normal({4, 3});
  const Tensor xt = base.t();
  REQUIRE_FALSE(xt.is_contiguous());
  const auto bv = ref::read(base);
  std::vector<double> want;
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) want.push_back(bv[static_cast<std::size_t>(j * 3 + i)]);
  const Var yt = flatten(Var(xt));
  CHECK(yt.shape() == Shape{3, 4});
  CHECK(values(yt) == want);

  CHECK(flatten(Var(rng.normal({5}))).shape() == Shape{5, 1});
  CHECK(flatten(Var(zeros({0, 3, 4}))).shape() == Shape{0, 12});
  CHECK(flatten(Var(rng.normal({2, 0, 3}))).shape() == Shape{2, 0});
  CHECK_THROWS_AS(flatten(Var(zeros({}))), ShapeError);
  CHECK_THROWS_WITH(flatten(Var(zeros({}))), Contains("Flatten") && Contains("[]"));
  CHECK(flatten.describe() == "Flatten");
}

TEST_CASE("Residual: body(x) + x, and body(x) + projection(x), against the children called by hand",
          "[nn][residual]") {
  Rng rng(3);
  const Tensor x = rng.normal({5, 4});
  SECTION("identity shortcut") {
    Residual block(tanh_linear(4, 4, rng));
    CHECK(block.projection() == nullptr);
    const auto params = block.named_parameters();
    REQUIRE(params.size() == 2);
    CHECK(params[0].first == "body.layers.1.weight");
    CHECK(params[1].first == "body.layers.1.bias");
    const Var y = block(Var(x));
    CHECK(y.shape() == Shape{5, 4});
    ref::check_equal(values(y), sum_of(values(block.body()(Var(x))), ref::read(x)));
    CHECK(block.describe() == "Residual(Sequential(tanh, Linear(4 -> 4, bias)))");
  }
  SECTION("projection shortcut") {
    Residual block(tanh_linear(4, 3, rng), std::make_shared<Linear>(4, 3, rng, LinearOptions{.bias = false}));
    REQUIRE(block.projection() != nullptr);
    const auto params = block.named_parameters();
    REQUIRE(params.size() == 3);
    CHECK(params[0].first == "body.layers.1.weight");
    CHECK(params[1].first == "body.layers.1.bias");
    CHECK(params[2].first == "projection.weight");
    CHECK(params[2].second.shape() == Shape{3, 4});
    const Var y = block(Var(x));
    CHECK(y.shape() == Shape{5, 3});
    ref::check_equal(values(y), sum_of(values(block.body()(Var(x))), values((*block.projection())(Var(x)))));
    CHECK(block.describe() ==
          "Residual(Sequential(tanh, Linear(4 -> 3, bias)), projection Linear(4 -> 3, no bias))");
    // Gradients reach the body, the projection and the input (both paths).
    const auto check = testing::gradcheck(
        [&](const std::vector<Var>& in) { return functional_call(block, {in[0], in[1], in[2]}, in[3]); },
        {rng.normal({3, 4}), rng.normal({3}), rng.normal({3, 4}), x}, {.atol = 1e-8, .rtol = 1e-6});
    INFO(check.message);
    CHECK(check.ok);
  }
}

TEST_CASE("Residual refuses a shortcut of another shape or dtype, naming the block and both shapes",
          "[nn][residual]") {
  Rng rng(4);
  const Var x(rng.normal({5, 4}));
  Residual narrow(std::make_shared<Linear>(4, 3, rng));
  CHECK_THROWS_AS(narrow(x), ShapeError);
  CHECK_THROWS_WITH(narrow(x), Contains("Residual(Linear(4 -> 3, bias))") && Contains("[5, 3]") &&
                                   Contains("[5, 4]") && Contains("give a projection"));
  // Shapes that would broadcast are refused as well.
  Residual single(std::make_shared<Linear>(4, 1, rng));
  CHECK_THROWS_WITH(single(x), Contains("[5, 1]") && Contains("[5, 4]"));
  // A projection to the wrong width.
  Residual wrong(std::make_shared<Linear>(4, 3, rng), std::make_shared<Linear>(4, 2, rng));
  CHECK_THROWS_WITH(wrong(x), Contains("projection Linear(4 -> 2, bias)") && Contains("[5, 3]") &&
                                  Contains("[5, 2]") && Contains("the projection must map"));
  Residual mixed(std::make_shared<Float32Zeros>());
  CHECK_THROWS_AS(mixed(x), DTypeError);
  CHECK_THROWS_WITH(mixed(x), Contains("Residual(Float32Zeros)") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_AS(Residual(nullptr), std::invalid_argument);
}

TEST_CASE("residual_mlp: parameter names and count follow the documented architecture", "[nn][residual]") {
  Rng rng(5);
  const std::int64_t in = 3, w = 5, out = 2, blocks = 3;
  for (const bool bias : {true, false}) {
    INFO("bias " << bias);
    auto net = residual_mlp({.in_features = in, .width = w, .out_features = out, .blocks = blocks, .bias = bias}, rng);
    REQUIRE(net->size() == static_cast<std::size_t>(blocks + 3));
    std::vector<std::pair<std::string, Shape>> want{{"layers.0.weight", {w, in}}};
    if (bias) want.push_back({"layers.0.bias", {w}});
    for (std::int64_t b = 1; b <= blocks; ++b) {
      const std::string prefix = "layers." + std::to_string(b) + ".body.layers.1.";
      want.push_back({prefix + "weight", {w, w}});
      if (bias) want.push_back({prefix + "bias", {w}});
    }
    want.push_back({"layers.5.weight", {out, w}});
    if (bias) want.push_back({"layers.5.bias", {out}});
    const auto params = net->named_parameters();
    REQUIRE(params.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK(params[i].first == want[i].first);
      CHECK(params[i].second.shape() == want[i].second);
    }
    const std::int64_t b1 = bias ? 1 : 0;
    CHECK(net->parameter_count() == (in + b1) * w + blocks * (w + b1) * w + (w + b1) * out);
  }
  auto net = residual_mlp({.in_features = 2, .width = 3, .out_features = 1, .blocks = 1}, rng);
  CHECK(net->describe() ==
        "Sequential(Linear(2 -> 3, bias), Residual(Sequential(relu, Linear(3 -> 3, bias))), relu, "
        "Linear(3 -> 1, bias))");
  CHECK(residual_mlp({.blocks = 0}, rng)->size() == 3);
  CHECK_THROWS_AS(residual_mlp({.width = 0}, rng), ShapeError);
  CHECK_THROWS_AS(residual_mlp({.blocks = -1}, rng), std::invalid_argument);
}

TEST_CASE("residual_mlp forward matches the architecture written as loops", "[nn][residual]") {
  Rng rng(6);
  const std::vector<ResidualMlpOptions> cases{
      {.in_features = 3, .width = 6, .out_features = 2, .blocks = 3, .activation = ActivationKind::relu},
      {.in_features = 4, .width = 5, .out_features = 3, .blocks = 2, .activation = ActivationKind::tanh, .bias = false},
      {.in_features = 3, .width = 7, .out_features = 2, .blocks = 4, .activation = ActivationKind::softplus,
       .parameterization = Parameterization::ntk, .sigma_w = 1.3, .sigma_b = 0.4},
      {.in_features = 2, .width = 4, .out_features = 1, .blocks = 0, .activation = ActivationKind::tanh,
       .parameterization = Parameterization::ntk, .sigma_w = 0.9},
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    INFO("case " << c);
    const ResidualMlpOptions& o = cases[c];
    auto net = residual_mlp(o, rng);
    const Tensor x = rng.normal({7, o.in_features});
    const Var y = (*net)(Var(x));
    REQUIRE(y.shape() == Shape{7, o.out_features});
    ref::check_close(values(y), residual_mlp_ref(ref::read(x), o, parameter_values(*net)), {1e-12, 1e-13});
  }
  // float32 networks compute in float32.
  auto net32 = residual_mlp({.in_features = 3, .width = 4, .out_features = 2, .dtype = DType::f32}, rng);
  const Tensor x32 = rng.normal({5, 3}, 0.0, 1.0, DType::f32);
  const Var y32 = (*net32)(Var(x32));
  CHECK(y32.dtype() == DType::f32);
  ref::check_close(values(y32), residual_mlp_ref(ref::read(x32), {.in_features = 3, .width = 4, .out_features = 2},
                                                 parameter_values(*net32)),
                   {1e-5, 1e-5});
}

TEST_CASE("residual_mlp gradients of a scalar loss match central differences for every parameter",
          "[nn][residual]") {
  Rng rng(7);
  const std::vector<ResidualMlpOptions> cases{
      {.in_features = 3, .width = 4, .out_features = 2, .blocks = 2, .activation = ActivationKind::tanh},
      {.in_features = 2, .width = 5, .out_features = 2, .blocks = 3, .activation = ActivationKind::softplus,
       .parameterization = Parameterization::ntk, .sigma_w = 1.2, .sigma_b = 0.5},
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    INFO("case " << c);
    auto net = residual_mlp(cases[c], rng);
    const Tensor x = rng.normal({4, cases[c].in_features});
    const Var target(rng.normal({4, cases[c].out_features}));
    std::vector<Tensor> inputs;
    for (const auto& p : net->parameters()) inputs.push_back(p.value().clone());
    inputs.push_back(x);
    // loss(params, x) = 0.5 * sum((net(x) - target)^2), through the network's own forward.
    const auto loss = [&](const std::vector<Var>& in) {
      const Var y = functional_call(*net, {in.begin(), in.end() - 1}, in.back());
      return autograd::sum(autograd::square(y - target)) * 0.5;
    };
    const auto check = testing::gradcheck(loss, inputs, {.eps = 1e-6, .atol = 1e-8, .rtol = 1e-6});
    INFO(check.message);
    CHECK(check.ok);
  }
}

TEST_CASE("clones of Residual and residual_mlp are independent of the original", "[nn][residual]") {
  Rng rng(8);
  const Tensor x = rng.normal({6, 3});
  auto net = residual_mlp({.in_features = 3, .width = 4, .out_features = 2, .blocks = 2}, rng);
  const auto before = values((*net)(Var(x)));
  std::unique_ptr<Module> copy = net->clone();
  CHECK(copy->describe() == net->describe());
  CHECK(values((*copy)(Var(x))) == before);
  const auto mine = net->named_parameters();
  const auto theirs = copy->named_parameters();
  REQUIRE(mine.size() == theirs.size());
  for (std::size_t k = 0; k < mine.size(); ++k) {
    CHECK(theirs[k].first == mine[k].first);
    CHECK(theirs[k].second.id() != mine[k].second.id());
    CHECK(theirs[k].second.value().storage() != mine[k].second.value().storage());
  }
  for (const auto& [name, p] : theirs) p.value().fill_(0.25);
  CHECK(values((*net)(Var(x))) == before);
  CHECK(values((*copy)(Var(x))) != before);

  Residual block(tanh_linear(3, 2, rng), std::make_shared<Linear>(3, 2, rng));
  const auto block_before = values(block(Var(x)));
  std::unique_ptr<Module> block_copy = block.clone();
  auto& typed = dynamic_cast<Residual&>(*block_copy);
  REQUIRE(typed.projection() != nullptr);
  CHECK(typed.projection() != block.projection());
  CHECK(&typed.body() != &block.body());
  typed.projection()->named_parameters()[0].second.value().fill_(-1.0);
  CHECK(values(block(Var(x))) == block_before);
  CHECK(values(typed(Var(x))) != block_before);
}

TEST_CASE("forward hooks on a block's children fire when the block runs", "[nn][residual]") {
  Rng rng(9);
  const Tensor x = rng.normal({5, 4});
  std::vector<std::string> order;
  std::map<std::string, std::pair<Tensor, Tensor>> seen;  // tag -> (input, output)
  auto record = [&](const std::string& tag) {
    return [&, tag](Module&, const Var& in, const Var& out) {
      order.push_back(tag);
      seen[tag] = {in.value(), out.value()};
    };
  };
  SECTION("a block with a projection") {
    auto body = tanh_linear(4, 3, rng);
    Residual block(body, std::make_shared<Linear>(4, 3, rng));
    HookHandle h_inner = body->at(1).register_forward_hook(record("body.linear"));
    HookHandle h_body = block.body().register_forward_hook(record("body"));
    HookHandle h_proj = block.projection()->register_forward_hook(record("projection"));
    HookHandle h_block = block.register_forward_hook(record("block"));
    const Var y = block(Var(x));
    REQUIRE(order == std::vector<std::string>{"body.linear", "body", "projection", "block"});
    CHECK(ref::read(seen["body"].first) == ref::read(x));
    CHECK(ref::read(seen["projection"].first) == ref::read(x));
    CHECK(ref::read(seen["body"].second) == ref::read(seen["body.linear"].second));
    ref::check_equal(values(y), sum_of(ref::read(seen["body"].second), ref::read(seen["projection"].second)));
    CHECK(ref::read(seen["block"].second) == values(y));
  }
  SECTION("every block of a residual_mlp, also through functional_call") {
    auto net = residual_mlp({.in_features = 4, .width = 3, .out_features = 2, .blocks = 2}, rng);
    std::vector<HookHandle> handles;
    for (auto& [name, m] : net->named_modules())
      if (dynamic_cast<Linear*>(m) != nullptr) handles.push_back(m->register_forward_hook(record(name)));
    const std::vector<std::string> linears{"layers.0", "layers.1.body.layers.1", "layers.2.body.layers.1",
                                           "layers.4"};
    REQUIRE(handles.size() == linears.size());
    (*net)(Var(x));
    REQUIRE(order == linears);
    // The first block's linear layer sees relu of the first layer's output.
    const auto h0 = ref::read(seen["layers.0"].second);
    std::vector<double> want(h0.size());
    for (std::size_t i = 0; i < h0.size(); ++i) want[i] = h0[i] > 0 ? h0[i] : 0.0;
    CHECK(ref::read(seen["layers.1.body.layers.1"].first) == want);
    order.clear();
    functional_call(*net, net->parameters(), Var(x));
    CHECK(order == linears);
  }
}
