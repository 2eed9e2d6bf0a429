// SymmetryTracker: the per-step bookkeeping of theory/symmetry.hpp (the laws it applies are
// derived in Note [Exact discrete laws] and Note [Continuous predictions] in symmetry.cpp).

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tensor/ops.hpp"
#include "theory/symmetry.hpp"

namespace theta::theory {

namespace {

// How a parameter tensor is cut into per-unit rows.
enum class Layout {
  rows,     // [U, n] as is; [U, a, b, ...] -> [U, a b ...] (Note [Convolution units])
  columns,  // [n, U] transposed; [n, U, a, ...] -> [U, n a ...]
  entries,  // [U] -> [U, 1]
  whole,    // [n] -> [1, n] (one unit: the bias sum of translation)
};

// linear: Q = concat over pieces of the row sums; diag / full: Q = sum_p sign_p X_p X_p^T
// (its diagonal, or the whole matrix).
enum class Form { linear, diag, full };

struct Piece {
  std::string name;
  Layout layout = Layout::rows;
  double sign = 1.0;
  std::size_t param = 0;  // index into the optimizer's parameters, set by attach()
};

// Note [Convolution units]
// A Conv2d weight [C_out, C_in, k, k] enters the quantities through its channels: output channel
// c is the slice W[c, :, :, :] (a unit of the layer it feeds, as row c of a Linear weight) and
// input channel c is W[:, c, :, :] (as column c). Scaling either slice by a scalar is the same
// symmetry as for a Linear layer, since the convolution is linear in each channel and applies one
// per-channel factor at every pixel and kernel offset; so the slices are flattened to rows and
// every law applies unchanged. Only inner products of matching rows are taken (X_p Y_p^T), so
// the order in which a slice is flattened does not matter, as long as parameter, gradient and
// buffer use the same one. 2-D tensors take the original path, untouched.

// The product of t's sizes except along `axis`.
std::int64_t numel_without(const Tensor& t, std::int64_t axis) {
  std::int64_t n = 1;
  for (std::int64_t a = 0; a < t.dim(); ++a)
    if (a != axis) n *= t.size(a);
  return n;
}

Tensor as_rows(const Tensor& t, Layout layout) {
  switch (layout) {
    case Layout::rows: return t.dim() == 2 ? t : t.reshape_copy({t.size(0), numel_without(t, 0)});
    case Layout::columns:
      return t.dim() == 2 ? t.t() : t.transpose(0, 1).reshape_copy({t.size(1), numel_without(t, 1)});
    case Layout::entries: return t.reshape({t.size(0), 1});
    case Layout::whole: return t.reshape({1, t.size(0)});
  }
  THETA_ASSERT(false);
  return t;
}

// max(a, b), except that a NaN in either (a diverged run) wins.
double worst_of(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? std::nan("") : std::max(a, b); }

std::string layer_of(const std::string& name) {
  const std::string suffix = ".weight";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return name.substr(0, name.size() - suffix.size());
  return name;
}

}  // namespace

struct SymmetryTracker::State {
  struct Group {
    std::string name;
    Symmetry symmetry = Symmetry::translation;
    Form form = Form::linear;
    std::vector<Piece> pieces;
    bool has_buffer = false;  // the optimizer holds momentum buffers for this group's parameters
    Tensor exact_q, exact_aux;  // exact law: Q and B (linear) or Z (quadratic)
    Tensor flow_u, flow_v;      // continuous prediction: Q and dQ/dt
    std::vector<Tensor> measured, exact, continuous, magnitude;
    double exact_error = 0.0, continuous_error = 0.0;
  };

  std::vector<Group> groups;
  std::vector<double> time;
  bool attached = false;
  std::vector<std::pair<std::string, autograd::Var>> params;
  double weight_decay = 0.0, momentum = 0.0, dampening = 0.0;

  // Q of group g from per-parameter tensors xs (indexed like params).
  static Tensor linear(const Group& g, const std::vector<Tensor>& xs, bool absolute) {
    std::vector<Tensor> parts;
    for (const auto& p : g.pieces) {
      const Tensor r = as_rows(xs[p.param], p.layout);
      parts.push_back(theta::sum(absolute ? theta::abs(r) : r, {1}));
    }
    return parts.size() == 1 ? parts[0] : theta::concat(parts, 0);
  }

  static Tensor quadratic(const Group& g, const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
    Tensor q;
    for (const auto& p : g.pieces) {
      const Tensor x = as_rows(xs[p.param], p.layout), y = as_rows(ys[p.param], p.layout);
      Tensor term = g.form == Form::diag ? theta::sum(theta::mul(x, y), {1}) : theta::matmul(x, y.t());
      term = term * p.sign;
      q = q.defined() ? theta::add(q, term) : term;
    }
    return q;
  }

