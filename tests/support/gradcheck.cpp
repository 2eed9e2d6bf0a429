#include "tests/support/gradcheck.hpp"

#include <cmath>
#include <cstddef>
#include <sstream>

#include "autograd/engine.hpp"
#include "tensor/rng.hpp"

namespace theta::testing {

using autograd::Var;

namespace {

using Matrix = std::vector<std::vector<double>>;  // [rows][cols]

/// Row-major multi-index of `linear` in `shape`, printed as "[i, j]".
std::string index_str(std::int64_t linear, const Shape& shape) {
  std::vector<std::int64_t> index(shape.size(), 0);
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = linear % shape[d];
    linear /= shape[d];
  }
  std::ostringstream out;
  out << '[';
  for (std::size_t d = 0; d < index.size(); ++d) out << (d ? ", " : "") << index[d];
  out << ']';
  return out.str();
}

/// Collects comparisons and remembers the one that violates its tolerance the most.
class Comparer {
 public:
  Comparer(const char* check, const GradcheckOptions& options) : check_(check), options_(options) {}

  /// Compares one analytic derivative with its numerical estimate; `what` names the element.
  void compare(double analytic, double numerical, const std::string& what) {
    const double err = std::fabs(analytic - numerical);
    const double tol = options_.atol + options_.rtol * std::fabs(numerical);
    const bool bad = !(err <= tol);  // NaN counts as a failure
    if (std::isnan(err) || err > result_.max_error) result_.max_error = std::isnan(err) ? INFINITY : err;
    if (!bad) return;
    const double ratio = std::isnan(err) ? INFINITY : err / tol;
    if (result_.ok || ratio > worst_ratio_) {
      std::ostringstream out;
      out.precision(10);
      out << check_ << ": " << what << ": analytic " << analytic << " vs numerical " << numerical
          << " (|diff| " << err << " > atol " << options_.atol << " + rtol " << options_.rtol
          << " * |numerical|)";
      result_.message = out.str();
      worst_ratio_ = ratio;
    }
    result_.ok = false;
  }

  /// Records a failure that is not a numerical comparison (bad shape, dtype, ...).
  void fail(const std::string& why) {
    if (result_.ok) result_.message = std::string(check_) + ": " + why;
    result_.ok = false;
    worst_ratio_ = INFINITY;
  }

  const GradcheckResult& result() const { return result_; }

