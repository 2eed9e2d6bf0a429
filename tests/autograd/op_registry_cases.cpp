// The op registry's table (tests/autograd/op_registry.hpp): every differentiable primitive and
// the composites built on them, each with input shapes, value domains and layouts that keep it away
// from kinks and ties.

#include "tests/autograd/op_registry.hpp"

#include <cmath>

#include "autograd/ops.hpp"

namespace theta::test::op_registry {

using namespace theta::autograd;

namespace {

/// A contiguous tensor of `shape` drawn from `domain`.
Tensor draw(const Shape& shape, Domain domain, Rng& rng) {
  switch (domain) {
    case Domain::real: return rng.normal(shape);
    case Domain::positive: return rng.uniform(shape, 0.5, 2.0);
    case Domain::distinct:
    case Domain::grid: {
      const std::int64_t n = shape_numel(shape);
      const std::vector<double> perm = to_vector(rng.permutation(n));
      std::vector<double> v(static_cast<std::size_t>(n));
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double sign = rng.uniform01() < 0.5 ? -1.0 : 1.0;
        v[i] = domain == Domain::distinct ? sign * (perm[i] + 0.5) * 0.1
                                          : (perm[i] - static_cast<double>(n / 2)) * 0.1;
      }
      return from_vector(v, shape);
    }
  }
  return Tensor();
}

}  // namespace

Tensor make_input(const InputSpec& spec, Layout layout, Rng& rng) {
  const Shape& shape = spec.shape;
  const auto rank = static_cast<std::int64_t>(shape.size());
  if (rank == 0 || layout == Layout::contiguous) return draw(shape, spec.domain, rng);
  if (layout == Layout::transposed) {
    std::vector<std::int64_t> perm(shape.size());
    Shape reversed(shape.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
      perm[i] = rank - 1 - static_cast<std::int64_t>(i);
      reversed[i] = shape[static_cast<std::size_t>(perm[i])];
    }
    return draw(reversed, spec.domain, rng).permute(perm);
  }
  if (layout == Layout::sliced) {
    Shape big = shape;
    for (auto& s : big) s = 2 * s + 1;
    Tensor t = draw(big, spec.domain, rng);
    for (std::int64_t a = 0; a < rank; ++a) t = t.slice(a, 1, 2 * shape[static_cast<std::size_t>(a)] + 1, 2);
    return t;
  }
  Shape one = shape;
  one[0] = 1;
  return draw(one, spec.domain, rng).expand(shape);
}