  static Tensor quadratic_magnitude(const Group& g, const std::vector<Tensor>& xs) {
    Tensor m;
    for (const auto& p : g.pieces) {
      const Tensor x = as_rows(xs[p.param], p.layout);
      Tensor sq = theta::sum(theta::square(x), {1});
      if (g.form == Form::full) {
        const Tensor n = theta::sqrt(sq);
        sq = theta::outer(n, n);
      }
      m = m.defined() ? theta::add(m, sq) : sq;
    }
    return m;
  }

  static Tensor symmetric_part(const Group& g, const Tensor& z) {
    return g.form == Form::full ? theta::add(z, z.t()) * 0.5 : z;
  }

  Tensor measure(const Group& g, const std::vector<Tensor>& xs) const {
    return g.form == Form::linear ? linear(g, xs, false) : quadratic(g, xs, xs);
  }
  Tensor magnitude_of(const Group& g, const std::vector<Tensor>& xs) const {
    return g.form == Form::linear ? linear(g, xs, true) : quadratic_magnitude(g, xs);
  }

  void record(Group& g, const Tensor& measured, const Tensor& magnitude) {
    g.measured.push_back(measured);
    g.magnitude.push_back(magnitude);
    g.exact.push_back(g.exact_q);
    g.continuous.push_back(g.flow_u);
    g.exact_error = worst_of(g.exact_error, max_relative_error(measured, g.exact_q, magnitude));
    g.continuous_error = worst_of(g.continuous_error, max_relative_error(measured, g.flow_u, magnitude));
  }

  // Note [Increment form]
  // The exact laws are applied as Q + (small change), never as (1 - eta lambda) Q: the double
  // nearest to 1 - eta lambda is off by up to 2^-53, the same way at every step, so the factor
  // form drifts by about k 1e-16 relative after k steps (2e-13 after 2000 digits steps), while
  // the roundings of the increment form change sign from step to step, like the optimizer's own.

  // Advances group g by one step of learning rate eta (Note [Exact discrete laws]).
  void advance(Group& g, double eta, const std::vector<Tensor>& grads, const std::vector<Tensor>& buffers) {
    const double lambda = weight_decay, beta = momentum;
    const double c = (beta != 0.0 && g.has_buffer) ? 1.0 - dampening : 1.0;
    if (g.form == Form::linear) {
      if (beta == 0.0) {
        g.exact_q = theta::sub(g.exact_q, g.exact_q * (eta * lambda));
        g.flow_u = g.flow_u * decay_step(lambda, eta).decay;
      } else {
        g.exact_aux = theta::add(g.exact_aux * beta, g.exact_q * (c * lambda));
        g.exact_q = theta::sub(g.exact_q, g.exact_aux * eta);
        const OscillatorStep o = oscillator_step(eta * (1.0 + beta) / 2.0, 1.0 - beta, (1.0 - dampening) * lambda, eta);
        const Tensor u = theta::add(g.flow_u * o.transition[0][0], g.flow_v * o.transition[0][1]);
        g.flow_v = theta::add(g.flow_u * o.transition[1][0], g.flow_v * o.transition[1][1]);
        g.flow_u = u;
      }
    } else if (beta == 0.0) {
      const Tensor eg = quadratic(g, grads, grads);
      // (1 - eta lambda)^2 y as y - eta lambda (2 - eta lambda) y (Note [Increment form]).
      const Tensor shrink = g.exact_q * (eta * lambda * (2.0 - eta * lambda));
      g.exact_q = theta::add(theta::sub(g.exact_q, shrink), eg * (eta * eta));
      const DecayStep d = decay_step(2.0 * lambda, eta);
      g.flow_u = theta::add(g.flow_u * d.decay, eg * (eta * d.gain));
    } else {
      const Tensor eb = quadratic(g, buffers, buffers);
      const Tensor w = theta::add(g.exact_aux * beta, g.exact_q * (c * lambda));
      g.exact_q = theta::add(theta::sub(g.exact_q, w * (2.0 * eta)), eb * (eta * eta));
      g.exact_aux = theta::sub(w, eb * eta);
      const double mass = eta * (1.0 + beta) / 2.0;
      const OscillatorStep o = oscillator_step(mass, 1.0 - beta, 2.0 * (1.0 - dampening) * lambda, eta);
      const Tensor force = eb * (2.0 * mass);
      const Tensor u = theta::add(theta::add(g.flow_u * o.transition[0][0], g.flow_v * o.transition[0][1]),
                                  force * o.response[0]);
      g.flow_v = theta::add(theta::add(g.flow_u * o.transition[1][0], g.flow_v * o.transition[1][1]),
                            force * o.response[1]);
      g.flow_u = u;
    }
    if (beta != 0.0) g.has_buffer = true;
  }

