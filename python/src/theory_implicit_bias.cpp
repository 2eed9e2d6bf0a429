// theta.theory: the closed forms of implicit bias (theory/least_squares.hpp, max_margin.hpp,
// diagonal_net.hpp) and the DiagonalNet module.

#include <memory>
#include <optional>
#include <sstream>

#include "theory/diagonal_net.hpp"
#include "theory/least_squares.hpp"
#include "theory/max_margin.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

void bind_least_squares(py::module_& m) {
  py::class_<theory::LeastSquaresModes>(m, "LeastSquaresModes", R"doc(
The nonzero eigenmodes of x^T x / n for least squares with loss 1/(2n) |x w - y|^2, from
least_squares_modes(x, y): sigma [r] (eigenvalues, descending), v [d, r] (unit eigenvectors, a basis
of the row space), coef [r] (the coordinates of x^+ y along v), samples (n).)doc")
      .def_property_readonly("sigma", [](const theory::LeastSquaresModes& s) { return s.sigma; })
      .def_property_readonly("v", [](const theory::LeastSquaresModes& s) { return s.v; })
      .def_property_readonly("coef", [](const theory::LeastSquaresModes& s) { return s.coef; })
      .def_property_readonly("samples", [](const theory::LeastSquaresModes& s) { return s.samples; })
      .def("__repr__", [](const theory::LeastSquaresModes& s) {
        std::ostringstream out;
        out << "theta.theory.LeastSquaresModes(rank=" << s.sigma.size(0) << ", features=" << s.v.size(0)
            << ", samples=" << s.samples << ")";
        return out.str();
      });

  m.def(
      "least_squares_modes",
      [](const Tensor& x, const Tensor& y) { return without_gil([&] { return theory::least_squares_modes(x, y); }); },
      py::arg("x"), py::arg("y"),
      "The modes of x [n, d], y [n] (singular values below max(n, d) eps s_max count as zero).");
  m.def(
      "min_norm_solution",
      [](const Tensor& x, const Tensor& y) { return without_gil([&] { return theory::min_norm_solution(x, y); }); },
      py::arg("x"), py::arg("y"), "x^+ y [d], the minimum-norm minimiser of |x w - y|, for x [n, d], y [n].");
  m.def("null_space_component", &theory::null_space_component, py::arg("modes"), py::arg("w"),
        "w - V V^T w [d]: the part of w [d] the data never see (gradient descent never changes it).");
  m.def("null_space_projector", &theory::null_space_projector, py::arg("modes"),
        "The projector I - V V^T [d, d] onto the null space of the data.");
  m.def("spectral_solution", &theory::spectral_solution, py::arg("modes"), py::arg("gains"),
        "sum_i gains[i] coef[i] v_i [d] for gains [r].");
  m.def("gradient_flow_gains", &theory::gradient_flow_gains, py::arg("modes"), py::arg("t"),
        "1 - exp(-t sigma_i) [r]: gradient flow's gain per mode at time t >= 0.");
  m.def("ridge_gains", &theory::ridge_gains, py::arg("modes"), py::arg("lam"),
        "sigma_i / (sigma_i + lam) [r]: ridge's gain per mode for the penalty (lam / 2) |w|^2, lam > 0.");
  m.def(
      "gradient_flow_solution",
      [](const theory::LeastSquaresModes& modes, double t, const std::optional<Tensor>& w0) {
        return theory::gradient_flow_solution(modes, t, w0.value_or(Tensor()));
      },
      py::arg("modes"), py::arg("t"), py::arg("w0") = py::none(),
      "Gradient flow on 1/(2n) |x w - y|^2 from w0 [d] (None: from zero) at time t >= 0 -> [d].");
  m.def("ridge_solution", &theory::ridge_solution, py::arg("modes"), py::arg("lam"),
        "argmin 1/(2n) |x w - y|^2 + (lam / 2) |w|^2 [d], lam > 0.");
  m.def("shrinkage_ratio", &theory::shrinkage_ratio, py::arg("x"),
        "(1 - e^-x)(1 + x) / x: gradient flow's over ridge's gain of a mode with t sigma = x under lam = 1/t; "
        "in [1, 1.298426] (Ali, Kolter and Tibshirani 2019).");
  m.def("spectral_risk", &theory::spectral_risk, py::arg("modes"), py::arg("gains"), py::arg("w_true"),
        py::arg("noise_std"),
        "E |w_hat - w_true|^2 of the spectral estimator with gains [r] when y = x w_true + N(0, noise_std^2).");
  m.def("linear_estimator_risk", &theory::linear_estimator_risk, py::arg("a"), py::arg("x"), py::arg("w_true"),
        py::arg("noise_std"), "The same risk for any linear estimator w_hat = a y, a [d, n], data x [n, d].");
}

