// Function transforms (hvp, vhp, HessianVectorOperator, hessian, jvp, jacobian) against
// finite differences and closed forms.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/transforms.hpp"
#include "tensor/rng.hpp"

using namespace theta;
using namespace theta::autograd;

namespace {

constexpr double kEps = 1e-6;
constexpr double kAtol = 1e-5;
constexpr double kRtol = 1e-3;

/// A 3-5-4-2 tanh MLP on a fixed batch of 6, with softmax cross-entropy written as
/// log_softmax + gather. Parameters: W1 [5,3], b1 [5], W2 [4,5], b2 [4], W3 [2,4], b3 [2].
struct Mlp {
  Tensor x;       // [6, 3]
  Tensor labels;  // [6, 1] int64
  std::vector<Tensor> params;

  explicit Mlp(std::uint64_t seed) {
    Rng rng(seed);
    x = rng.normal({6, 3});
    labels = from_indices({0, 1, 1, 0, 1, 0}).reshape({6, 1});
    params = {rng.normal({5, 3}, 0.0, 0.7), rng.normal({5}, 0.0, 0.3), rng.normal({4, 5}, 0.0, 0.6),
              rng.normal({4}, 0.0, 0.3),    rng.normal({2, 4}, 0.0, 0.8), rng.normal({2}, 0.0, 0.3)};
  }

  /// Mean cross-entropy of the batch.
  ScalarFunction loss() const {
    const Tensor xs = x;
    const Tensor ys = labels;
    return [xs, ys](const std::vector<Var>& p) {
      const Var h1 = tanh(matmul(Var(xs), t(p[0])) + p[1]);
      const Var h2 = tanh(matmul(h1, t(p[2])) + p[3]);
      const Var logits = matmul(h2, t(p[4])) + p[5];
      return -mean(gather(log_softmax(logits, 1), 1, ys));
    };
  }
};

/// The gradient of f at params, by one backward pass.
std::vector<Tensor> gradient_at(const ScalarFunction& f, const std::vector<Tensor>& params) {
  const std::vector<Var> leaves = make_leaves(params);
  const std::vector<Var> g = grad({f(leaves)}, leaves);
  std::vector<Tensor> out;
  for (const auto& gi : g) out.push_back(gi.value());
  return out;
}

/// Tensors a + s * b, elementwise per list entry.
std::vector<Tensor> axpy(const std::vector<Tensor>& a, double s, const std::vector<Tensor>& b) {
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(a[i] + b[i] * s);
  return out;
}

/// All entries of a list of tensors, concatenated row-major.
std::vector<double> flat(const std::vector<Tensor>& ts) {
  std::vector<double> out;
  for (const auto& t : ts) {
    const auto v = to_vector(t);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

/// Sum of products of two equally long vectors.
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// Random tensors shaped like `like`.
std::vector<Tensor> random_like(const std::vector<Tensor>& like, Rng& rng) {
  std::vector<Tensor> out;
  for (const auto& t : like) out.push_back(rng.normal(t.shape()));
  return out;
}

/// Checks |got - want| <= kAtol + kRtol |want| elementwise.
void check_close(const std::vector<double>& got, const std::vector<double>& want, double atol = kAtol,
                 double rtol = kRtol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::fabs(got[i] - want[i]) <= atol + rtol * std::fabs(want[i]));
  }
}

/// Bitwise equality of two tensors' elements (and shapes).
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const auto va = to_vector(a);
  const auto vb = to_vector(b);
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(double)) == 0;
}

}  // namespace

TEST_CASE("hvp matches central differences of the gradient", "[autograd][functional]") {
  const Mlp mlp(11);
  const auto f = mlp.loss();
  Rng rng(5);
  const auto v = random_like(mlp.params, rng);
  const auto hv = hvp(f, mlp.params, v);
  const auto plus = gradient_at(f, axpy(mlp.params, kEps, v));
  const auto minus = gradient_at(f, axpy(mlp.params, -kEps, v));
  const auto fd = axpy(plus, -1.0, minus);
  std::vector<double> want = flat(fd);
  for (auto& w : want) w /= 2.0 * kEps;
  check_close(flat(hv), want);
  for (std::size_t i = 0; i < hv.size(); ++i) CHECK(hv[i].shape() == mlp.params[i].shape());
}

