// theta.theory: loss landscapes (flat parameter vectors, filter-normalised directions, the loss on
// 1-D and 2-D slices, trajectory PCA) and the lazy-training scaling alpha (f(w, x) - f(w0, x)).

#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/rng.hpp"
#include "theory/landscape_directions.hpp"
#include "theory/landscape_grid.hpp"
#include "theory/lazy_training.hpp"
#include "theory/trajectory_pca.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

theory::DirectionNorm direction_norm(const std::string& name) {
  if (name == "filter") return theory::DirectionNorm::filter;
  if (name == "none") return theory::DirectionNorm::none;
  throw std::invalid_argument("random_direction: unknown normalization '" + name +
                              "': expected \"filter\" or \"none\"");
}

theory::PcaMethod pca_method(const std::string& name) {
  if (name == "svd") return theory::PcaMethod::svd;
  if (name == "gram") return theory::PcaMethod::gram;
  throw std::invalid_argument("trajectory_pca: unknown method '" + name + "': expected \"svd\" or \"gram\"");
}

theory::FilterOptions filter_options(bool zero_bias_and_norm, std::vector<std::string> frozen) {
  return {.zero_bias_and_norm = zero_bias_and_norm, .frozen = std::move(frozen)};
}

// Runs fn() on the model with the GIL released and the model's lock held (Note [One call per
// module]); every landscape call evaluates or reads the model.
template <class Fn>
auto on_model(const nn::Module& model, Fn&& fn) -> decltype(fn()) {
  ReleaseGil released;
  auto lock = lock_module(model);
  return fn();
}

const char* kSliceNote = R"doc(
loss: "mse" (mean over every element; y:[n, O]) or "cross_entropy" (mean over samples; y:[n] int64).
The model's own forward runs on clones, one per worker thread (theta.set_num_threads), in the mode
the model is in; the model itself is never touched and the losses are the same bits for any thread
count. Raises ValueError for vectors without the model's parameter count P, NaN or Inf, or a model
with a shared parameter.)doc";

void bind_directions(py::module_& m) {
  m.def(
      "parameter_vector",
      [](const std::shared_ptr<nn::Module>& model) {
        return on_model(*model, [&] { return theory::parameter_vector(*model); });
      },
      py::arg("model").none(false), R"doc(
The model's parameters flattened into one float64 vector [P] (a copy), in named_parameters() order:
the layout of every direction and origin of the landscape functions and of the Hessian tools.
Raises ValueError for a model without parameters or with a parameter registered twice.)doc");

  m.def(
      "filter_normalize",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& direction, const std::optional<Tensor>& origin,
         bool zero_bias_and_norm, std::vector<std::string> frozen) {
        const theory::FilterOptions options = filter_options(zero_bias_and_norm, std::move(frozen));
        return on_model(*model, [&] {
          const Tensor at = origin ? *origin : theory::parameter_vector(*model);
          return theory::filter_normalize(*model, direction, at, options);
        });
      },
      py::arg("model").none(false), py::arg("direction"), py::arg("origin") = py::none(), py::kw_only(),
      py::arg("zero_bias_and_norm") = true, py::arg("frozen") = std::vector<std::string>{}, R"doc(
The filter-normalised copy of direction:[P] at origin:[P] (None: the model's own parameters) -> [P]
float64 (Li et al. 2018). Each filter of a weight of rank >= 2 (a slice along its first axis: a row
of a Linear weight, an output channel of a Conv2d weight) is rescaled to the norm of the same
filter of the origin, d_j |origin_j| / |d_j| (a zero filter stays zero). Parameters of rank <= 1
(biases, normalisation scales and shifts) are zeroed, or with zero_bias_and_norm=False normalised
as one filter each. frozen: name prefixes (as in named_parameters()) of parameters left at zero,
e.g. ["layers.0."]; each must match a parameter. Raises ValueError for a size other than P, NaN or
Inf, or a prefix that matches nothing.)doc");

  m.def(
      "random_direction",
      [](const std::shared_ptr<nn::Module>& model, std::uint64_t seed, const std::string& normalization,
         bool zero_bias_and_norm, std::vector<std::string> frozen, const std::optional<Tensor>& origin) {
        theory::DirectionOptions options;
        options.normalization = direction_norm(normalization);
        options.filter = filter_options(zero_bias_and_norm, std::move(frozen));
        if (origin) options.origin = *origin;
        return on_model(*model, [&] {
          Rng rng(seed);
          return theory::random_direction(*model, rng, options);
        });
      },
      py::arg("model").none(false), py::kw_only(), py::arg("seed") = 0, py::arg("normalization") = "filter",
      py::arg("zero_bias_and_norm") = true, py::arg("frozen") = std::vector<std::string>{},
      py::arg("origin") = py::none(), R"doc(
A Gaussian random direction [P] float64: every element N(0, 1), drawn from Rng(seed) in parameter
order, then normalised. normalization: "filter" (filter_normalize at origin, None meaning the
model's own parameters, with zero_bias_and_norm and frozen as there) or "none" (exactly the draw,
biases included). The same seed gives the same direction.)doc");
}

