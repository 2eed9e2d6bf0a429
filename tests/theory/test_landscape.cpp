// Loss landscapes: filter-normalised directions against a per-filter loop over the parameter
// tensors, grid losses against the loss of the model with its parameters set directly, the same
// bits for any thread count, the BatchNorm scale invariance that motivates filter normalisation,
// the second difference along a direction against the Hessian, and the trajectory PCA against
// the eigenvectors of the dense covariance matrix.

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/transforms.hpp"
#include "nn/conv.hpp"
#include "nn/functional.hpp"
#include "nn/layers.hpp"
#include "tensor/ops.hpp"
#include "tests/support/thread_count.hpp"
#include "theory/hessian.hpp"
#include "theory/landscape_directions.hpp"
#include "theory/landscape_grid.hpp"
#include "theory/linalg.hpp"
#include "theory/trajectory_pca.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Contains;

namespace {

const nn::LossFn kCrossEntropy = [](const autograd::Var& logits, const Tensor& y) {
  return nn::cross_entropy(logits, y);
};

double max_abs(const Tensor& t) { return max(abs(t)).item(); }
double range(const Tensor& t) { return max(t).item() - min(t).item(); }

// Linear(5, 8) -> BatchNorm1d(8, eps) -> tanh -> Linear(8, 3).
std::shared_ptr<nn::Sequential> batchnorm_net(double eps, std::uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(5, 8, rng));
  net->add(std::make_shared<nn::BatchNorm1d>(8, nn::NormOptions{.eps = eps}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Linear>(8, 3, rng));
  return net;
}

// 4x4 images -> Conv2d(1, 3, 3) -> BatchNorm2d -> tanh -> global average -> Linear(3, 2).
std::shared_ptr<nn::Sequential> conv_net(std::uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Unflatten>(std::array<std::int64_t, 3>{1, 4, 4}));
  net->add(std::make_shared<nn::Conv2d>(1, 3, 3, rng, nn::ConvOptions{.padding = 1}));
  net->add(std::make_shared<nn::BatchNorm2d>(3));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::GlobalAvgPool2d>());
  net->add(std::make_shared<nn::Linear>(3, 2, rng));
  return net;
}

// The loss with the parameters of a copy of the model overwritten by theta:[P], computed the way
// training computes it: model(x) with its own parameters, then the loss.
double direct_loss(const nn::Module& model, const Tensor& theta, const Tensor& x, const Tensor& y) {
  const auto copy = model.clone();
  const auto params = copy->parameters();
  std::vector<Tensor> like;
  for (const auto& p : params) like.push_back(p.value());
  const auto values = unflatten_like(theta, like);
  for (std::size_t i = 0; i < params.size(); ++i) params[i].value().copy_(values[i]);
  const autograd::NoGradGuard no_grad;
  return nn::cross_entropy((*copy)(autograd::Var(x)), y).value().to(DType::f64).item();
}

// The filter normalisation written out per parameter tensor and per filter with tensor slices.
Tensor naive_filter_normalize(const nn::Module& model, const Tensor& direction, const Tensor& origin) {
  std::vector<Tensor> like;
  for (const auto& p : model.parameters()) like.push_back(p.value());
  std::vector<Tensor> d = unflatten_like(direction, like), theta = unflatten_like(origin, like);
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i].dim() <= 1) {
      d[i].fill_(0.0);
      continue;
    }
    for (std::int64_t j = 0; j < d[i].size(0); ++j) {
      const Tensor filter = d[i].select(0, j);
      filter.copy_(filter * (norm(theta[i].select(0, j)).item() / norm(filter).item()));
    }
  }
  return flatten_tensors(d);
}

}  // namespace

