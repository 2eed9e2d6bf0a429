// Errors name what the user called and passed: the layer (not the matmul inside it) and both
// dtypes, the file the user gave (not a temporary next to it), and typed exceptions for counts,
// indices and dtypes.

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <system_error>

#include "autograd/transforms.hpp"
#include "nn/checkpoint.hpp"
#include "nn/data.hpp"
#include "nn/layers.hpp"
#include "nn/npz.hpp"
#include "nn/optim.hpp"
#include "tests/support/temp_dir.hpp"
#include "tensor/npy.hpp"

using namespace theta;
using Catch::Contains;
using theta::autograd::Var;

static_assert(std::is_base_of_v<std::system_error, IoError>);

TEST_CASE("a layer given an input of another dtype names itself and both dtypes", "[nn][errors]") {
  Rng rng(1);
  nn::Linear linear(4, 3, rng);
  const Var x32(rng.normal({2, 4}, 0.0, 1.0, DType::f32));
  CHECK_THROWS_AS(linear(x32), DTypeError);
  CHECK_THROWS_WITH(linear(x32), Contains("Linear(4 -> 3, bias): input is float32 [2, 4] but the layer's "
                                          "parameters are float64") &&
                                     Contains("x.to(DType::f64)") && !Contains("matmul"));
  auto net = nn::mlp({4, 5, 2}, rng);
  CHECK_THROWS_WITH((*net)(x32), Contains("Linear(4 -> 5, bias): input is float32"));
  nn::Linear linear32(4, 3, rng, {.dtype = DType::f32});
  CHECK_THROWS_WITH(linear32(Var(rng.normal({2, 4}))), Contains("input is float64 [2, 4] but the layer's parameters "
                                                                "are float32") &&
                                                           Contains("x.to(DType::f32)"));
  // An integer input can only be converted: no layer computes in int64.
  const Var xi(from_indices({1, 2, 3, 4}).reshape({1, 4}));
  CHECK_THROWS_WITH(linear(xi), Contains("Linear(4 -> 3, bias): input is int64 [1, 4] but the layer's parameters "
                                         "are float64: convert the input (x.to(DType::f64))") &&
                                    !Contains("build the layer"));
  nn::BatchNorm1d bn(4);
  CHECK_THROWS_AS(bn(x32), DTypeError);
  CHECK_THROWS_WITH(bn(x32), Contains("BatchNorm1d(4, eps=1e-05): input is float32"));
  nn::LayerNorm ln(4);
  CHECK_THROWS_WITH(ln(x32), Contains("LayerNorm(4, eps=1e-05): input is float32"));
}

TEST_CASE("losses and softmax name themselves for operands of the wrong dtype", "[nn][errors]") {
  const Var pred(zeros({3, 2})), target32(zeros({3, 2}, DType::f32));
  CHECK_THROWS_AS(nn::mse_loss(pred, target32), DTypeError);
  CHECK_THROWS_WITH(nn::mse_loss(pred, target32),
                    Contains("mse_loss: prediction is float64 and target float32") && !Contains("sub"));
  CHECK_THROWS_WITH(nn::binary_logistic_loss(Var(zeros({3})), Var(zeros({3}, DType::f32))),
                    Contains("binary_logistic_loss: logits is float64 and targets float32"));
  const Var labels(from_indices({0, 1, 1, 0}).reshape({2, 2}));
  CHECK_THROWS_AS(autograd::softmax(labels, 1), DTypeError);
  CHECK_THROWS_WITH(autograd::softmax(labels, 1), Contains("softmax: expected a floating tensor, got int64 [2, 2]"));
  CHECK_THROWS_WITH(autograd::log_softmax(labels, 1), Contains("log_softmax: expected a floating tensor, got int64"));
}

TEST_CASE("clip_grad_norm refuses a negative bound instead of flipping the gradients", "[nn][errors]") {
  const Var p(ones({2}), true);
  p.set_grad(tensor({3.0, 4.0}));
  CHECK_THROWS_AS(nn::clip_grad_norm({p}, -1.0), std::invalid_argument);
  CHECK_THROWS_WITH(nn::clip_grad_norm({p}, -1.0), Contains("clip_grad_norm: max_norm must be >= 0, got -1"));
  CHECK(to_vector(p.grad()) == std::vector<double>{3.0, 4.0});
  CHECK(nn::clip_grad_norm({p}, 1.0) == Approx(5.0));
  CHECK(to_vector(p.grad())[0] == Approx(0.6).epsilon(1e-5));
}