void bind_grid(py::module_& m) {
  m.def(
      "evaluate_losses",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const Tensor& origin,
         const std::vector<Tensor>& directions, const Tensor& coordinates, const std::string& loss) {
        const nn::LossFn fn = batch_loss(loss);
        return on_model(*model, [&] {
          return theory::evaluate_losses(*model, x, y, fn, origin, directions, coordinates);
        });
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("origin"), py::arg("directions"),
      py::arg("coordinates"), py::kw_only(), py::arg("loss") = "mse",
      (std::string(R"doc(
The loss at the points origin + coordinates[i, 0] directions[0] + ... + coordinates[i, k-1]
directions[k-1], i = 0..m-1 -> [m] float64. x:[n, ...], origin:[P], directions: k vectors [P] (a
list, or an array [k, P] such as TrajectoryPca.directions), coordinates:[m, k].)doc") +
       kSliceNote)
          .c_str());

  m.def(
      "loss_slice",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const Tensor& origin,
         const Tensor& direction, const Tensor& alphas, const std::string& loss) {
        const nn::LossFn fn = batch_loss(loss);
        return on_model(*model, [&] { return theory::loss_slice(*model, x, y, fn, origin, direction, alphas); });
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("origin"), py::arg("direction"),
      py::arg("alphas"), py::kw_only(), py::arg("loss") = "mse",
      (std::string("The 1-D slice L(origin + alphas[i] direction): alphas:[m] -> [m] float64.") + kSliceNote).c_str());

  m.def(
      "loss_surface",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const Tensor& origin,
         const Tensor& d1, const Tensor& d2, const Tensor& alphas, const Tensor& betas, const std::string& loss) {
        const nn::LossFn fn = batch_loss(loss);
        return on_model(*model,
                        [&] { return theory::loss_surface(*model, x, y, fn, origin, d1, d2, alphas, betas); });
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("origin"), py::arg("d1"), py::arg("d2"),
      py::arg("alphas"), py::arg("betas"), py::kw_only(), py::arg("loss") = "mse",
      (std::string("The 2-D slice L(origin + alphas[i] d1 + betas[j] d2): alphas:[a], betas:[b] -> [a, b] float64, "
                   "row i for alphas[i].") +
       kSliceNote)
          .c_str());

  m.def(
      "loss_interpolation",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const Tensor& from,
         const Tensor& to, const Tensor& alphas, const std::string& loss) {
        const nn::LossFn fn = batch_loss(loss);
        return on_model(*model, [&] { return theory::loss_interpolation(*model, x, y, fn, from, to, alphas); });
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("from_"), py::arg("to"), py::arg("alphas"),
      py::kw_only(), py::arg("loss") = "mse",
      (std::string("The loss on the line L(from_ + alphas[i] (to - from_)) between two parameter vectors [P] "
                   "(Goodfellow et al. 2015): alphas:[m] -> [m] float64; alpha 0 is from_, 1 is to.") +
       kSliceNote)
          .c_str());
}