TEST_CASE("filter normalisation rescales every filter to the origin's and zeroes biases and norms",
          "[theory][landscape]") {
  const std::vector<std::shared_ptr<nn::Module>> models{batchnorm_net(1e-5, 1), conv_net(2)};
  for (const auto& model : models) {
    INFO(model->describe());
    Rng rng(3);
    const Tensor origin = parameter_vector(*model);
    REQUIRE(origin.size(0) == model->parameter_count());
    const Tensor draw = rng.normal({origin.size(0)});
    const Tensor d = filter_normalize(*model, draw, origin);
    const Tensor naive = naive_filter_normalize(*model, draw, origin);
    CHECK(max_abs(d - naive) <= 1e-14 * max_abs(naive));

    // random_direction is the same normalisation of the same draw.
    Rng again(3);
    CHECK(max_abs(random_direction(*model, again) - d) == 0.0);
    Rng raw(3);
    CHECK(max_abs(random_direction(*model, raw, {.normalization = DirectionNorm::none}) - draw) == 0.0);

    // A frozen layer gets zeros; the rest is normalised as before.
    const Tensor frozen = filter_normalize(*model, draw, origin, {.frozen = {"layers.1."}});
    std::int64_t at = 0;
    for (const auto& [name, p] : model->named_parameters()) {
      const Tensor piece = frozen.slice(0, at, at + p.numel());
      const Tensor expected = name.rfind("layers.1.", 0) == 0 ? zeros({p.numel()}) : d.slice(0, at, at + p.numel());
      CHECK(max_abs(piece - expected) == 0.0);
      at += p.numel();
    }

    // Keeping rank-1 parameters normalises each as one filter.
    const Tensor kept = filter_normalize(*model, draw, origin, {.zero_bias_and_norm = false});
    std::int64_t offset = 0;
    for (const auto& p : model->parameters()) {
      const Tensor piece = kept.slice(0, offset, offset + p.numel());
      if (p.dim() == 1) CHECK(norm(piece).item() == Approx(norm(p.value()).item()).epsilon(1e-14));
      offset += p.numel();
    }
  }
}

TEST_CASE("grid losses equal the loss of the model with its parameters set to the grid point",
          "[theory][landscape]") {
  auto model = batchnorm_net(1e-5, 4);
  Rng rng(5);
  const Tensor x = rng.normal({12, 5}), y = rng.integers({12}, 0, 3);
  const Tensor origin = parameter_vector(*model);
  const Tensor d1 = random_direction(*model, rng), d2 = random_direction(*model, rng);
  const Tensor alphas = from_vector({-0.5, 0.0, 0.25}), betas = from_vector({-1.0, 0.0, 0.3, 0.7});
  std::vector<Tensor> buffers_before;
  for (const auto& [name, b] : model->named_buffers()) buffers_before.push_back(b.clone());

  const Tensor surface = loss_surface(*model, x, y, kCrossEntropy, origin, d1, d2, alphas, betas);
  REQUIRE(surface.shape() == Shape{3, 4});
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 4; ++j) {
      const Tensor theta = origin + d1 * alphas.at({i}) + d2 * betas.at({j});
      CHECK(surface.at({i, j}) == Approx(direct_loss(*model, theta, x, y)).epsilon(1e-12));
    }
  CHECK(surface.at({1, 1}) == Approx(direct_loss(*model, origin, x, y)).epsilon(1e-15));

  const Tensor slice = loss_slice(*model, x, y, kCrossEntropy, origin, d1, alphas);
  for (std::int64_t i = 0; i < 3; ++i) CHECK(slice.at({i}) == surface.at({i, 1}));

  const Tensor target = origin + d2;
  const Tensor path = loss_interpolation(*model, x, y, kCrossEntropy, origin, target, from_vector({0.0, 0.5, 1.0}));
  CHECK(path.at({0}) == Approx(direct_loss(*model, origin, x, y)).epsilon(1e-15));
  CHECK(path.at({1}) == Approx(direct_loss(*model, origin + d2 * 0.5, x, y)).epsilon(1e-12));
  CHECK(path.at({2}) == Approx(direct_loss(*model, target, x, y)).epsilon(1e-12));

  // The caller's model is untouched: parameters and running statistics as before.
  CHECK(max_abs(parameter_vector(*model) - origin) == 0.0);
  const auto buffers_after = model->named_buffers();
  for (std::size_t i = 0; i < buffers_before.size(); ++i)
    CHECK(max_abs(buffers_after[i].second - buffers_before[i]) == 0.0);
}

