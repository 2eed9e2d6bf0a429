// theta.theory: conserved quantities of SGD (SymmetryTracker and the quantities themselves) and
// deep linear network dynamics (Saxe et al.).

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "nn/layers.hpp"
#include "nn/optim.hpp"
#include "tensor/error.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/rng.hpp"
#include "tensor/shape.hpp"
#include "theory/deep_linear.hpp"
#include "theory/symmetry.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

nn::Sequential& as_sequential(nn::Module& model, const char* function) {
  auto* net = dynamic_cast<nn::Sequential*>(&model);
  if (net == nullptr) throw py::type_error(std::string(function) + ": model must be a theta.nn.Sequential");
  return *net;
}

Tensor optional_tensor(const std::optional<Tensor>& t) { return t ? *t : Tensor(); }

py::list tensor_list(const std::vector<Tensor>& tensors) {
  py::list out;
  for (const auto& t : tensors) out.append(array_from_tensor(t));
  return out;
}

py::dict problem_dict(const theory::DeepLinearProblem& p) {
  py::dict out;
  out["x"] = array_from_tensor(p.x);
  out["y"] = array_from_tensor(p.y);
  out["u"] = array_from_tensor(p.u);
  out["s"] = array_from_tensor(p.s);
  out["v"] = array_from_tensor(p.v);
  return out;
}

theory::DeepLinearProblem problem_from_dict(const py::dict& d) {
  theory::DeepLinearProblem p;
  const auto field = [&](const char* key) {
    if (!d.contains(key)) {
      throw py::key_error(std::string("problem: missing \"") + key + "\" (expected the keys x, y, u, s, v)");
    }
    return to_tensor(d[key], key);
  };
  p.x = field("x");
  p.y = field("y");
  p.u = field("u");
  p.s = field("s");
  p.v = field("v");
  return p;
}

// Before attach() a group has a name but no records yet: its tensors are None.
py::object array_or_none(const Tensor& t) { return t.defined() ? py::object(array_from_tensor(t)) : py::none(); }

py::dict history_dict(const theory::ConservedHistory& h) {
  py::dict out;
  out["name"] = h.name;
  out["symmetry"] = theory::symmetry_name(h.symmetry);
  out["time"] = py::array_t<double>(static_cast<py::ssize_t>(h.time.size()), h.time.data());
  out["measured"] = array_or_none(h.measured);
  out["exact"] = array_or_none(h.exact);
  out["continuous"] = array_or_none(h.continuous);
  out["magnitude"] = array_or_none(h.magnitude);
  return out;
}

py::array doubles(const std::vector<double>& v) {
  return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
}

// Steps of SGD on loss(model(x_b), y_b) over consecutive minibatches of x (all of x when
// batch_size is 0), cycling through the data in order. The GIL is released by the caller.
void sgd_steps(nn::Module& model, nn::Sgd& opt, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
               std::int64_t steps, std::int64_t batch_size) {
  const std::int64_t n = x.size(0);
  const std::int64_t b = batch_size <= 0 ? n : std::min(batch_size, n);
  std::int64_t start = 0;
  for (std::int64_t k = 0; k < steps; ++k) {
    check_interrupt();
    if (start + b > n) start = 0;
    model.zero_grad();
    const autograd::Var out = model(autograd::Var(x.slice(0, start, start + b)));
    autograd::backward(loss(out, y.slice(0, start, start + b)));
    opt.step();
    start += b;
  }
}

}  // namespace