  void observe(const nn::StepRecord& step) {
    std::vector<Tensor> values(params.size()), grads(params.size()), buffers(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      values[i] = params[i].second.value();
      if (i < step.momentum.size()) buffers[i] = step.momentum[i];
    }
    for (std::size_t k = 0; k < step.params.size(); ++k) {
      THETA_CHECK(step.params[k] < params.size(), std::logic_error,
                  "SymmetryTracker: step record does not match the optimizer's parameters");
      grads[step.params[k]] = step.grads[k];
    }
    for (auto& g : groups)
      for (const auto& p : g.pieces)
        THETA_CHECK(grads[p.param].defined() && (momentum == 0.0 || buffers[p.param].defined()), std::logic_error,
                    "SymmetryTracker: parameter '", p.name, "' of ", g.name, " had no gradient at step ",
                    step.step);
    time.push_back(time.back() + step.lr);
    for (auto& g : groups) {
      advance(g, step.lr, grads, buffers);
      record(g, measure(g, values), magnitude_of(g, values));
    }
  }
};

SymmetryTracker::SymmetryTracker() : state_(std::make_shared<State>()) {}

namespace {
void check_not_attached(const SymmetryTracker::State& s, const char* what) {
  THETA_CHECK(!s.attached, std::logic_error, "SymmetryTracker::", what, ": already attached to an optimizer");
}
}  // namespace

SymmetryTracker& SymmetryTracker::track_translation(const std::string& weight, const std::string& bias) {
  check_not_attached(*state_, "track_translation");
  State::Group g;
  g.name = "translation " + layer_of(weight);
  g.symmetry = Symmetry::translation;
  g.form = Form::linear;
  g.pieces.push_back({weight, Layout::columns, 1.0});
  if (!bias.empty()) g.pieces.push_back({bias, Layout::whole, 1.0});
  state_->groups.push_back(std::move(g));
  return *this;
}

SymmetryTracker& SymmetryTracker::track_scale(const std::string& weight, const std::string& bias) {
  check_not_attached(*state_, "track_scale");
  State::Group g;
  g.name = "scale " + layer_of(weight);
  g.symmetry = Symmetry::scale;
  g.form = Form::diag;
  g.pieces.push_back({weight, Layout::rows, 1.0});
  if (!bias.empty()) g.pieces.push_back({bias, Layout::entries, 1.0});
  state_->groups.push_back(std::move(g));
  return *this;
}

SymmetryTracker& SymmetryTracker::track_rescale(const std::string& in_weight, const std::string& in_bias,
                                                const std::string& out_weight) {
  check_not_attached(*state_, "track_rescale");
  State::Group g;
  g.name = "rescale " + layer_of(in_weight) + " -> " + layer_of(out_weight);
  g.symmetry = Symmetry::rescale;
  g.form = Form::diag;
  g.pieces.push_back({out_weight, Layout::columns, 1.0});
  g.pieces.push_back({in_weight, Layout::rows, -1.0});
  if (!in_bias.empty()) g.pieces.push_back({in_bias, Layout::entries, -1.0});
  state_->groups.push_back(std::move(g));
  return *this;
}

SymmetryTracker& SymmetryTracker::track_balancedness(const std::string& in_weight, const std::string& out_weight,
                                                     const std::string& in_bias) {
  check_not_attached(*state_, "track_balancedness");
  State::Group g;
  g.name = "balancedness " + layer_of(in_weight) + " -> " + layer_of(out_weight);
  g.symmetry = Symmetry::balancedness;
  g.form = Form::full;
  g.pieces.push_back({out_weight, Layout::columns, 1.0});
  g.pieces.push_back({in_weight, Layout::rows, -1.0});
  if (!in_bias.empty()) g.pieces.push_back({in_bias, Layout::entries, -1.0});
  state_->groups.push_back(std::move(g));
  return *this;
}

void SymmetryTracker::attach(nn::Sgd& optimizer) {
  State& s = *state_;
  check_not_attached(s, "attach");
  const nn::SgdOptions& o = optimizer.options();
  THETA_CHECK(!o.nesterov, std::invalid_argument, "SymmetryTracker::attach: Nesterov momentum is not supported");
  s.params = optimizer.named_params();
  s.weight_decay = o.weight_decay;
  s.momentum = o.momentum;
  s.dampening = o.dampening;
  const auto state = optimizer.state();
  std::vector<Tensor> values(s.params.size()), buffers(s.params.size());
  for (std::size_t i = 0; i < s.params.size(); ++i) {
    values[i] = s.params[i].second.value();
    for (const auto& [key, t] : state)
      if (key == "momentum." + s.params[i].first) buffers[i] = t;
  }
  for (auto& g : s.groups) {
    for (auto& p : g.pieces) {
      auto it = std::find_if(s.params.begin(), s.params.end(), [&](const auto& np) { return np.first == p.name; });
      if (it == s.params.end()) {
        std::string names;
        for (const auto& [name, v] : s.params) names += (names.empty() ? "" : ", ") + name;
        THETA_THROW(std::invalid_argument, "SymmetryTracker: ", g.name, ": the optimizer has no parameter '", p.name,
                    "' (its parameters: ", names.empty() ? std::string("none") : names, ")");
      }
      p.param = static_cast<std::size_t>(it - s.params.begin());
      const Tensor& v = values[p.param];
      // Weights may be Conv2d's [C_out, C_in, k, k] except for translation (Note [Convolution units]).
      const bool is_matrix = p.layout == Layout::rows || p.layout == Layout::columns;
      const bool conv_ok = is_matrix && g.form != Form::linear;
      const char* rank = conv_ok ? "at least 2-D" : (is_matrix ? "2-D" : "1-D");
      THETA_CHECK(conv_ok ? v.dim() >= 2 : v.dim() == (is_matrix ? 2 : 1), ShapeError, "SymmetryTracker: ", g.name,
                  ": '", p.name, "' must be ", rank, ", got ", shape_str(v.shape()));
      if (!buffers[p.param].defined()) buffers[p.param] = zeros(v.shape(), v.dtype());
    }
    // Every piece must cut into the same units.
    std::int64_t units = -1;
    for (const auto& p : g.pieces) {
      if (g.form == Form::linear && p.layout == Layout::whole) {
        THETA_CHECK(values[p.param].size(0) == values[g.pieces[0].param].size(0), ShapeError, "SymmetryTracker: ",
                    g.name, ": bias ", shape_str(values[p.param].shape()), " does not match weight ",
                    shape_str(values[g.pieces[0].param].shape()));
        continue;
      }
      const std::int64_t u = as_rows(values[p.param], p.layout).size(0);
      THETA_CHECK(units < 0 || u == units, ShapeError, "SymmetryTracker: ", g.name, ": '", p.name, "' ",
                  shape_str(values[p.param].shape()), " has ", u, " units, expected ", units);
      units = u;
    }
    g.has_buffer = true;
    for (const auto& p : g.pieces) {
      bool present = false;
      for (const auto& [key, t] : state) present = present || key == "momentum." + s.params[p.param].first;
      g.has_buffer = g.has_buffer && present;
    }
    const Tensor q = s.measure(g, values);
    g.exact_q = q;
    g.flow_u = q;
    if (g.form == Form::linear) {
      g.exact_aux = State::linear(g, buffers, false);
      g.flow_v = -g.exact_aux;
    } else {
      g.exact_aux = State::symmetric_part(g, State::quadratic(g, values, buffers));
      g.flow_v = g.exact_aux * -2.0;
    }
    s.record(g, q, s.magnitude_of(g, values));
  }
  s.time.assign(1, 0.0);
  s.attached = true;
  std::shared_ptr<State> shared = state_;
  optimizer.set_observer([shared](const nn::StepRecord& r) { shared->observe(r); });
}

std::size_t SymmetryTracker::size() const { return state_->groups.size(); }

std::int64_t SymmetryTracker::steps() const {
  return state_->time.empty() ? 0 : static_cast<std::int64_t>(state_->time.size()) - 1;
}

ConservedHistory SymmetryTracker::history(std::size_t i) const {
  THETA_CHECK(i < state_->groups.size(), IndexError, "SymmetryTracker::history: index ", i, " out of range for ",
              state_->groups.size(), " groups");
  const State::Group& g = state_->groups[i];
  ConservedHistory h;
  h.name = g.name;
  h.symmetry = g.symmetry;
  h.time = state_->time;
  if (g.measured.empty()) return h;
  h.measured = theta::stack(g.measured, 0);
  h.exact = theta::stack(g.exact, 0);
  h.continuous = theta::stack(g.continuous, 0);
  h.magnitude = theta::stack(g.magnitude, 0);
  return h;
}

double SymmetryTracker::max_exact_error() const {
  double worst = 0.0;
  for (const auto& g : state_->groups) worst = worst_of(worst, g.exact_error);
  return worst;
}

double SymmetryTracker::max_continuous_error() const {
  double worst = 0.0;
  for (const auto& g : state_->groups) worst = worst_of(worst, g.continuous_error);
  return worst;
}

}  // namespace theta::theory