TEST_CASE("grid losses of a CNN with BatchNorm2d and of a float32 MLP match the direct loss", "[theory][landscape]") {
  Rng rng(17);
  auto f32 = nn::mlp({5, 6, 3}, rng, {.dtype = DType::f32});
  struct Case {
    std::shared_ptr<nn::Module> model;
    Tensor x, y;
    double rtol;
  };
  const std::vector<Case> cases{{conv_net(18), rng.normal({10, 16}), rng.integers({10}, 0, 2), 1e-12},
                                {f32, rng.normal({10, 5}).to(DType::f32), rng.integers({10}, 0, 3), 1e-5}};
  for (const Case& c : cases) {
    INFO(c.model->describe());
    const Tensor origin = parameter_vector(*c.model);
    const Tensor d1 = random_direction(*c.model, rng), d2 = random_direction(*c.model, rng);
    const Tensor axis = from_vector({-0.4, 0.6});
    const Tensor surface = loss_surface(*c.model, c.x, c.y, kCrossEntropy, origin, d1, d2, axis, axis);
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t j = 0; j < 2; ++j) {
        const Tensor theta = origin + d1 * axis.at({i}) + d2 * axis.at({j});
        CHECK(surface.at({i, j}) == Approx(direct_loss(*c.model, theta, c.x, c.y)).epsilon(c.rtol));
      }
  }
}

TEST_CASE("grid losses are bitwise the same for any thread count", "[theory][landscape]") {
  Rng rng(6);
  auto model = nn::mlp({16, 64, 64, 4}, rng, {.activation = nn::ActivationKind::tanh});
  auto bn = batchnorm_net(0.0, 7);
  const Tensor x = rng.normal({300, 16}), y = rng.integers({300}, 0, 4);
  const Tensor xb = rng.normal({40, 5}), yb = rng.integers({40}, 0, 3);
  const Tensor grid = linspace(-1.0, 1.0, 7);
  const auto surfaces = [&] {
    Rng directions(8);
    const Tensor o = parameter_vector(*model), ob = parameter_vector(*bn);
    return std::vector<Tensor>{
        loss_surface(*model, x, y, kCrossEntropy, o, random_direction(*model, directions),
                     random_direction(*model, directions), grid, grid),
        loss_surface(*bn, xb, yb, kCrossEntropy, ob, random_direction(*bn, directions),
                     random_direction(*bn, directions), grid, grid)};
  };
  std::vector<Tensor> one, two, three;
  {
    const test::ThreadCount threads(1);
    one = surfaces();
  }
  {
    const test::ThreadCount threads(2);
    two = surfaces();
  }
  {
    const test::ThreadCount threads(3);
    three = surfaces();
  }
  for (std::size_t s = 0; s < one.size(); ++s) {
    CHECK(to_vector(one[s]) == to_vector(two[s]));
    CHECK(to_vector(one[s]) == to_vector(three[s]));
  }
}

TEST_CASE("with BatchNorm (eps 0) the filter-normalised slice ignores a layer's scale, the raw one does not",
          "[theory][landscape]") {
  auto model = batchnorm_net(0.0, 9);
  Rng data(10);
  const Tensor x = data.normal({32, 5}), y = data.integers({32}, 0, 3);
  const Tensor origin = parameter_vector(*model);
  // The first Linear (weight [8, 5] then bias [8]) feeds the BatchNorm.
  const std::int64_t layer_size = 8 * 5 + 8;
  const Tensor alphas = linspace(-1.0, 1.0, 9);
  const Tensor draw = Rng(11).normal({origin.size(0)});
  // The raw direction: the draw at a fixed length, whatever the scale of the layer.
  const Tensor raw = draw * (norm(filter_normalize(*model, draw, origin)).item() / norm(draw).item());
  const Tensor filtered_1 =
      loss_slice(*model, x, y, kCrossEntropy, origin, filter_normalize(*model, draw, origin), alphas);
  const Tensor raw_1 = loss_slice(*model, x, y, kCrossEntropy, origin, raw, alphas);
  for (double c : {0.1, 10.0}) {
    INFO("c = " << c);
    const Tensor scaled = origin.clone();
    scaled.slice(0, 0, layer_size).copy_(origin.slice(0, 0, layer_size) * c);
    const Tensor filtered_c =
        loss_slice(*model, x, y, kCrossEntropy, scaled, filter_normalize(*model, draw, scaled), alphas);
    const Tensor raw_c = loss_slice(*model, x, y, kCrossEntropy, scaled, raw, alphas);
    // Differences relative to how much the c = 1 slice varies (the loss level is arbitrary).
    CHECK(max_abs(filtered_c - filtered_1) <= 1e-10 * range(filtered_1));
    CHECK(max_abs(raw_c - raw_1) > 0.1 * range(raw_1));
  }
}