TEST_CASE("set_grad refuses a gradient of another shape or dtype", "[nn][errors]") {
  const Var p(ones({2}), true);
  CHECK_THROWS_AS(p.set_grad(ones({2}, DType::f32)), DTypeError);
  CHECK_THROWS_WITH(p.set_grad(ones({2}, DType::f32)),
                    Contains("set_grad: gradient float32 [2] does not match value float64 [2]"));
  CHECK_THROWS_WITH(p.set_grad(ones({3})), Contains("set_grad: gradient [3] does not match value [2]"));
  CHECK_FALSE(p.grad().defined());  // a refused gradient leaves none behind
  p.set_grad(tensor({1.0, 2.0}));
  CHECK(to_vector(p.grad()) == std::vector<double>{1.0, 2.0});
}

TEST_CASE("optimizer options out of range are shown with their values", "[nn][errors]") {
  Rng rng(5);
  auto net = nn::mlp({2, 1}, rng);
  CHECK_THROWS_WITH(nn::Sgd(net->named_parameters(), {.lr = -0.5}),
                    Contains("got lr -0.5, momentum 0, weight_decay 0"));
  CHECK_THROWS_WITH(nn::Sgd(net->named_parameters(), {.lr = 0.1, .nesterov = true}),
                    Contains("nesterov needs momentum > 0 and dampening 0, got momentum 0, dampening 0"));
  CHECK_THROWS_WITH(nn::Adam(net->named_parameters(), {.lr = 0.1, .beta1 = 1.5}), Contains("betas (1.5, 0.999)"));
}

TEST_CASE("a file that cannot be written is an IoError naming the caller and the user's path", "[nn][errors]") {
  test::TempDir dir;
  const std::string missing = dir.file("no_such_dir") + "/out";
  Rng rng(2);
  auto net = nn::mlp({2, 2}, rng);
  const auto check = [&](const std::function<void(const std::string&)>& save, const std::string& op) {
    INFO(op);
    const std::string path = missing + ".file";
    CHECK_THROWS_AS(save(path), IoError);
    CHECK_THROWS_WITH(save(path), Contains(op + ": cannot write '" + path + "'") &&
                                      Contains("directory '" + dir.file("no_such_dir") + "' does not exist") &&
                                      !Contains(".tmp."));
    try {
      save(path);
    } catch (const IoError& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
    }
    // A directory where the file should go: the error names it, and nothing is left behind.
    CHECK_THROWS_WITH(save(dir.file("")), Contains(op + ": cannot write '" + dir.file("") + "'") && !Contains(".tmp."));
    CHECK(dir.entries().empty());
  };
  check([&](const std::string& p) { nn::save_checkpoint(p, *net); }, "save_checkpoint");
  check([&](const std::string& p) { save_npy(p, zeros({2})); }, "save_npy");
  check([&](const std::string& p) { nn::save_npz(p, {{"a", zeros({2})}}); }, "save_npz");
  // An undefined tensor is a bad argument, like everywhere else.
  CHECK_THROWS_AS(save_npy(dir.file("a.npy"), Tensor()), std::invalid_argument);
}

TEST_CASE("counts, indices and dtypes of arguments throw the typed exceptions", "[nn][autograd][errors]") {
  Rng rng(3);
  auto net = nn::mlp({2, 3, 1}, rng);
  const auto f = [](const std::vector<Var>& p) { return autograd::sum(p[0] * p[0]); };
  CHECK_THROWS_AS(autograd::hvp(f, {ones({3})}, {}), ShapeError);
  CHECK_THROWS_WITH(autograd::hvp(f, {ones({3})}, {}), Contains("hvp: 0 vectors given for 1 tensor"));
  CHECK_THROWS_AS(nn::functional_call(*net, {}, Var(ones({1, 2}))), ShapeError);
  const Var x(ones({3}), true);
  CHECK_THROWS_AS(autograd::grad({autograd::sum(x)}, {x}, {Var(ones({})), Var(ones({}))}), ShapeError);
  CHECK_THROWS_AS(net->forward_prefix(Var(ones({1, 2})), 4), IndexError);
  const nn::Dataset data{rng.normal({4, 2}), from_indices({0, 1, 0, 1})};
  CHECK_THROWS_AS(nn::subset(data, tensor({0.0, 1.0})), DTypeError);
  CHECK_THROWS_WITH(nn::subset(data, tensor({0.0, 1.0})), Contains("subset: indices must be int64, got float64"));
  CHECK_THROWS_AS(nn::subset(data, from_indices({0, 1}).reshape({1, 2})), ShapeError);
}