TEST_CASE("hvp is symmetric, linear in v, and equals vhp", "[autograd][functional]") {
  const Mlp mlp(12);
  const auto f = mlp.loss();
  Rng rng(6);
  const auto u = random_like(mlp.params, rng);
  const auto v = random_like(mlp.params, rng);
  const auto hu = flat(hvp(f, mlp.params, u));
  const auto hv = flat(hvp(f, mlp.params, v));

  const double uhv = dot(flat(u), hv);
  const double vhu = dot(flat(v), hu);
  CHECK(uhv == Approx(vhu).epsilon(1e-10).margin(1e-12));

  const auto combo = hvp(f, mlp.params, axpy(axpy(u, 1.0, u), -0.5, axpy(v, 2.0, v)));  // 2u - 1.5v
  std::vector<double> want(hu.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = 2.0 * hu[i] - 1.5 * hv[i];
  check_close(flat(combo), want, 1e-12, 1e-10);

  check_close(flat(vhp(f, mlp.params, v)), hv, 1e-12, 1e-10);
}

TEST_CASE("dense hessian matches finite differences, is symmetric, and agrees with hvp",
          "[autograd][functional]") {
  const Mlp mlp(13);
  const auto f = mlp.loss();
  const Tensor h = hessian(f, mlp.params);
  const auto base = flat(mlp.params);
  const auto n = static_cast<std::int64_t>(base.size());
  REQUIRE(h.shape() == Shape{n, n});
  REQUIRE(n == 15 + 5 + 20 + 4 + 8 + 2);

  // Column j against a central difference of the gradient along coordinate j.
  std::vector<Tensor> basis;
  for (const auto& p : mlp.params) basis.push_back(zeros(p.shape()));
  std::int64_t col = 0;
  for (std::size_t j = 0; j < mlp.params.size(); ++j)
    for (std::int64_t e = 0; e < mlp.params[j].numel(); ++e, ++col) {
      basis[j].data<double>()[e] = 1.0;
      const auto plus = flat(gradient_at(f, axpy(mlp.params, kEps, basis)));
      const auto minus = flat(gradient_at(f, axpy(mlp.params, -kEps, basis)));
      basis[j].data<double>()[e] = 0.0;
      std::vector<double> want(plus.size());
      for (std::size_t i = 0; i < want.size(); ++i) want[i] = (plus[i] - minus[i]) / (2.0 * kEps);
      INFO("column " << col);
      check_close(to_vector(h.select(1, col)), want);
    }

  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < i; ++j) {
      INFO("H[" << i << ", " << j << "]");
      CHECK(h.at({i, j}) == Approx(h.at({j, i})).epsilon(1e-10).margin(1e-12));
    }

  Rng rng(7);
  const auto v = random_like(mlp.params, rng);
  const auto vf = flat(v);
  std::vector<double> hv_dense(static_cast<std::size_t>(n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) hv_dense[static_cast<std::size_t>(i)] += h.at({i, j}) * vf[static_cast<std::size_t>(j)];
  check_close(flat(hvp(f, mlp.params, v)), hv_dense, 1e-12, 1e-10);
}

TEST_CASE("HessianVectorOperator gives identical results on every apply", "[autograd][functional]") {
  const Mlp mlp(14);
  const auto f = mlp.loss();
  const HessianVectorOperator op(f, mlp.params);
  CHECK(op.size() == 54);

  // loss() and gradient() against a fresh forward and backward.
  const std::vector<Var> leaves = make_leaves(mlp.params);
  const Var y = f(leaves);
  CHECK(op.loss() == y.item());
  const auto g = grad({y}, leaves);
  const auto og = op.gradient();
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(bitwise_equal(og[i], g[i].value()));

  Rng rng(8);
  const auto v = random_like(mlp.params, rng);
  const auto first = op.apply(v);
  const auto fresh = hvp(f, mlp.params, v, HvpMethod::reverse_over_reverse);
  for (int rep = 0; rep < 5; ++rep) {
    const auto again = op.apply(v);
    for (std::size_t i = 0; i < first.size(); ++i) CHECK(bitwise_equal(again[i], first[i]));
  }
  for (std::size_t i = 0; i < first.size(); ++i) CHECK(bitwise_equal(fresh[i], first[i]));
  // A different vector in between does not disturb later products.
  (void)op.apply(random_like(mlp.params, rng));
  const auto after = op.apply(v);
  for (std::size_t i = 0; i < first.size(); ++i) CHECK(bitwise_equal(after[i], first[i]));
}

TEST_CASE("hvp at a zero-residual minimum matches the closed form", "[autograd][functional]") {
  // L(x) = (sqrt(x) - 1)^2 + (rsqrt(y) - 1)^2 at x = y = 1: the gradient vanishes exactly there,
  // L_xx = 0.5 x^{-3/2} = 0.5 and L_yy = 0.5 (y^{-3/2})^2 = 0.5 (cross terms are zero).
  const ScalarFunction f = [](const std::vector<Var>& p) {
    return sum(square(sqrt(p[0]) - 1.0)) + sum(square(rsqrt(p[1]) - 1.0));
  };
  const std::vector<Tensor> at = {ones({2}), ones({1})};
  const auto g = gradient_at(f, at);
  CHECK(to_vector(g[0]) == std::vector<double>{0.0, 0.0});
  const auto hv = hvp(f, at, {tensor({1.0, -2.0}), tensor({3.0})});
  CHECK(to_vector(hv[0])[0] == Approx(0.5));
  CHECK(to_vector(hv[0])[1] == Approx(-1.0));
  CHECK(to_vector(hv[1])[0] == Approx(1.5));
}

namespace {

/// Two inputs x [3], w [2, 3]; three outputs [2], [], [3]; the last does not depend on w.
std::vector<Var> two_by_three(const std::vector<Var>& in) {
  const Var& x = in[0];
  const Var& w = in[1];
  return {tanh(matmul(w, x)) * sqrt(sum(x * x) + 1.0), norm(x) * sum(exp(w * 0.3)), sin(x) * rsqrt(x * x + 2.0)};
}

/// Central differences of every output of f along the tangents.
std::vector<std::vector<double>> directional_fd(const Function& f, const std::vector<Tensor>& x,
                                                const std::vector<Tensor>& t) {
  NoGradGuard no_grad;
  const auto eval = [&](double s) {
    std::vector<Var> in;
    for (std::size_t i = 0; i < x.size(); ++i) in.emplace_back(x[i] + t[i] * s);
    std::vector<std::vector<double>> out;
    for (const auto& y : f(in)) out.push_back(to_vector(y.value()));
    return out;
  };
  auto plus = eval(kEps);
  const auto minus = eval(-kEps);
  for (std::size_t i = 0; i < plus.size(); ++i)
    for (std::size_t k = 0; k < plus[i].size(); ++k) plus[i][k] = (plus[i][k] - minus[i][k]) / (2.0 * kEps);
  return plus;
}

}  // namespace

TEST_CASE("jvp matches finite differences", "[autograd][functional]") {
  Rng rng(9);
  const std::vector<Tensor> x = {rng.normal({3}), rng.normal({2, 3})};
  const std::vector<Tensor> tangents = {rng.normal({3}), rng.normal({2, 3})};
  const auto before = flat(x);
  const JvpResult r = jvp(two_by_three, x, tangents);
  CHECK(flat(x) == before);
  const auto want = directional_fd(two_by_three, x, tangents);
  REQUIRE(r.tangents.size() == 3);
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("output " << i);
    check_close(to_vector(r.tangents[i]), want[i]);
  }
  // Outputs are f(primals).
  NoGradGuard no_grad;
  const auto direct = two_by_three({Var(x[0]), Var(x[1])});
  for (std::size_t i = 0; i < direct.size(); ++i) CHECK(bitwise_equal(r.outputs[i], direct[i].value()));
}