namespace {

/// A fixed [3, 4] where() mask with both branches taken in every row and column.
Tensor mask_3x4() { return tensor({1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1}, {3, 4}); }

/// A fixed [3, 4] relu_grad() input with positive, negative and zero entries in every row.
Tensor signs_3x4() { return tensor({1.5, -2, 0, 0.5, -1, 3, 2, 0, 0, -0.5, 1, -3}, {3, 4}); }

/// An int64 index tensor of `shape`.
Tensor index_2d(std::initializer_list<std::int64_t> values, const Shape& shape) {
  return from_indices(std::vector<std::int64_t>(values)).reshape(shape);
}

/// Unary elementwise cases: [3, 4] in every layout, plus a 0-d input.
void add_unary(std::vector<OpCase>& cases, const std::string& op, Domain domain, Var (*fn)(const Var&)) {
  cases.push_back({op, "[3, 4]", {{{3, 4}, domain}}, [fn](const std::vector<Var>& x) { return fn(x[0]); }});
  cases.push_back({op, "[]", {{{}, domain}}, [fn](const std::vector<Var>& x) { return fn(x[0]); }, kContiguousOnly});
}

/// Binary broadcasting cases: equal shapes, size-1 axes on both sides, a 0-d operand, and a
/// lower-rank operand.
void add_binary(std::vector<OpCase>& cases, const std::string& op, Domain da, Domain db,
                Var (*fn)(const Var&, const Var&)) {
  const auto call = [fn](const std::vector<Var>& x) { return fn(x[0], x[1]); };
  cases.push_back({op, "[3, 4] . [3, 4]", {{{3, 4}, da}, {{3, 4}, db}}, call});
  cases.push_back({op, "[3, 1] . [1, 4]", {{{3, 1}, da}, {{1, 4}, db}}, call, kNoBroadcast});
  cases.push_back({op, "[2, 3, 4] . [4]", {{{2, 3, 4}, da}, {{4}, db}}, call});
  cases.push_back({op, "[] . [3, 4]", {{{}, da}, {{3, 4}, db}}, call});
  cases.push_back({op, "[3, 4] . []", {{{3, 4}, da}, {{}, db}}, call});
}

/// The op table: one or more cases per primitive and composite.
std::vector<OpCase> build_cases() {
  std::vector<OpCase> c;
  using V = const std::vector<Var>&;

  // ---- elementwise unary ----
  add_unary(c, "neg", Domain::real, [](const Var& x) { return neg(x); });
  add_unary(c, "abs", Domain::distinct, [](const Var& x) { return abs(x); });
  add_unary(c, "exp", Domain::real, [](const Var& x) { return exp(x); });
  add_unary(c, "log", Domain::positive, [](const Var& x) { return log(x); });
  add_unary(c, "log1p", Domain::positive, [](const Var& x) { return log1p(x); });
  add_unary(c, "expm1", Domain::real, [](const Var& x) { return expm1(x); });
  add_unary(c, "sqrt", Domain::positive, [](const Var& x) { return sqrt(x); });
  add_unary(c, "rsqrt", Domain::positive, [](const Var& x) { return rsqrt(x); });
  add_unary(c, "tanh", Domain::real, [](const Var& x) { return tanh(x); });
  add_unary(c, "sigmoid", Domain::real, [](const Var& x) { return sigmoid(x); });
  add_unary(c, "relu", Domain::distinct, [](const Var& x) { return relu(x); });
  add_unary(c, "sin", Domain::real, [](const Var& x) { return sin(x); });
  add_unary(c, "cos", Domain::real, [](const Var& x) { return cos(x); });
  add_unary(c, "square", Domain::real, [](const Var& x) { return square(x); });
  add_unary(c, "sign", Domain::distinct, [](const Var& x) { return sign(x); });
  add_unary(c, "erf", Domain::real, [](const Var& x) { return erf(x); });
  add_unary(c, "reciprocal", Domain::positive, [](const Var& x) { return reciprocal(x); });
  add_unary(c, "neg", Domain::real, [](const Var& x) { return -x; });
  // Negative inputs for the odd-symmetric ops whose positive-only domain above misses them.
  add_unary(c, "reciprocal", Domain::distinct, [](const Var& x) { return reciprocal(x); });
  add_unary(c, "log", Domain::distinct, [](const Var& x) { return log(abs(x)); });
  c.push_back({"pow_scalar", "x^3", {{{3, 4}}}, [](V x) { return pow(x[0], 3.0); }});
  c.push_back({"pow_scalar", "x^2.5", {{{3, 4}, Domain::positive}}, [](V x) { return pow(x[0], 2.5); }});
  c.push_back({"pow_scalar", "x^-1.5", {{{3, 4}, Domain::positive}}, [](V x) { return pow(x[0], -1.5); }});
  c.push_back({"pow_scalar", "x^-2", {{{3, 4}, Domain::distinct}}, [](V x) { return pow(x[0], -2.0); }});
  c.push_back({"pow_scalar", "x^1", {{{3, 4}}}, [](V x) { return pow(x[0], 1.0); }});
  c.push_back({"pow_scalar", "x^0", {{{3, 4}}}, [](V x) { return pow(x[0], 0.0); }});
  c.push_back({"clamp", "[-0.32, 0.41]", {{{3, 4}, Domain::distinct}}, [](V x) { return clamp(x[0], -0.32, 0.41); }});
  c.push_back({"clamp", "[-0.32, 0.41] of [2, 3, 4]", {{{2, 3, 4}, Domain::distinct}},
               [](V x) { return clamp(x[0], -0.32, 0.41); }});

  // ---- elementwise binary ----
  add_binary(c, "add", Domain::real, Domain::real, [](const Var& a, const Var& b) { return a + b; });
  add_binary(c, "sub", Domain::real, Domain::real, [](const Var& a, const Var& b) { return a - b; });
  add_binary(c, "mul", Domain::real, Domain::real, [](const Var& a, const Var& b) { return a * b; });
  add_binary(c, "div", Domain::real, Domain::positive, [](const Var& a, const Var& b) { return a / b; });
  add_binary(c, "div", Domain::real, Domain::distinct, [](const Var& a, const Var& b) { return div(a, b); });
  add_binary(c, "pow", Domain::positive, Domain::real, [](const Var& a, const Var& b) { return pow(a, b); });
  add_binary(c, "maximum", Domain::distinct, Domain::grid, [](const Var& a, const Var& b) { return maximum(a, b); });
  add_binary(c, "minimum", Domain::distinct, Domain::grid, [](const Var& a, const Var& b) { return minimum(a, b); });
  c.push_back({"mul", "x * x (same Var twice)", {{{3, 4}}}, [](V x) { return x[0] * x[0]; }});
  add_unary(c, "add_scalar", Domain::real, [](const Var& x) { return add_scalar(x, -0.75); });
  add_unary(c, "mul_scalar", Domain::real, [](const Var& x) { return mul_scalar(x, -2.5); });
  add_unary(c, "div_scalar", Domain::real, [](const Var& x) { return div_scalar(x, 3.0); });
  c.push_back({"mul_scalar", "of a product (nonzero second derivative)", {{{3, 4}}},
               [](V x) { return mul_scalar(x[0] * sin(x[0]), 1.5) - x[0] / 7.0; }});
  c.push_back({"add", "scalar operators", {{{3, 4}}},
               [](V x) { return 2.0 - (1.5 + x[0] * 3.0) / 4.0 + 0.5 / (x[0] * x[0] + 1.0) - x[0] + 1.0; }});
  c.push_back({"where", "[3, 4] mask, [3, 4] a, [3, 4] b", {{{3, 4}}, {{3, 4}}},
               [](V x) { return where(mask_3x4(), x[0], x[1]); }});
  c.push_back({"where", "[3, 4] mask, [3, 1] a, [4] b", {{{3, 1}}, {{4}}},
               [](V x) { return where(mask_3x4(), x[0], x[1]); }, kNoBroadcast});
  c.push_back({"where", "[3, 1] mask, [3, 4] a, [] b", {{{3, 4}}, {{}}},
               [](V x) { return where(tensor({1, 0, 1}, {3, 1}), x[0], x[1]); }});
  c.push_back({"relu_grad", "[3, 4] grad, fixed [3, 4] x", {{{3, 4}}},
               [](V x) { return relu_grad(x[0], signs_3x4()); }});
  c.push_back({"relu_grad", "[3, 1] grad broadcast against [3, 4] x", {{{3, 1}}},
               [](V x) { return relu_grad(x[0], signs_3x4()); }, kNoBroadcast});
  c.push_back({"where", "same Var on both sides", {{{3, 4}}},
               [](V x) { return where(mask_3x4(), x[0] * x[0], sin(x[0])); }});

  // ---- reductions ----
  c.push_back({"sum", "all", {{{3, 4}}}, [](V x) { return sum(x[0]); }});
  c.push_back({"sum", "axis 1", {{{3, 4}}}, [](V x) { return sum(x[0], {1}); }});
  c.push_back({"sum", "axis 0 keepdim", {{{3, 4}}}, [](V x) { return sum(x[0], {0}, true); }});
  c.push_back({"sum", "axes {0, 2} of [2, 3, 2]", {{{2, 3, 2}}}, [](V x) { return sum(x[0], {0, 2}); }});
  c.push_back({"sum", "axis -1 keepdim of [2, 3, 2] squared", {{{2, 3, 2}}},
               [](V x) { return sum(x[0] * x[0], {-1}, true); }});
  // max/min: the broadcast layout repeats rows, so it only reduces within rows.
  c.push_back({"max", "all", {{{3, 4}, Domain::distinct}}, [](V x) { return max(x[0]); }, kNoBroadcast});
  c.push_back({"max", "axis 1", {{{3, 4}, Domain::distinct}}, [](V x) { return max(x[0], {1}); }});
  c.push_back({"max", "axis 0 keepdim", {{{3, 4}, Domain::distinct}}, [](V x) { return max(x[0], {0}, true); },
               kNoBroadcast});
  c.push_back({"max", "axes {1, 2} of [2, 3, 2], squared", {{{2, 3, 2}, Domain::distinct}},
               [](V x) { return max(x[0] * x[0], {1, 2}); }});
  c.push_back({"min", "all", {{{3, 4}, Domain::distinct}}, [](V x) { return min(x[0]); }, kNoBroadcast});
  c.push_back({"min", "axis 1", {{{3, 4}, Domain::distinct}}, [](V x) { return min(x[0], {1}); }});
  c.push_back({"min", "axis 0 keepdim", {{{3, 4}, Domain::distinct}}, [](V x) { return min(x[0], {0}, true); },
               kNoBroadcast});
  c.push_back({"logsumexp", "all", {{{3, 4}}}, [](V x) { return logsumexp(x[0]); }});
  c.push_back({"logsumexp", "axis 1", {{{3, 4}}}, [](V x) { return logsumexp(x[0], {1}); }});
  c.push_back({"logsumexp", "axis 0 keepdim", {{{3, 4}}}, [](V x) { return logsumexp(x[0], {0}, true); }});
  c.push_back({"logsumexp", "scaled axis -1 of [2, 3, 2]", {{{2, 3, 2}}},
               [](V x) { return logsumexp(x[0] * 3.0, {-1}); }});
  c.push_back({"norm2", "all", {{{3, 4}}}, [](V x) { return norm(x[0]); }});
  c.push_back({"norm2", "axis 1", {{{3, 4}}}, [](V x) { return norm(x[0], 2.0, {1}); }});
  c.push_back({"norm2", "axis 0 keepdim", {{{3, 4}}}, [](V x) { return norm(x[0], 2.0, {0}, true); }});
  c.push_back({"sum_to", "[3, 4] -> [1, 4]", {{{3, 4}}}, [](V x) { return sum_to(x[0], {1, 4}); }});
  c.push_back({"sum_to", "[3, 4] -> [3, 1]", {{{3, 4}}}, [](V x) { return sum_to(x[0], {3, 1}); }});
  c.push_back({"sum_to", "[2, 3, 4] -> [4]", {{{2, 3, 4}}}, [](V x) { return sum_to(x[0], {4}); }});
  c.push_back({"sum_to", "[3, 4] -> []", {{{3, 4}}}, [](V x) { return sum_to(x[0], {}); }});
  c.push_back({"expand", "[3, 1] -> [3, 4]", {{{3, 1}}}, [](V x) { return expand(x[0], {3, 4}); }, kNoBroadcast});
  c.push_back({"expand", "[4] -> [2, 3, 4]", {{{4}}}, [](V x) { return expand(x[0], {2, 3, 4}); }});
  c.push_back({"expand", "[] -> [2, 3], times a weight", {{{}}, {{2, 3}}},
               [](V x) { return expand(x[0], {2, 3}) * x[1]; }});

  // ---- views, joins, indexing ----
  c.push_back({"reshape", "[3, 4] -> [2, 6]", {{{3, 4}}}, [](V x) { return reshape(x[0], {2, 6}); }});
  c.push_back({"reshape", "[2, 3, 2] -> [6, -1] squared", {{{2, 3, 2}}},
               [](V x) { return square(reshape(x[0], {6, -1})); }});
  c.push_back({"permute", "[2, 3, 4] by {2, 0, 1}", {{{2, 3, 4}}}, [](V x) { return permute(x[0], {2, 0, 1}); }});
  c.push_back({"permute", "then sin", {{{2, 3, 4}}}, [](V x) { return sin(permute(x[0], {1, 2, 0})); }});
  c.push_back({"slice", "axis 1 [1:5:2] of [3, 5]", {{{3, 5}}}, [](V x) { return slice(x[0], 1, 1, 5, 2); }});
  c.push_back({"slice", "axis 0 [0:2] of [3, 4]", {{{3, 4}}}, [](V x) { return slice(x[0], 0, 0, 2); }});
  c.push_back({"slice", "axis -1 [2:] of [2, 3, 4], squared", {{{2, 3, 4}}},
               [](V x) { return square(slice(x[0], -1, 2, 4)); }});
  c.push_back({"slice_backward", "[3, 2] into [3, 5] at 1:5:2", {{{3, 2}}},
               [](V x) { return slice_backward(x[0], {3, 5}, 1, 1, 5, 2); }});
  c.push_back({"slice_backward", "[1, 4] into [3, 4] at 2:3, times a weight", {{{1, 4}}, {{3, 4}}},
               [](V x) { return slice_backward(x[0], {3, 4}, 0, 2, 3, 1) * x[1]; }, kNoBroadcast});
  c.push_back({"concat", "axis 0: [2, 3] + [1, 3]", {{{2, 3}}, {{1, 3}}},
               [](V x) { return concat({x[0], x[1]}, 0); }, kNoBroadcast});
  c.push_back({"concat", "axis 1: [2, 3] + [2, 2] + [2, 1]", {{{2, 3}}, {{2, 2}}, {{2, 1}}},
               [](V x) { return concat({x[0], x[1], x[2]}, 1); }});
  c.push_back({"concat", "the same Var twice, axis -1", {{{2, 3}}}, [](V x) { return concat({x[0], x[0]}, -1); }});
  // Five inputs: more than a Node keeps inline (inputs, versions and the mask spill to the heap).
  c.push_back({"concat", "axis 0 of five", {{{1, 3}}, {{2, 3}}, {{1, 3}}, {{3, 3}}, {{1, 3}}},
               [](V x) { return concat({x[0], x[1], x[2], x[3], x[4]}, 0); }, kNoBroadcast});
  c.push_back({"index_select", "axis 0 {2, 0, 2} of [4, 3]", {{{4, 3}}},
               [](V x) { return index_select(x[0], 0, from_indices({2, 0, 2})); }});
  c.push_back({"index_select", "axis 1 {1, 1, 0, 2} of [3, 3], squared", {{{3, 3}}},
               [](V x) { return square(index_select(x[0], 1, from_indices({1, 1, 0, 2}))); }});
  c.push_back({"gather", "axis 1 of [3, 4]", {{{3, 4}}},
               [](V x) { return gather(x[0], 1, index_2d({0, 3, 2, 2, 1, 0}, {3, 2})); }});
  c.push_back({"gather", "axis 0 of [3, 4], squared", {{{3, 4}}},
               [](V x) { return square(gather(x[0], 0, index_2d({2, 0, 1, 2, 0, 0, 2, 1}, {2, 4}))); }});
  c.push_back({"scatter_add", "axis 1 of [3, 4] with duplicates", {{{3, 4}}, {{3, 2}}},
               [](V x) { return scatter_add(x[0], 1, index_2d({0, 3, 2, 2, 1, 1}, {3, 2}), x[1]); }});
  c.push_back({"scatter_add", "axis 0, then times itself", {{{3, 4}}, {{2, 4}}},
               [](V x) {
                 const Var s = scatter_add(x[0], 0, index_2d({2, 0, 1, 2, 0, 0, 2, 1}, {2, 4}), x[1]);
                 return s * s;
               }});

  // ---- linear algebra ----
  const auto mm = [](V x) { return matmul(x[0], x[1]); };
  c.push_back({"matmul", "[3, 4] @ [4, 2]", {{{3, 4}}, {{4, 2}}}, mm});
  c.push_back({"matmul", "[2, 3, 4] @ [4, 2]", {{{2, 3, 4}}, {{4, 2}}}, mm});
  c.push_back({"matmul", "[2, 1, 3, 2] @ [3, 2, 2]", {{{2, 1, 3, 2}}, {{3, 2, 2}}}, mm});
  c.push_back({"matmul", "[3] @ [3, 2]", {{{3}}, {{3, 2}}}, mm});
  c.push_back({"matmul", "[2, 3] @ [3]", {{{2, 3}}, {{3}}}, mm});
  c.push_back({"matmul", "[4] @ [4]", {{{4}}, {{4}}}, mm});
  c.push_back({"matmul", "[2, 3, 4] @ [4]", {{{2, 3, 4}}, {{4}}}, mm});
  c.push_back({"matmul", "x @ x^T, same Var", {{{3, 4}}}, [](V x) { return matmul(x[0], t(x[0])); }});
  const auto lin = [](V x) { return linear(x[0], x[1]); };
  c.push_back({"linear", "[5, 3] with W [2, 3]", {{{5, 3}}, {{2, 3}}}, lin});
  c.push_back({"linear", "[2, 4, 3] with W [2, 3]", {{{2, 4, 3}}, {{2, 3}}}, lin});
  c.push_back({"linear", "[3] with W [4, 3]", {{{3}}, {{4, 3}}}, lin});
  c.push_back({"linear", "x with W = x, same Var", {{{3, 3}}}, [](V x) { return linear(x[0], x[0]); }});

  // ---- convolution and pooling (the adjoints are primitives too: their cases check the
  // third-order closure of conv2d) ----
  const Conv2dOptions strided{.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}};
  const Conv2dOptions circular{.padding = {1, 1}, .padding_mode = Padding::circular};
  c.push_back({"conv2d", "[2, 2, 4, 4] * [3, 2, 3, 3]", {{{2, 2, 4, 4}}, {{3, 2, 3, 3}}},
               [](V x) { return conv2d(x[0], x[1]); }});
  c.push_back({"conv2d", "stride, padding, dilation", {{{1, 2, 5, 6}}, {{2, 2, 3, 2}}},
               [strided](V x) { return conv2d(x[0], x[1], strided); }});
  c.push_back({"conv2d", "circular padding, squared", {{{2, 1, 3, 4}}, {{2, 1, 3, 3}}},
               [circular](V x) { return square(conv2d(x[0], x[1], circular)); }});
  c.push_back({"conv2d_input_grad", "stride, padding, dilation", {{{1, 2, 3, 4}}, {{2, 2, 3, 2}}},
               [strided](V x) { return conv2d_input_grad(x[0], x[1], {1, 2, 5, 6}, strided); }});
  c.push_back({"conv2d_input_grad", "circular", {{{2, 2, 3, 4}}, {{2, 1, 3, 3}}},
               [circular](V x) { return conv2d_input_grad(x[0], x[1], {2, 1, 3, 4}, circular); }});
  c.push_back({"conv2d_weight_grad", "stride, padding, dilation", {{{1, 2, 5, 6}}, {{1, 2, 3, 4}}},
               [strided](V x) { return conv2d_weight_grad(x[0], x[1], {2, 2, 3, 2}, strided); }});
  c.push_back({"conv2d_weight_grad", "circular", {{{2, 1, 3, 4}}, {{2, 2, 3, 4}}},
               [circular](V x) { return conv2d_weight_grad(x[0], x[1], {2, 1, 3, 3}, circular); }});
  c.push_back({"avg_pool2d", "2x2 stride 2 of [2, 2, 4, 5], squared", {{{2, 2, 4, 5}}},
               [](V x) { return square(avg_pool2d(x[0], {2, 2}, {2, 2})); }});
  c.push_back({"avg_pool2d", "3x3 stride 1 padding 1", {{{1, 2, 4, 4}}},
               [](V x) { return avg_pool2d(x[0], {3, 3}, {1, 1}, {1, 1}); }});
  c.push_back({"avg_pool2d_grad", "3x2 stride (1, 2) padding (1, 0), squared", {{{2, 1, 4, 2}}},
               [](V x) { return square(avg_pool2d_grad(x[0], {2, 1, 4, 4}, {3, 2}, {1, 2}, {1, 0})); }});
  c.push_back({"global_avg_pool2d", "[2, 3, 3, 4], squared", {{{2, 3, 3, 4}}},
               [](V x) { return square(global_avg_pool2d(x[0])); }});
  c.push_back({"global_avg_pool2d_grad", "[2, 3] to [2, 3, 2, 2], times itself", {{{2, 3}}},
               [](V x) {
                 const Var up = global_avg_pool2d_grad(x[0], {2, 3, 2, 2});
                 return up * up;
               }});