TEST_CASE("the second difference along a direction is d^T H d", "[theory][landscape]") {
  Rng rng(12);
  auto model = nn::mlp({6, 10, 4}, rng, {.activation = nn::ActivationKind::tanh});
  const Tensor x = rng.normal({50, 6}), y = rng.integers({50}, 0, 4);
  const Tensor origin = parameter_vector(*model);
  const Tensor d = random_direction(*model, rng);
  const double h = 1e-4;
  const Tensor l = loss_slice(*model, x, y, kCrossEntropy, origin, d, from_vector({-h, 0.0, h}));
  const double second_difference = (l.at({0}) - 2.0 * l.at({1}) + l.at({2})) / (h * h);
  const std::vector<Tensor> params = parameter_values(*model);
  const Tensor hd = flatten_tensors(
      autograd::hvp(module_loss(model, x, y, kCrossEntropy), params, unflatten_like(d, params)));
  const double curvature = dot(d, hd).item();
  CHECK(std::abs(second_difference - curvature) <= 1e-6 * std::abs(curvature));
}

TEST_CASE("the trajectory PCA by SVD and by the Gram matrix equals the covariance's eigenvectors",
          "[theory][landscape]") {
  // A random walk in 12 dimensions with a drift, so its top directions are well separated.
  Rng rng(13);
  const std::int64_t t = 9, p = 12;
  std::vector<Tensor> rows{rng.normal({p})};
  const Tensor drift = rng.normal({p});
  for (std::int64_t i = 1; i < t; ++i) rows.push_back(rows.back() + drift * 0.5 + rng.normal({p}) * 0.2);
  const Tensor trajectory = stack(rows);

  // Truth: the eigenvectors of the covariance [P, P] of the differences from the final point.
  const Tensor m = trajectory - rows.back();
  const SymmetricEigen cov = eigh(matmul(m.t(), m));  // ascending
  const double total = sum(cov.values).item();
  for (const PcaMethod method : {PcaMethod::svd, PcaMethod::gram}) {
    INFO((method == PcaMethod::svd ? "svd" : "gram"));
    const TrajectoryPca pca = trajectory_pca(trajectory, 3, method);
    REQUIRE(pca.directions.shape() == Shape{3, p});
    double ratio_sum = 0.0;
    for (std::int64_t i = 0; i < 3; ++i) {
      const double lambda = cov.values.at({p - 1 - i});
      const Tensor v = cov.vectors.select(1, p - 1 - i);
      const Tensor mine = pca.directions.select(0, i);
      CHECK(std::abs(pca.singular_values.at({i}) * pca.singular_values.at({i}) - lambda) <= 1e-10 * lambda);
      CHECK(std::min(max_abs(mine - v), max_abs(mine + v)) <= 1e-10);
      CHECK(pca.explained_variance_ratio.at({i}) == Approx(lambda / total).epsilon(1e-10));
      ratio_sum += pca.explained_variance_ratio.at({i});
    }
    CHECK(ratio_sum <= 1.0);
    // Coordinates are the projections; the final point is the origin.
    CHECK(max_abs(pca.coordinates - matmul(m, pca.directions.t())) <= 1e-12 * max_abs(pca.coordinates));
    CHECK(max_abs(pca.coordinates.select(0, t - 1)) == 0.0);
    CHECK(max_abs(project_onto(pca, trajectory) - pca.coordinates) <= 1e-12 * max_abs(pca.coordinates));
  }
  // Both methods pick the same signs.
  const TrajectoryPca a = trajectory_pca(trajectory, 2), b = trajectory_pca(trajectory, 2, PcaMethod::gram);
  CHECK(max_abs(a.directions - b.directions) <= 1e-10);
}