void bind_theory_dynamics(py::module_& m) {
  // ---- conserved quantities -------------------------------------------------------------------
  m.def("translation_quantity", &theory::translation_quantity, py::arg("weight"),
        "Translation: weight:[C, J] -> [J], Q_j = sum_c weight[c, j] (a bias [C] gives its sum).");
  m.def(
      "scale_quantity",
      [](const Tensor& weight, const std::optional<Tensor>& bias) {
        return theory::scale_quantity(weight, optional_tensor(bias));
      },
      py::arg("weight"), py::arg("bias") = py::none(),
      "Scale: weight:[C, I] or Conv2d [C, C_in, k, k], bias:[C] -> [C], |W[c]|^2 + b_c^2.");
  m.def(
      "rescale_quantity",
      [](const Tensor& in_weight, const std::optional<Tensor>& in_bias, const Tensor& out_weight) {
        return theory::rescale_quantity(in_weight, optional_tensor(in_bias), out_weight);
      },
      py::arg("in_weight"), py::arg("in_bias"), py::arg("out_weight"),
      "Rescale: in_weight:[H, I], in_bias:[H] or None, out_weight:[O, H] -> [H], "
      "|W_out[:, i]|^2 - |W_in[i]|^2 - b_in[i]^2 (Conv2d weights [H, C, k, k], [O, H, k, k]: channel slices).");
  m.def(
      "balancedness",
      [](const Tensor& in_weight, const Tensor& out_weight, const std::optional<Tensor>& in_bias) {
        return theory::balancedness(in_weight, out_weight, optional_tensor(in_bias));
      },
      py::arg("in_weight"), py::arg("out_weight"), py::arg("in_bias") = py::none(),
      "Balancedness of a linear hidden layer: W_out^T W_out - W_in W_in^T - b_in b_in^T -> [H, H] "
      "(Conv2d weights: channel slices as rows).");
  m.def(
      "decay_step",
      [](double rate, double h) {
        const theory::DecayStep s = theory::decay_step(rate, h);
        return py::make_tuple(s.decay, s.gain);
      },
      py::arg("rate"), py::arg("h"), "(decay, gain) of u' = -rate u + f over a step h: u(t+h) = decay u(t) + gain f.");
  m.def(
      "oscillator_step",
      [](double mass, double damping, double stiffness, double h) {
        const theory::OscillatorStep s = theory::oscillator_step(mass, damping, stiffness, h);
        py::array_t<double> transition({2, 2});
        auto t = transition.mutable_unchecked<2>();
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) t(i, j) = s.transition[i][j];
        py::array_t<double> response(2);
        response.mutable_at(0) = s.response[0];
        response.mutable_at(1) = s.response[1];
        return py::make_tuple(transition, response);
      },
      py::arg("mass"), py::arg("damping"), py::arg("stiffness"), py::arg("h"),
      "(transition [2, 2], response [2]) of m u'' + c u' + k u = f over a step h: "
      "(u, u')(t+h) = transition (u, u')(t) + response f.");
  m.def("max_relative_error", &theory::max_relative_error, py::arg("measured"), py::arg("predicted"),
        py::arg("magnitude"), "max |measured - predicted| / magnitude over every entry.");
  m.def("relative_error_per_step", &theory::relative_error_per_step, py::arg("measured"), py::arg("predicted"),
        py::arg("magnitude"), "Per-row max of |measured - predicted| / magnitude: [K+1, ...] -> [K+1].");

  py::class_<theory::SymmetryTracker>(m, "SymmetryTracker", R"doc(
Records conserved quantities (translation, scale, rescale, balancedness) at every step of an SGD
run, with the predictions of the exact discrete laws and of the continuous-time flows. Configure
with track_*() (parameter names as in model.named_parameters()), then run_sgd(...) (or attach to
a theta.nn.Sgd optimizer); read history(i) and the worst relative errors.)doc")
      .def(py::init<>())
      .def("track_translation", &theory::SymmetryTracker::track_translation, py::arg("weight"), py::arg("bias") = "",
           py::return_value_policy::reference_internal, "A layer feeding softmax cross-entropy.")
      .def("track_scale", &theory::SymmetryTracker::track_scale, py::arg("weight"), py::arg("bias") = "",
           py::return_value_policy::reference_internal,
           "A Linear feeding BatchNorm1d, or a Conv2d feeding BatchNorm2d, with eps = 0.")
      .def("track_rescale", &theory::SymmetryTracker::track_rescale, py::arg("in_weight"), py::arg("in_bias"),
           py::arg("out_weight"), py::return_value_policy::reference_internal,
           "A positively homogeneous hidden layer between two Linear or two Conv2d layers (in_bias may be \"\").")
      .def("track_balancedness", &theory::SymmetryTracker::track_balancedness, py::arg("in_weight"),
           py::arg("out_weight"), py::arg("in_bias") = "", py::return_value_policy::reference_internal,
           "A linear hidden layer between two Linear or two Conv2d layers.")
      .def(
          "track_sequential",
          [](theory::SymmetryTracker& self, const std::shared_ptr<nn::Module>& model,
             bool softmax_output) -> theory::SymmetryTracker& {
            return self.track_sequential(as_sequential(*model, "track_sequential"), softmax_output);
          },
          py::arg("model").none(false), py::arg("softmax_output") = false, py::return_value_policy::reference_internal,
          "Every symmetry the layer sequence of a Sequential model carries (translation of the last layer "
          "when its logits go to softmax cross-entropy).")
      .def(
          "attach", [](theory::SymmetryTracker& self, nn::Sgd& optimizer) { self.attach(optimizer); },
          py::arg("optimizer"), "Records Q now and installs the tracker as a theta.nn.Sgd optimizer's observer.")
      .def(
          "run_sgd",
          [](theory::SymmetryTracker& self, const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y,
             std::int64_t steps, double lr, double momentum, double dampening, double weight_decay,
             std::int64_t batch_size, const std::string& loss) {
            require_batch(x, "run_sgd", "x");
            THETA_CHECK(y.dim() >= 1 && y.size(0) == x.size(0), ShapeError, "run_sgd: x ", shape_str(x.shape()),
                        " and y ", shape_str(y.shape()), " must have the same number of rows");
            const nn::LossFn fn = batch_loss(loss);
            ReleaseGil released;
            auto lock = lock_module(*model);
            nn::SgdOptions options;
            options.lr = lr;
            options.momentum = momentum;
            options.dampening = dampening;
            options.weight_decay = weight_decay;
            nn::Sgd opt(model->named_parameters(), options);
            self.attach(opt);
            sgd_steps(*model, opt, x, y, fn, steps, batch_size);
          },
          py::arg("model").none(false), py::arg("x"), py::arg("y"), py::kw_only(), py::arg("steps"),
          py::arg("lr") = 0.01, py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0,
          py::arg("batch_size") = 0, py::arg("loss") = "mse",
          "Attaches to a fresh SGD optimizer (torch.optim.SGD's rules) over the model's parameters and trains "
          "it for `steps` steps on consecutive minibatches of batch_size rows (0: the whole batch).")
      .def("__len__", &theory::SymmetryTracker::size)
      .def_property_readonly("steps", &theory::SymmetryTracker::steps, "Steps recorded so far.")
      .def(
          "history", [](const theory::SymmetryTracker& self, std::size_t i) { return history_dict(self.history(i)); },
          py::arg("i"),
          "Group i: {\"name\", \"symmetry\", \"time\" [K+1], \"measured\", \"exact\", \"continuous\", "
          "\"magnitude\"} with quantities [K+1, units...].")
      .def("max_exact_error", &theory::SymmetryTracker::max_exact_error,
           "Worst relative error of the exact discrete-law predictions.")
      .def("max_continuous_error", &theory::SymmetryTracker::max_continuous_error,
           "Worst relative error of the continuous-time predictions.");

  // ---- deep linear networks -------------------------------------------------------------------
  m.def(
      "make_saxe_problem",
      [](std::int64_t samples, std::int64_t input_dim, std::int64_t output_dim, const std::vector<double>& strengths,
         std::uint64_t seed) {
        theory::SaxeProblemOptions options;
        options.samples = samples;
        options.input_dim = input_dim;
        options.output_dim = output_dim;
        options.strengths = strengths;
        Rng rng(seed);
        return problem_dict(theory::make_saxe_problem(options, rng));
      },
      py::kw_only(), py::arg("samples") = 16, py::arg("input_dim") = 8, py::arg("output_dim") = 6,
      py::arg("strengths") = std::vector<double>{2.0, 1.5, 1.0, 0.5}, py::arg("seed") = 0,
      "A regression task with whitened inputs and Sigma_yx = U diag(s) V^T: {\"x\", \"y\", \"u\", \"s\", \"v\"}.");
  m.def(
      "problem_from_data",
      [](const Tensor& x, const Tensor& y, std::int64_t modes) {
        return problem_dict(theory::problem_from_data(x, y, modes));
      },
      py::arg("x"), py::arg("y"), py::arg("modes"),
      "The mode structure of whitened data: the leading `modes` singular triplets of y^T x / n, as a problem dict.");
  m.def("input_output_correlation", &theory::input_output_correlation, py::arg("x"), py::arg("y"),
        "Sigma_yx = y^T x / n -> [d_out, d_in].");
  m.def("saxe_mode_strength", py::vectorize(&theory::saxe_mode_strength), py::arg("s"), py::arg("u0"), py::arg("t"),
        "Saxe's depth-2 mode strength s e^{2st} / (e^{2st} - 1 + s/u0) (vectorised over arrays).");
  m.def("saxe_half_time", py::vectorize(&theory::saxe_half_time), py::arg("s"), py::arg("u0"),
        "The time the depth-2 mode reaches s/2: ln(s/u0 - 1) / (2s), for 0 < u0 < s/2.");
  m.def("depth_d_rate", &theory::depth_d_rate, py::arg("depth"), py::arg("s"), py::arg("u"),
        "The depth-D mode ODE's right-hand side D u^{2 - 2/D} (s - u).");
  m.def(
      "integrate_depth_d",
      [](int depth, double s, double u0, const std::vector<double>& times, double dt) {
        std::vector<double> out;
        {
          ReleaseGil released;
          out = theory::integrate_depth_d(depth, s, u0, times, dt);
        }
        return doubles(out);
      },
      py::arg("depth"), py::arg("s"), py::arg("u0"), py::arg("times"), py::arg("dt") = 1e-4,
      "u(t) of du/dt = D u^{2 - 2/D} (s - u), u(0) = u0, by RK4 at each of the non-decreasing times.");
  m.def(
      "balanced_aligned_init",
      [](const std::vector<std::int64_t>& widths, const Tensor& u, const Tensor& v, const Tensor& u0,
         std::uint64_t seed) {
        Rng rng(seed);
        return tensor_list(theory::balanced_aligned_init(widths, u, v, u0, rng));
      },
      py::arg("widths"), py::arg("u"), py::arg("v"), py::arg("u0"), py::arg("seed") = 0,
      "Balanced weights [W_1, ..., W_D] aligned with the modes: W_D ... W_1 = U diag(u0) V^T.");
  m.def(
      "random_init",
      [](const std::vector<std::int64_t>& widths, double sigma, std::uint64_t seed) {
        Rng rng(seed);
        return tensor_list(theory::random_init(widths, sigma, rng));
      },
      py::arg("widths"), py::arg("sigma"), py::arg("seed") = 0,
      "Independent N(0, sigma^2) weights W_l:[h_l, h_{l-1}] for widths [d_in, h_1, ..., d_out].");
  m.def(
      "make_deep_linear_net",
      [](const std::vector<Tensor>& weights) {
        return std::shared_ptr<nn::Module>(theory::make_deep_linear_net(weights));
      },
      py::arg("weights"), "A bias-free linear network (a theta.nn.Module) holding copies of weights [W_1, ..., W_D].");
  m.def(
      "linear_weights",
      [](const std::shared_ptr<nn::Module>& model) {
        return tensor_list(theory::linear_weights(as_sequential(*model, "linear_weights")));
      },
      py::arg("model").none(false), "The weights of the Linear layers of a Sequential model, in order (views).");
  m.def("end_to_end", &theory::end_to_end, py::arg("weights"), "W_D ... W_1 -> [h_D, h_0].");
  m.def("mode_strengths", &theory::mode_strengths, py::arg("weights"), py::arg("u"), py::arg("v"),
        "u_a = u[:, a]^T W_D ... W_1 v[:, a] -> [m].");
  m.def(
      "deep_linear_balancedness",
      [](const std::vector<Tensor>& weights) { return tensor_list(theory::balancedness(weights)); }, py::arg("weights"),
      "[W_{l+1}^T W_{l+1} - W_l W_l^T for l = 1..D-1].");
  m.def("effective_initial_strength", &theory::effective_initial_strength, py::arg("weights"), py::arg("u"),
        py::arg("v"), "Depth 2: |W_1 v_a + W_2^T u_a|^2 / 4 -> [m], the strength a small random init acts as.");
  m.def(
      "train_deep_linear",
      [](const std::shared_ptr<nn::Module>& model, const py::dict& problem, double eta, std::int64_t steps,
         std::int64_t record_every, bool check_balancedness) {
        nn::Sequential& net = as_sequential(*model, "train_deep_linear");
        const theory::DeepLinearProblem p = problem_from_dict(problem);
        theory::GdOptions options;
        options.eta = eta;
        options.steps = steps;
        options.record_every = record_every;
        options.check_balancedness = check_balancedness;
        theory::GdTrace trace;
        {
          ReleaseGil released;
          auto lock = lock_module(*model);
          trace = theory::train_deep_linear(net, p, options);
        }
        py::dict out;
        out["times"] = doubles(trace.times);
        out["strengths"] = array_from_tensor(trace.strengths);
        out["losses"] = doubles(trace.losses);
        out["max_step_law_error"] = trace.max_step_law_error;
        out["max_total_law_error"] = trace.max_total_law_error;
        out["drift"] = doubles(trace.drift);
        out["predicted_drift"] = doubles(trace.predicted_drift);
        out["law_residual"] = doubles(trace.law_residual);
        return out;
      },
      py::arg("model").none(false), py::arg("problem"), py::kw_only(), py::arg("eta") = 1e-3, py::arg("steps") = 1000,
      py::arg("record_every") = 10, py::arg("check_balancedness") = false, R"doc(
Full-batch gradient descent on 1/(2n) sum |y - W_D...W_1 x|^2 for a make_deep_linear_net model and
a problem dict (make_saxe_problem). Returns {"times" (t = eta k), "strengths" [records, m],
"losses", and with check_balancedness the balancedness law errors and drifts}.)doc");
  m.def(
      "crossing_times",
      [](const std::vector<double>& times, const Tensor& strengths, const Tensor& s, double fraction) {
        return doubles(theory::crossing_times(times, strengths, s, fraction));
      },
      py::arg("times"), py::arg("strengths"), py::arg("s"), py::arg("fraction") = 0.5,
      "The first time each mode reaches fraction * s_a (linear interpolation; NaN if never) -> [m].");
}

}  // namespace theta::python