  // ---- composites (no backward of their own) ----
  c.push_back({"mean", "all", {{{3, 4}}}, [](V x) { return mean(x[0]); }});
  c.push_back({"mean", "axis 0 keepdim of squared", {{{3, 4}}}, [](V x) { return mean(x[0] * x[0], {0}, true); }});
  c.push_back({"var", "all", {{{3, 4}}}, [](V x) { return var(x[0]); }});
  c.push_back({"var", "axis 1, correction 1", {{{3, 4}}}, [](V x) { return var(x[0], {1}, 1); }});
  c.push_back({"var", "axis 0 keepdim", {{{3, 4}}}, [](V x) { return var(x[0], {0}, 0, true); }, kNoBroadcast});
  c.push_back({"softmax", "axis -1", {{{3, 4}}}, [](V x) { return softmax(x[0]); }});
  c.push_back({"softmax", "axis 0", {{{3, 4}}}, [](V x) { return softmax(x[0], 0); }, kNoBroadcast});
  c.push_back({"log_softmax", "axis -1", {{{3, 4}}}, [](V x) { return log_softmax(x[0]); }});
  c.push_back({"log_softmax", "axis 1 of [2, 3, 2]", {{{2, 3, 2}}}, [](V x) { return log_softmax(x[0], 1); }});
  c.push_back({"cross_entropy", "log_softmax + gather + mean", {{{3, 4}}},
               [](V x) { return -mean(gather(log_softmax(x[0]), 1, index_2d({3, 0, 1}, {3, 1}))); }});
  c.push_back({"norm", "p = 1", {{{3, 4}, Domain::distinct}}, [](V x) { return norm(x[0], 1.0); }});
  c.push_back({"norm", "p = 1, axis 1", {{{3, 4}, Domain::distinct}}, [](V x) { return norm(x[0], 1.0, {1}); }});
  c.push_back({"norm", "p = 2", {{{3, 4}}}, [](V x) { return norm(x[0], 2.0); }});
  c.push_back({"norm", "p = inf", {{{3, 4}, Domain::distinct}}, [](V x) { return norm(x[0], INFINITY); },
               kNoBroadcast});
  c.push_back({"norm", "p = inf, axis 1", {{{3, 4}, Domain::distinct}},
               [](V x) { return norm(x[0], INFINITY, {1}); }});
  c.push_back({"select", "axis 1 index 2", {{{3, 4}}}, [](V x) { return select(x[0], 1, 2); }});
  c.push_back({"select", "axis 0 index -1 of [2, 3, 2]", {{{2, 3, 2}}}, [](V x) { return select(x[0], 0, -1); }});
  c.push_back({"squeeze", "axis 1 of [3, 1, 4]", {{{3, 1, 4}}}, [](V x) { return squeeze(x[0], 1); }});
  c.push_back({"unsqueeze", "axis 0 and -1", {{{3, 4}}}, [](V x) { return unsqueeze(unsqueeze(x[0], 0), -1); }});
  c.push_back({"stack", "axis 0 of two", {{{3, 4}}, {{3, 4}}}, [](V x) { return stack({x[0], x[1]}, 0); }});
  c.push_back({"stack", "axis -1 of three", {{{2, 3}}, {{2, 3}}, {{2, 3}}},
               [](V x) { return stack({x[0], x[1] * x[2], x[2]}, -1); }});
  c.push_back({"transpose", "axes 0, 2 of [2, 3, 4]", {{{2, 3, 4}}}, [](V x) { return transpose(x[0], 0, 2); }});
  c.push_back({"t", "[3, 4] then matmul", {{{3, 4}}, {{3, 2}}}, [](V x) { return matmul(t(x[0]), x[1]); }});
  c.push_back({"flatten", "[2, 3, 2]", {{{2, 3, 2}}}, [](V x) { return flatten(x[0]); }});
  c.push_back({"vdot", "[3, 4] . [3, 4]", {{{3, 4}}, {{3, 4}}}, [](V x) { return vdot(x[0], x[1]); }});
  c.push_back({"vdot", "[5] . itself", {{{5}}}, [](V x) { return vdot(x[0], x[0]); }});
  c.push_back({"mlp", "tanh layer, softmax cross-entropy", {{{4, 3}}, {{2, 4}}, {{3}}},
               [](V x) {
                 const Var h = tanh(matmul(x[1], x[0]) + x[2]);
                 return -sum(gather(log_softmax(h, 1), 1, index_2d({2, 1}, {2, 1})));
               },
               kNoBroadcast});
  return c;
}

}  // namespace

const std::vector<OpCase>& cases() {
  static const std::vector<OpCase> all = build_cases();
  return all;
}

}  // namespace theta::test::op_registry
