// model.json and PyTorch-named weights: parsing, the loaded MLP's forward against the formula,
// and every malformed input refused with the name of what is wrong.

#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/ops.hpp"
#include "tensor/ops.hpp"
#include "theory/model_spec.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Contains;

namespace {

// What ntk_demo --dump writes (extra keys included).
const char* kDemoJson = R"({
  "widths": [3, 4, 2],
  "activation": "tanh",
  "bias": true,
  "parameterisation": "ntk",
  "sigma_w": 1.4142135623730951,
  "sigma_b": 0.1,
  "layout": "weight [out, in] as in PyTorch",
  "ntk_shape": "[n, n, O, O]"
})";

std::vector<nn::NamedTensor> torch_weights(const std::string& prefix, Rng& rng) {
  return {{prefix + "0.weight", rng.normal({4, 3})},
          {prefix + "0.bias", rng.normal({4})},
          {prefix + "2.weight", rng.normal({2, 4})},
          {prefix + "2.bias", rng.normal({2})}};
}

}  // namespace

TEST_CASE("model.json as ntk_demo writes it parses to its fields", "[theory][model_spec]") {
  const MlpSpec spec = parse_mlp_spec(kDemoJson);
  CHECK(spec.widths == std::vector<std::int64_t>{3, 4, 2});
  CHECK(spec.activation == nn::ActivationKind::tanh);
  CHECK(spec.bias);
  CHECK(spec.parameterization == nn::Parameterization::ntk);
  CHECK(spec.sigma_w == std::sqrt(2.0));
  CHECK(spec.sigma_b == 0.1);
}

TEST_CASE("malformed model.json is refused with where and what", "[theory][model_spec]") {
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3, 2],})", "m.json"), Contains("m.json") && Contains("at byte 18"));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3, 2]} x)"), Contains("unexpected text after the JSON value"));
  CHECK_THROWS_WITH(
      parse_mlp_spec(R"({"widths": [3, 2], "activation": "relu", "parameterisation": "ntk", "sigma_b": 0})"),
      Contains("missing \"sigma_w\""));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3.5, 2], "activation": "relu"})"), Contains("positive integers"));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3], "activation": "relu"})"), Contains("input and output widths"));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3, 2], "activation": "swish", "parameterisation": "ntk",
                                      "sigma_w": 1, "sigma_b": 0})"),
                    Contains("unknown activation 'swish'"));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3, 2], "activation": 1})"),
                    Contains("\"activation\" must be a string"));
  CHECK_THROWS_WITH(parse_mlp_spec(R"({"widths": [3, 2], "widths": [3, 2]})"), Contains("duplicate key 'widths'"));
  CHECK_THROWS_AS(parse_mlp_spec("[1, 2]"), FormatError);
  CHECK_THROWS_AS(parse_mlp_spec(R"({"a": "unterminated)"), FormatError);
}

TEST_CASE("PyTorch-named weights give the MLP's formula under any common prefix", "[theory][model_spec]") {
  const MlpSpec spec = parse_mlp_spec(kDemoJson);
  for (const std::string prefix : {"", "layers.", "net.body."}) {
    INFO("prefix '" << prefix << "'");
    Rng rng(3);
    const auto weights = torch_weights(prefix, rng);
    auto net = mlp_from_state_dict(spec, weights, "w.npz");
    const Tensor x = rng.normal({5, 3});
    // y = s_w / sqrt(in) x W^T + s_b b per layer, tanh between (NTK parameterisation).
    const auto layer = [&](const Tensor& in, const Tensor& w, const Tensor& b) {
      return matmul(in, w.t()) * (spec.sigma_w / std::sqrt(static_cast<double>(in.size(1)))) + b * spec.sigma_b;
    };
    const Tensor want =
        layer(tanh(layer(x, weights[0].second, weights[1].second)), weights[2].second, weights[3].second);
    const Tensor got = (*net)(autograd::Var(x)).value();
    const auto g = to_vector(got), w = to_vector(want);
    REQUIRE(g.size() == w.size());
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(w[i]).epsilon(1e-14).margin(1e-14));
  }
}

TEST_CASE("weights that do not fit the model are refused naming the tensor", "[theory][model_spec]") {
  const MlpSpec spec = parse_mlp_spec(kDemoJson);
  Rng rng(4);
  auto weights = torch_weights("", rng);
  SECTION("a misshapen weight") {
    weights[2].second = rng.normal({2, 5});
    CHECK_THROWS_AS(mlp_from_state_dict(spec, weights, "w.npz"), ShapeError);
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"),
                      Contains("\"2.weight\" is [2, 5]") && Contains("[2, 4]"));
  }
  SECTION("a misshapen bias") {
    weights[1].second = rng.normal({3});
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"), Contains("\"0.bias\" is [3]"));
  }
  SECTION("a missing bias") {
    weights.erase(weights.begin() + 3);
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"), Contains("\"2.bias\" is missing"));
  }
  SECTION("a layer too many") {
    weights.emplace_back("4.weight", rng.normal({2, 2}));
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"),
                      Contains("has 2 Linear layers") && Contains("3 weights"));
  }
  SECTION("a tensor of no layer") {
    weights.emplace_back("running_mean", rng.normal({2}));
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"), Contains("\"running_mean\""));
  }
  SECTION("two prefixes") {
    weights[2].first = "head.2.weight";
    CHECK_THROWS_WITH(mlp_from_state_dict(spec, weights, "w.npz"), Contains("one common prefix"));
  }
}