TEST_CASE("jvp of elementwise ops with unbounded derivatives is correct", "[autograd][functional]") {
  // d/dx sqrt(x) = 0.5 / sqrt(x), d/dx rsqrt(x) = -0.5 x^{-3/2}, d/dx log(x) = 1 / x.
  const Function f = [](const std::vector<Var>& in) {
    return std::vector<Var>{sqrt(in[0]), rsqrt(in[0]), log(in[0])};
  };
  const JvpResult r = jvp(f, {tensor({0.25, 4.0})}, {tensor({1.0, 2.0})});
  check_close(to_vector(r.tangents[0]), {1.0, 0.5}, 1e-12, 1e-12);
  check_close(to_vector(r.tangents[1]), {-4.0, -0.125}, 1e-12, 1e-12);
  check_close(to_vector(r.tangents[2]), {4.0, 0.5}, 1e-12, 1e-12);
}

TEST_CASE("jacobian matches finite differences and chunking is exact", "[autograd][functional]") {
  Rng rng(10);
  const std::vector<Tensor> x = {rng.normal({3}), rng.normal({2, 3})};
  const auto before = flat(x);
  const auto jac = jacobian(two_by_three, x);
  CHECK(flat(x) == before);
  REQUIRE(jac.size() == 3);
  const std::vector<Shape> out_shapes = {{2}, {}, {3}};
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(jac[i].size() == 2);
    for (std::size_t j = 0; j < 2; ++j) {
      Shape want_shape = out_shapes[i];
      want_shape.insert(want_shape.end(), x[j].shape().begin(), x[j].shape().end());
      CHECK(jac[i][j].shape() == want_shape);
    }
  }
  // Column (j, e) of every output against central differences along the basis vector e of input j.
  for (std::size_t j = 0; j < x.size(); ++j)
    for (std::int64_t e = 0; e < x[j].numel(); ++e) {
      std::vector<Tensor> t = {zeros({3}), zeros({2, 3})};
      t[j].data<double>()[e] = 1.0;
      const auto fd = directional_fd(two_by_three, x, t);
      for (std::size_t i = 0; i < 3; ++i) {
        const std::int64_t rows = shape_numel(out_shapes[i]);
        const Tensor block = jac[i][j].reshape({rows, x[j].numel()});
        INFO("output " << i << ", input " << j << ", element " << e);
        check_close(to_vector(block.select(1, e)), fd[i]);
      }
    }
  // Output 2 does not depend on w: exact zeros.
  for (double v : to_vector(jac[2][1])) CHECK(v == 0.0);

  for (std::int64_t chunk : {1, 3}) {
    const auto chunked = jacobian(two_by_three, x, {.chunk_size = chunk});
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 2; ++j) {
        INFO("chunk " << chunk << ", output " << i << ", input " << j);
        CHECK(bitwise_equal(chunked[i][j], jac[i][j]));
      }
  }
}