void bind_pca(py::module_& m) {
  py::class_<theory::TrajectoryPca>(m, "TrajectoryPca", R"doc(
The plane a training run moved in, from trajectory_pca: the final point and the top principal
directions of the run's displacements from it. Its directions plug into loss_surface and
evaluate_losses; project_onto places other parameter vectors on the plane.)doc")
      .def_property_readonly(
          "origin", [](const theory::TrajectoryPca& self) { return self.origin; },
          "[P]: the final point of the trajectory, the plane's origin.")
      .def_property_readonly(
          "directions", [](const theory::TrajectoryPca& self) { return self.directions; },
          "[k, P]: orthonormal rows, the top right singular vectors of the displacements.")
      .def_property_readonly(
          "singular_values", [](const theory::TrajectoryPca& self) { return self.singular_values; },
          "[k]: the displacements' singular values, descending.")
      .def_property_readonly(
          "explained_variance_ratio", [](const theory::TrajectoryPca& self) { return self.explained_variance_ratio; },
          "[k]: s_i^2 / |M|_F^2, the share of the displacements' squared norm on each direction.")
      .def_property_readonly(
          "coordinates", [](const theory::TrajectoryPca& self) { return self.coordinates; },
          "[T, k]: row t is directions (trajectory[t] - origin); the last row is 0.")
      .def("__repr__", [](const theory::TrajectoryPca& self) {
        std::ostringstream out;
        out << "theta.theory.TrajectoryPca(T=" << self.coordinates.size(0) << ", k=" << self.directions.size(0)
            << ", P=" << self.directions.size(1) << ")";
        return out.str();
      });

  m.def(
      "trajectory_pca",
      [](const Tensor& trajectory, std::int64_t k, const std::string& method) {
        const theory::PcaMethod how = pca_method(method);
        return without_gil([&] { return theory::trajectory_pca(trajectory, k, how); });
      },
      py::arg("trajectory"), py::arg("k") = 2, py::kw_only(), py::arg("method") = "svd", R"doc(
The top-k PCA plane of a training trajectory [T, P] (row t: parameter_vector after step t), as a
TrajectoryPca (Li et al. 2018, section 7). With M = trajectory - trajectory[-1], the directions are
M's top right singular vectors, each signed so the trajectory's largest-magnitude coordinate on it
is positive; 1 <= k <= min(T - 1, P). method: "svd" (the thin SVD of M) or "gram" (the eigenvectors
of M M^T [T, T]; the same plane to rounding). Raises ValueError for a k that does not fit, NaN or
Inf, or a trajectory that never leaves its final point.)doc");

  m.def(
      "project_onto",
      [](const theory::TrajectoryPca& pca, const Tensor& points) {
        return without_gil([&] { return theory::project_onto(pca, points); });
      },
      py::arg("pca"), py::arg("points"), R"doc(
The coordinates of parameter vectors on a trajectory_pca plane: points:[m, P] -> [m, k] or [P] ->
[k], directions (point - origin). Raises ValueError when P differs from the plane's.)doc");
}

void bind_lazy(py::module_& m) {
  py::class_<theory::LazyScaled, nn::Module, std::shared_ptr<theory::LazyScaled>>(m, "LazyScaled", R"doc(
alpha (f(w, x) - f(w0, x)), the lazy-training scaling of a model f (Chizat, Oyallon and Bach 2019),
as a theta.nn.Module. Its parameters are the model's (named "model.<name>"; the model is wrapped,
not copied, and trains through it) and start at w0; f(w0, x) comes from a private copy of the model
taken at construction. Trained on the loss L / alpha^2 with a fixed step, it follows the same kernel
dynamics for every alpha with parameter moves of size O(1 / alpha), so as alpha grows its
predictions approach ntk_regression with the NTK of f at w0 (exactly, for a linearised f).)doc")
      .def(py::init([](const std::shared_ptr<nn::Module>& model, double alpha) {
             return on_model(*model, [&] { return std::make_shared<theory::LazyScaled>(model, alpha); });
           }),
           py::arg("model").none(false), py::arg("alpha"),
           "Wraps model with alpha > 0 (finite); ValueError otherwise.")
      .def_property_readonly("alpha", &theory::LazyScaled::alpha, "The scale alpha.")
      .def_property_readonly(
          "model",
          [](const std::shared_ptr<theory::LazyScaled>& self) {
            // An aliasing handle: the wrapped model (the same object), keeping self alive.
            return std::shared_ptr<nn::Module>(self, &self->model());
          },
          "The wrapped model f, with the current parameters w (the same object, not a copy).")
      .def("__repr__", [](const theory::LazyScaled& self) { return "theta.theory." + self.describe(); });

  m.def(
      "lazy_scaled",
      [](const std::shared_ptr<nn::Module>& model, double alpha) {
        return on_model(*model, [&] { return theory::lazy_scaled(model, alpha); });
      },
      py::arg("model").none(false), py::arg("alpha"),
      "LazyScaled(model, alpha): alpha (model(x) - model_at_w0(x)), which starts at 0 and trains like model.");
}

}  // namespace

void bind_theory_landscape(py::module_& m) {
  bind_directions(m);
  bind_grid(m);
  bind_pca(m);
  bind_lazy(m);
}

}  // namespace theta::python