TEST_CASE("landscape functions reject bad input with the shapes in the message", "[theory][landscape][errors]") {
  auto model = batchnorm_net(1e-5, 14);
  const std::int64_t p = model->parameter_count();
  Rng rng(15);
  const Tensor x = rng.normal({6, 5}), y = rng.integers({6}, 0, 3);
  const Tensor origin = parameter_vector(*model);
  const Tensor d = random_direction(*model, rng);

  CHECK_THROWS_AS(filter_normalize(*model, zeros({p + 1}), origin), ShapeError);
  CHECK_THROWS_WITH(filter_normalize(*model, zeros({p + 1}), origin),
                    Contains("filter_normalize: direction must be [" + std::to_string(p) + "]") &&
                        Contains("got [" + std::to_string(p + 1) + "]"));
  CHECK_THROWS_WITH(filter_normalize(*model, d, origin, {.frozen = {"layer.0."}}),
                    Contains("filter_normalize: no parameter of Sequential(") && Contains("starts with 'layer.0.'"));
  CHECK_THROWS_WITH(random_direction(*model, rng, {.origin = zeros({3, 4})}),
                    Contains("random_direction: origin must be [" + std::to_string(p) + "]") && Contains("[3, 4]"));
  Tensor bad = origin.clone();
  bad.select(0, 2).fill_(std::nan(""));
  CHECK_THROWS_AS(loss_slice(*model, x, y, kCrossEntropy, bad, d, linspace(-1, 1, 3)), std::invalid_argument);
  CHECK_THROWS_WITH(evaluate_losses(*model, x, y, kCrossEntropy, origin, {d, d}, zeros({4, 3})),
                    Contains("evaluate_losses: coordinates must be [m, 2] for 2 directions, got [4, 3]"));
  CHECK_THROWS_WITH(loss_slice(*model, x, y, kCrossEntropy, origin, d, zeros({2, 2})),
                    Contains("loss_slice: alphas must be 1-D [m], got [2, 2]"));
  CHECK_THROWS_WITH(loss_interpolation(*model, x, y, kCrossEntropy, origin, zeros({2}), linspace(0, 1, 3)),
                    Contains("loss_interpolation: to must be [" + std::to_string(p) + "]"));
  CHECK_THROWS_WITH(loss_slice(*model, x, y, nn::LossFn{}, origin, d, linspace(0, 1, 3)),
                    Contains("empty loss function"));
  // An error inside the model on a worker thread reaches the caller.
  CHECK_THROWS_AS(loss_slice(*model, rng.normal({6, 4}), y, kCrossEntropy, origin, d, linspace(0, 1, 5)), ShapeError);

  // A module registered twice would get two independent entries for one parameter.
  Rng shared_rng(16);
  auto layer = std::make_shared<nn::Linear>(3, 3, shared_rng);
  auto twice = std::make_shared<nn::Sequential>();
  twice->add(layer);
  twice->add(layer);
  CHECK_THROWS_WITH(parameter_vector(*twice), Contains("'layers.1.weight' is listed twice"));

  const Tensor walk = rng.normal({5, 7});
  CHECK_THROWS_WITH(trajectory_pca(walk, 5), Contains("k must be in [1, min(T - 1, P)] = [1, 4]") &&
                                                 Contains("[5, 7], got 5"));
  CHECK_THROWS_WITH(trajectory_pca(zeros({7})), Contains("trajectory must be [T, P]") && Contains("got [7]"));
  CHECK_THROWS_WITH(trajectory_pca(zeros({4, 3})), Contains("never leaves its final point"));
  const TrajectoryPca pca = trajectory_pca(walk, 2);
  CHECK_THROWS_WITH(project_onto(pca, zeros({2, 6})), Contains("points must be [m, 7] or [7], got [2, 6]"));
}