TEST_CASE("jacobian of an output that needs no gradient is zero", "[autograd][functional]") {
  const Function f = [](const std::vector<Var>& in) {
    return std::vector<Var>{Var(ones({2})), in[0] * 2.0};
  };
  const auto jac = jacobian(f, {tensor({1.0, 2.0})}, {.chunk_size = 1});
  CHECK(to_vector(jac[0][0]) == std::vector<double>(4, 0.0));
  CHECK(to_vector(jac[1][0]) == std::vector<double>{2.0, 0.0, 0.0, 2.0});
}

TEST_CASE("vjp matches the transposed jacobian", "[autograd][functional]") {
  Rng rng(12);
  const std::vector<Tensor> x = {rng.normal({3}), rng.normal({2, 3})};
  const std::vector<Tensor> cot = {rng.normal({2}), rng.normal({}), rng.normal({3})};
  const VjpResult r = vjp(two_by_three, x, cot);
  // J^T u by central differences: entry e of input j is sum_i <u_i, d f_i / d x_j[e]>.
  for (std::size_t j = 0; j < x.size(); ++j) {
    std::vector<double> want(static_cast<std::size_t>(x[j].numel()), 0.0);
    for (std::int64_t e = 0; e < x[j].numel(); ++e) {
      std::vector<Tensor> t = {zeros({3}), zeros({2, 3})};
      t[j].data<double>()[e] = 1.0;
      const auto fd = directional_fd(two_by_three, x, t);
      for (std::size_t i = 0; i < fd.size(); ++i) want[static_cast<std::size_t>(e)] += dot(fd[i], to_vector(cot[i]));
    }
    INFO("input " << j);
    check_close(to_vector(r.grads[j]), want);
  }
}