void bind_max_margin(py::module_& m) {
  m.def("signed_samples", &theory::signed_samples, py::arg("x"), py::arg("y"),
        "z_n = y_n x_n [n, d] for x [n, d] and labels y [n] in {-1, +1} (ValueError otherwise).");
  m.def(
      "max_margin_svm",
      [](const Tensor& z, double tolerance, std::int64_t max_sweeps) {
        const theory::MaxMarginSolution s = without_gil(
            [&] { return theory::max_margin_svm(z, {.tolerance = tolerance, .max_sweeps = max_sweeps}); });
        py::dict out;
        out["w"] = array_from_tensor(s.w);
        out["alpha"] = array_from_tensor(s.alpha);
        out["kkt_residual"] = s.kkt_residual;
        out["sweeps"] = s.sweeps;
        return out;
      },
      py::arg("z"), py::kw_only(), py::arg("tolerance") = 1e-12, py::arg("max_sweeps") = 1000000, R"doc(
The hard-margin SVM through the origin for z [n, d] (rows y_n x_n, see signed_samples), by
coordinate ascent on its dual: {"w": [d] (argmin |w|^2 with z_n . w >= 1), "alpha": [n] (dual
variables, w = sum alpha_n z_n), "kkt_residual", "sweeps"}. ValueError when the data are not
separable through the origin (the residual stays above tolerance after max_sweeps).)doc");
  m.def("support_vectors", &theory::support_vectors, py::arg("alpha"), py::arg("relative_threshold") = 1e-8,
        "The indices (int64) where alpha_n > relative_threshold * max(alpha).");
  m.def("soudry_offset", &theory::soudry_offset, py::arg("z"), py::arg("alpha"), py::arg("eta"),
        py::arg("relative_threshold") = 1e-8, R"doc(
Soudry et al.'s offset w_tilde [d] for gradient descent with step eta on the summed logistic loss
(for the mean over n samples pass eta / n): w(k) = w_hat ln k + w_tilde + o(1). The minimum-norm
solution of z_s . w_tilde = ln(eta / alpha_s) on the support vectors.)doc");
  m.def("soudry_decay_matrix", &theory::soudry_decay_matrix, py::arg("z"), py::arg("alpha"),
        "M = sum_n alpha_n z_n z_n^T [d, d]: the remainder w(k) - w_hat ln k - w_tilde decays like k^-mu "
        "along an eigenvector of M with eigenvalue mu.");
}

void bind_diagonal_net(py::module_& m) {
  py::class_<theory::DiagonalNet, nn::Module, std::shared_ptr<theory::DiagonalNet>>(m, "DiagonalNet", R"doc(
A diagonal linear network: prediction x beta with beta = u * u - v * v (elementwise), parameters "u"
and "v" [features] initialised to alpha (Woodworth et al. 2020). Trained on least squares from
there it converges to woodworth_minimizer(x, y, alpha): sparse (l1-like) for small alpha, x^+ y
(l2) for large alpha.)doc")
      .def(py::init([](std::int64_t features, double alpha) { return std::make_shared<theory::DiagonalNet>(features, alpha); }),
           py::arg("features"), py::arg("alpha"), "features > 0, alpha > 0 and finite; ValueError otherwise.")
      .def_property_readonly("beta", &theory::DiagonalNet::beta, "u * u - v * v [features] (a copy).")
      .def_property_readonly("alpha", &theory::DiagonalNet::alpha, "The initial scale alpha.")
      .def_property_readonly("features", &theory::DiagonalNet::features, "The number of features d.");
  m.def("woodworth_potential", &theory::woodworth_potential, py::arg("beta"), py::arg("alpha"),
        "Q_alpha(beta) = alpha^2 sum_i q(beta_i / alpha^2), q(z) = 2 - sqrt(4 + z^2) + z asinh(z / 2).");
  m.def("woodworth_mirror", &theory::woodworth_mirror, py::arg("beta"), py::arg("alpha"),
        "The gradient of Q_alpha, asinh(beta / (2 alpha^2)) [d]: it stays in the row space of x under "
        "gradient flow of a DiagonalNet.");
  m.def(
      "woodworth_minimizer",
      [](const Tensor& x, const Tensor& y, double alpha, double tolerance, std::int64_t max_iterations) {
        return without_gil([&] {
          return theory::woodworth_minimizer(x, y, alpha, {.tolerance = tolerance, .max_iterations = max_iterations});
        });
      },
      py::arg("x"), py::arg("y"), py::arg("alpha"), py::kw_only(), py::arg("tolerance") = 1e-12,
      py::arg("max_iterations") = 500,
      "argmin Q_alpha(beta) subject to x beta = y [d] for x [n, d] of full row rank, y [n] (damped Newton on the "
      "dual).");
}

}  // namespace

void bind_theory_implicit_bias(py::module_& m) {
  bind_least_squares(m);
  bind_max_margin(m);
  bind_diagonal_net(m);
}

}  // namespace theta::python