 private:
  const char* check_;
  const GradcheckOptions& options_;
  GradcheckResult result_;
  double worst_ratio_ = 0.0;
};

/// Contiguous copies of the inputs, which the numerical side perturbs in place.
std::vector<Tensor> contiguous_copies(const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  out.reserve(inputs.size());
  for (const auto& t : inputs) out.push_back(t.clone());
  return out;
}

/// Leaves over `values` that require gradients.
std::vector<Var> leaves_of(const std::vector<Tensor>& values) {
  std::vector<Var> out;
  out.reserve(values.size());
  for (const auto& v : values) out.emplace_back(v, true);
  return out;
}

/// A contiguous float64 tensor of `shape` with a 1 at row-major position `r`.
Tensor one_hot(const Shape& shape, std::int64_t r) {
  Tensor t = zeros(shape, DType::f64);
  t.data<double>()[r] = 1.0;
  return t;
}

/// f evaluated on constant copies (no recording), flattened.
std::vector<double> evaluate(const GradFunction& f, const std::vector<Tensor>& values) {
  autograd::NoGradGuard no_grad;
  std::vector<Var> xs;
  for (const auto& v : values) xs.emplace_back(v, false);
  return to_vector(f(xs).value());
}

/// Central difference of `eval` with respect to element k of the contiguous tensor `t`.
template <class Eval>
std::vector<double> central_difference(Tensor& t, std::int64_t k, double eps, const Eval& eval) {
  double* p = t.data<double>();
  const double saved = p[k];
  p[k] = saved + eps;
  const std::vector<double> plus = eval();
  p[k] = saved - eps;
  const std::vector<double> minus = eval();
  p[k] = saved;
  std::vector<double> d(plus.size());
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = (plus[i] - minus[i]) / (2.0 * eps);
  return d;
}

/// Flattened gradients of `grads` (zeros where undefined), checked against `like`'s shapes.
std::vector<double> flatten_grads(const std::vector<Var>& grads, const std::vector<Tensor>& like,
                                  Comparer& cmp, const char* what) {
  std::vector<double> out;
  for (std::size_t j = 0; j < like.size(); ++j) {
    if (!grads[j].defined()) {
      out.insert(out.end(), static_cast<std::size_t>(like[j].numel()), 0.0);
      continue;
    }
    const Tensor& g = grads[j].value();
    if (g.shape() != like[j].shape() || g.dtype() != DType::f64) {
      cmp.fail(std::string(what) + " of input " + std::to_string(j) + " has shape " + shape_str(g.shape()) +
               " and dtype " + dtype_name(g.dtype()) + ", expected " + shape_str(like[j].shape()) + " float64");
      out.insert(out.end(), static_cast<std::size_t>(like[j].numel()), 0.0);
      continue;
    }
    const auto v = to_vector(g);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

/// Fails unless every input is float64; returns the total element count.
std::int64_t check_inputs(const std::vector<Tensor>& inputs, Comparer& cmp) {
  std::int64_t total = 0;
  for (std::size_t j = 0; j < inputs.size(); ++j) {
    if (!inputs[j].defined() || inputs[j].dtype() != DType::f64)
      cmp.fail("input " + std::to_string(j) + " is not a defined float64 tensor");
    else
      total += inputs[j].numel();
  }
  return total;
}

/// Input j and element k of a flat position over the concatenated inputs.
std::string element_name(std::size_t flat, const std::vector<Tensor>& tensors, const char* kind) {
  std::size_t j = 0;
  while (flat >= static_cast<std::size_t>(tensors[j].numel())) flat -= static_cast<std::size_t>(tensors[j++].numel());
  return std::string(kind) + " " + std::to_string(j) + " " +
         index_str(static_cast<std::int64_t>(flat), tensors[j].shape());
}

}  // namespace

GradcheckResult gradcheck(const GradFunction& f, const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  Comparer cmp("gradcheck", options);
  const std::int64_t n = check_inputs(inputs, cmp);
  if (!cmp.result().ok) return cmp.result();

  // Analytic side, on the inputs as laid out by the caller.
  const std::vector<Var> leaves = leaves_of(inputs);
  const Var y = f(leaves);
  if (!y.defined() || y.dtype() != DType::f64) {
    cmp.fail("f returned an undefined or non-float64 Var");
    return cmp.result();
  }
  const Shape out_shape = y.shape();
  const std::int64_t m = y.numel();
  Matrix analytic(static_cast<std::size_t>(m), std::vector<double>(static_cast<std::size_t>(n), 0.0));
  if (y.requires_grad())
    for (std::int64_t r = 0; r < m; ++r)
      analytic[static_cast<std::size_t>(r)] = flatten_grads(
          autograd::grad({y}, leaves, {Var(one_hot(out_shape, r))}, {.retain_graph = true, .allow_unused = true}),
          inputs, cmp, "gradient");
  Rng rng(options.seed);
  const Tensor u = rng.normal(out_shape);
  std::vector<double> vjp(static_cast<std::size_t>(n), 0.0);
  if (y.requires_grad())
    vjp = flatten_grads(autograd::grad({y}, leaves, {Var(u)}, {.allow_unused = true}), inputs, cmp, "vjp");

  // Numerical side, on contiguous copies.
  std::vector<Tensor> copies = contiguous_copies(inputs);
  const std::vector<double> y_given = to_vector(y.value());
  const std::vector<double> y_copy = evaluate(f, copies);
  for (std::size_t i = 0; i < y_given.size(); ++i)
    if (!(std::fabs(y_given[i] - y_copy[i]) <= 1e-12 * (1.0 + std::fabs(y_copy[i]))))
      cmp.fail("forward value at output " + index_str(static_cast<std::int64_t>(i), out_shape) +
               " differs between the given layout and a contiguous copy: " + std::to_string(y_given[i]) +
               " vs " + std::to_string(y_copy[i]));

  const std::vector<double> u_flat = to_vector(u);
  std::size_t col = 0;
  for (std::size_t j = 0; j < copies.size(); ++j)
    for (std::int64_t k = 0; k < copies[j].numel(); ++k, ++col) {
      const auto d = central_difference(copies[j], k, options.eps, [&] { return evaluate(f, copies); });
      const std::string wrt = "input " + std::to_string(j) + " " + index_str(k, inputs[j].shape());
      double uj = 0.0;
      for (std::int64_t r = 0; r < m; ++r) {
        const auto ru = static_cast<std::size_t>(r);
        cmp.compare(analytic[ru][col], d[ru], "d output " + index_str(r, out_shape) + " / d " + wrt);
        uj += u_flat[ru] * d[ru];
      }
      cmp.compare(vjp[col], uj, "random-cotangent vjp, d / d " + wrt);
    }
  return cmp.result();
}

GradcheckResult gradgradcheck(const GradFunction& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  Comparer cmp("gradgradcheck", options);
  const std::int64_t n = check_inputs(inputs, cmp);
  if (!cmp.result().ok) return cmp.result();

  // F(x, u) = J(x)^T u, flattened over the inputs: n outputs, n + m arguments (x, then u).
  const std::vector<Var> xs = leaves_of(inputs);
  const Var y = f(xs);
  if (!y.defined() || y.dtype() != DType::f64) {
    cmp.fail("f returned an undefined or non-float64 Var");
    return cmp.result();
  }
  Rng rng(options.seed);
  const Tensor u = rng.normal(y.shape());
  const Tensor w_all = rng.normal({n});
  const std::int64_t m = y.numel();
  std::vector<Tensor> args = inputs;
  args.push_back(u);
  const Var u_leaf(u.clone(), true);
  std::vector<Var> targets = xs;
  targets.push_back(u_leaf);

  Matrix analytic(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(n + m), 0.0));
  std::vector<double> wvjp(static_cast<std::size_t>(n + m), 0.0);
  if (y.requires_grad()) {
    const std::vector<Var> g =
        autograd::grad({y}, xs, {u_leaf}, {.create_graph = true, .allow_unused = true});
    std::size_t row = 0;
    std::vector<Var> live_g, live_w;
    for (std::size_t j = 0; j < g.size(); ++j) {
      const std::int64_t nj = inputs[j].numel();
      if (g[j].defined() && g[j].requires_grad()) {
        for (std::int64_t e = 0; e < nj; ++e)
          analytic[row + static_cast<std::size_t>(e)] =
              flatten_grads(autograd::grad({g[j]}, targets, {Var(one_hot(inputs[j].shape(), e))},
                                           {.retain_graph = true, .allow_unused = true}),
                            args, cmp, "second derivative");
        live_g.push_back(g[j]);
        live_w.emplace_back(w_all.slice(0, static_cast<std::int64_t>(row), static_cast<std::int64_t>(row) + nj)
                                .reshape(inputs[j].shape()));
      }
      row += static_cast<std::size_t>(nj);
    }
    if (!live_g.empty())
      wvjp = flatten_grads(autograd::grad(live_g, targets, live_w, {.allow_unused = true}), args, cmp,
                           "random-cotangent second derivative");
  }

  // Numerical side: central differences of the first-order VJP on contiguous copies.
  std::vector<Tensor> copies = contiguous_copies(args);
  const std::vector<Tensor> x_copies(copies.begin(), copies.end() - 1);
  const auto first_order_vjp = [&] {
    const std::vector<Var> leaves = leaves_of(std::vector<Tensor>(copies.begin(), copies.end() - 1));
    const Var out = f(leaves);
    if (!out.requires_grad()) return std::vector<double>(static_cast<std::size_t>(n), 0.0);
    return flatten_grads(autograd::grad({out}, leaves, {Var(copies.back())}, {.allow_unused = true}), x_copies,
                         cmp, "first-order vjp");
  };
  const std::vector<double> w_flat = to_vector(w_all);
  std::size_t col = 0;
  for (std::size_t j = 0; j < copies.size(); ++j)
    for (std::int64_t k = 0; k < copies[j].numel(); ++k, ++col) {
      const auto d = central_difference(copies[j], k, options.eps, first_order_vjp);
      const bool is_u = j + 1 == copies.size();
      const std::string wrt = (is_u ? std::string("cotangent ") : "input " + std::to_string(j) + " ") +
                              index_str(k, args[j].shape());
      double wd = 0.0;
      for (std::size_t r = 0; r < static_cast<std::size_t>(n); ++r) {
        cmp.compare(analytic[r][col], d[r], "d vjp(" + element_name(r, inputs, "input") + ") / d " + wrt);
        wd += w_flat[r] * d[r];
      }
      cmp.compare(wvjp[col], wd, "random-cotangent second derivative, d / d " + wrt);
    }
  return cmp.result();
}

}  // namespace theta::testing
