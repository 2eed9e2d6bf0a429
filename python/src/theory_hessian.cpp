// theta.theory: the loss Hessian of a model (value, gradient and Hessian-vector products on flat
// parameter vectors), symmetric linear operators, Lanczos, Hutchinson, SLQ and dense eigh.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/transforms.hpp"
#include "tensor/error.hpp"
#include "tensor/shape.hpp"
#include "theory/hessian.hpp"
#include "theory/linalg.hpp"
#include "theory/ntk_operator.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

// Note [Python operators]
// A theta.theory.LinearOperator wraps theory::LinearOperator plus whatever its apply function
// needs alive: the model whose loss graph it differentiates (each apply holds that model's lock,
// Note [One call per module]) or a Python callable. The callable is kept by the Python object and
// captured as a borrowed pointer, so copies of the std::function inside the C++ solvers never
// touch Python reference counts without the GIL; an apply retakes the GIL around the call.
struct PyOperator {
  theory::LinearOperator op{};
  std::shared_ptr<nn::Module> model{};
  py::object callable{};
};

// The loss of a model on fixed data as a function of its parameters: the gradient graph is built
// once, at construction (autograd::HessianVectorOperator), and reused by every product.
class ModuleLoss {
 public:
  ModuleLoss(std::shared_ptr<nn::Module> model, const Tensor& x, const Tensor& y, const std::string& loss)
      : model_(std::move(model)) {
    const nn::LossFn fn = batch_loss(loss);
    ReleaseGil released;
    auto lock = lock_module(*model_);
    params_ = theory::parameter_values(*model_);
    THETA_CHECK(!params_.empty(), std::invalid_argument, "module_loss: the model has no parameters");
    hvp_ = std::make_shared<autograd::HessianVectorOperator>(theory::module_loss(model_, x, y, fn), params_);
  }

  double value() const { return hvp_->loss(); }
  std::int64_t size() const { return hvp_->size(); }

  Tensor gradient() const { return theory::flatten_tensors(hvp_->gradient()); }

  // H v for a flat v:[P] (float64) -> [P]; call with the GIL released.
  Tensor apply(const Tensor& v) const {
    THETA_CHECK(v.dim() == 1 && v.size(0) == size(), ShapeError, "hvp: v must be a flat vector of shape [", size(),
                "] (the model's parameter count), got ", shape_str(v.shape()));
    auto lock = lock_module(*model_);
    return theory::flatten_tensors(hvp_->apply(theory::unflatten_like(v, params_)));
  }

  PyOperator as_operator() const {
    PyOperator out;
    out.model = model_;
    out.op.size = size();
    auto hvp = hvp_;
    auto model = model_;
    auto params = params_;
    out.op.apply = [hvp, model, params](const Tensor& v) {
      auto lock = lock_module(*model);
      return theory::flatten_tensors(hvp->apply(theory::unflatten_like(v, params)));
    };
    return out;
  }

 private:
  std::shared_ptr<nn::Module> model_;
  std::vector<Tensor> params_;
  std::shared_ptr<autograd::HessianVectorOperator> hvp_;
};

PyOperator callable_operator(std::int64_t size, py::function fn) {
  THETA_CHECK(size >= 1, std::invalid_argument, "LinearOperator: size must be at least 1, got ", size);
  PyOperator out;
  out.callable = std::move(fn);
  out.op.size = size;
  PyObject* borrowed = out.callable.ptr();
  out.op.apply = [borrowed](const Tensor& v) {
    py::gil_scoped_acquire gil;
    py::object result = py::reinterpret_borrow<py::object>(borrowed)(array_from_tensor(v));
    // A copy: the callable's array may be a temporary, or a view of v itself.
    return to_tensor(result, "LinearOperator result").to(DType::f64).clone();
  };
  return out;
}

PyOperator matrix_operator(const Tensor& a) {
  PyOperator out;
  out.op = theory::matrix_operator(a.to(DType::f64).contiguous());
  return out;
}

// Solvers take a LinearOperator or a symmetric NumPy matrix.
PyOperator as_operator(const py::handle& object) {
  if (py::isinstance<PyOperator>(object)) return object.cast<PyOperator>();
  return matrix_operator(to_tensor(object, "op"));
}

theory::Which which_from_name(const std::string& name) {
  if (name == "largest") return theory::Which::largest;
  if (name == "smallest") return theory::Which::smallest;
  if (name == "magnitude") return theory::Which::magnitude;
  if (name == "both_ends") return theory::Which::both_ends;
  throw std::invalid_argument("lanczos: unknown which '" + name +
                              "': expected \"largest\", \"smallest\", \"magnitude\" or \"both_ends\"");
}

py::dict eigen_dict(const theory::EigenResult& r) {
  py::dict out;
  out["eigenvalues"] = array_from_tensor(r.values);
  out["eigenvectors"] = array_from_tensor(r.vectors);
  out["residuals"] = array_from_tensor(r.residuals);
  out["ritz_values"] = array_from_tensor(r.ritz_values);
  out["iterations"] = r.iterations;
  return out;
}

py::dict run_lanczos(const PyOperator& op, std::int64_t k, std::int64_t iterations, std::uint64_t seed,
                     const std::string& which, bool explicit_residuals) {
  theory::LanczosOptions options;
  options.iterations = iterations;
  options.seed = seed;
  options.which = which_from_name(which);
  options.explicit_residuals = explicit_residuals;
  theory::EigenResult result;
  {
    ReleaseGil released;
    result = theory::lanczos_top_k(op.op, k, options);
  }
  return eigen_dict(result);
}

py::dict run_hutchinson(const PyOperator& op, std::int64_t probes, std::uint64_t seed) {
  theory::TraceEstimate e;
  {
    ReleaseGil released;
    e = theory::hutchinson_trace(op.op, probes, seed);
  }
  py::dict out;
  out["mean"] = e.mean;
  out["std_error"] = e.std_error;
  out["probes"] = e.probes;
  return out;
}

py::dict run_slq(const PyOperator& op, std::int64_t probes, std::int64_t steps, std::uint64_t seed, double sigma,
                 const std::optional<Tensor>& grid, std::int64_t grid_points) {
  theory::SlqOptions options;
  options.probes = probes;
  options.steps = steps;
  options.seed = seed;
  options.sigma = sigma;
  if (grid) options.grid = grid->to(DType::f64).contiguous();
  options.grid_points = grid_points;
  theory::SpectralDensity d;
  double mean = 0.0;
  {
    ReleaseGil released;
    d = theory::slq_density(op.op, options);
    mean = theory::quadrature_mean(d);
  }
  py::dict out;
  out["grid"] = array_from_tensor(d.grid);
  out["density"] = array_from_tensor(d.density);
  out["sigma"] = d.sigma;
  py::list nodes, weights;
  for (const auto& t : d.nodes) nodes.append(array_from_tensor(t));
  for (const auto& t : d.weights) weights.append(array_from_tensor(t));
  out["nodes"] = nodes;
  out["weights"] = weights;
  out["mean_eigenvalue"] = mean;
  return out;
}

const char* kLanczosDoc = R"doc(
Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation. Returns
{"eigenvalues": [r], "eigenvectors": [P, r] (unit columns), "residuals": [r] (|H x - lambda x|),
"ritz_values": [m], "iterations": m}. which: "largest" (descending), "smallest" (ascending),
"magnitude" or "both_ends" (2k values: largest, then smallest). iterations=0 picks
min(P, max(2r + 20, 40)) steps; iterations >= P gives the whole spectrum exactly.)doc";

const char* kSlqDoc = R"doc(
Spectral density by stochastic Lanczos quadrature: per probe, `steps` Lanczos steps from a random
unit Rademacher vector give a Gauss quadrature rule; the density is their average smoothed with
Gaussians of width sigma (<= 0: 1% of the nodes' spread) on `grid` (None: grid_points points).
Returns {"grid", "density", "sigma", "nodes", "weights" (per probe), "mean_eigenvalue"}.)doc";

}  // namespace

void bind_theory_hessian(py::module_& m) {
  py::class_<PyOperator>(m, "LinearOperator", R"doc(
A symmetric linear map on float64 vectors [size] for the spectral tools (lanczos, hutchinson_trace,
slq_density). Made by hessian_operator (a model's loss Hessian), matrix_operator (a dense symmetric
matrix) or LinearOperator(size, fn) for a Python function fn(v:[size]) -> [size].)doc")
      .def(py::init(&callable_operator), py::arg("size"), py::arg("fn"),
           "An operator calling the Python function fn(v) -> H v (with the GIL held, so it runs serially).")
      .def_property_readonly("size", [](const PyOperator& self) { return self.op.size; })
      .def(
          "__call__",
          [](const PyOperator& self, const Tensor& v) {
            THETA_CHECK(v.dim() == 1 && v.size(0) == self.op.size, ShapeError, "LinearOperator: v must be [",
                        self.op.size, "], got ", shape_str(v.shape()));
            const Tensor v64 = v.to(DType::f64).contiguous();
            ReleaseGil released;
            return self.op.apply(v64);
          },
          py::arg("v"), "H v for v:[size] -> [size].");

  m.def(
      "ntk_operator",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, std::int64_t chunk) {
        PyOperator out;
        out.model = model;
        ReleaseGil released;
        auto lock = lock_module(*model);
        const theory::LinearOperator inner = theory::ntk_operator(model, x, {.chunk = chunk});
        out.op.size = inner.size;
        out.op.apply = [inner, model](const Tensor& v) {
          auto lock_each = lock_module(*model);
          return inner.apply(v);
        };
        return out;
      },
      py::arg("model").none(false), py::arg("x"), py::arg("chunk") = 1024, R"doc(
The empirical NTK of model on x:[n, ...] as a LinearOperator on vectors [n O] (entry (i, a) at
i O + a), never formed: K v = J (J^T v) by a reverse pass over chunks of `chunk` samples and a
forward-mode pass, so memory stays at one chunk's activations whatever n is. For lanczos (top
eigenvalues of the NTK) and hutchinson_trace at n where the kernel would not fit in memory.)doc");

  m.def("matrix_operator", &matrix_operator, py::arg("a"),
        "A dense symmetric matrix a:[n, n] as a LinearOperator (ValueError unless finite and symmetric).");

  py::class_<ModuleLoss, std::shared_ptr<ModuleLoss>>(m, "ModuleLoss", R"doc(
loss(model(x), y) as a function of the model's parameters, flattened in registration order into one
float64 vector [P]. The gradient graph is built once, when the object is made; the model's
parameters must not change while it is in use.)doc")
      .def(py::init([](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y,
                       const std::string& loss) { return std::make_shared<ModuleLoss>(model, x, y, loss); }),
           py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("loss") = "mse",
           "loss: \"mse\" (y:[n, O]) or \"cross_entropy\" (y:[n] int64 labels).")
      .def_property_readonly("value", &ModuleLoss::value, "The loss at the current parameters.")
      .def_property_readonly("size", &ModuleLoss::size, "P, the number of parameters.")
      .def("gradient", &ModuleLoss::gradient, "The gradient as a flat vector [P].")
      .def(
          "hvp",
          [](const ModuleLoss& self, const Tensor& v) {
            const Tensor v64 = v.to(DType::f64).contiguous();
            ReleaseGil released;
            return self.apply(v64);
          },
          py::arg("v"), "The Hessian-vector product H v for a flat v:[P] -> [P].")
      .def(
          "operator", [](const ModuleLoss& self) { return self.as_operator(); },
          "The Hessian as a LinearOperator (for lanczos, hutchinson_trace, slq_density).");

  m.def(
      "module_loss",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        return std::make_shared<ModuleLoss>(model, x, y, loss);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("loss") = "mse",
      "The ModuleLoss of model on (x, y): value, gradient, hvp and the Hessian operator.");

  m.def(
      "hvp",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const Tensor& v,
         const std::string& loss) {
        const ModuleLoss f(model, x, y, loss);
        const Tensor v64 = v.to(DType::f64).contiguous();
        ReleaseGil released;
        return f.apply(v64);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("v"), py::arg("loss") = "mse",
      "H v of loss(model(x), y) at the model's parameters, v flat [P] in registration order -> [P].");

  m.def(
      "hessian_operator",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        return ModuleLoss(model, x, y, loss).as_operator();
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("loss") = "mse",
      "The loss Hessian of model on (x, y) as a LinearOperator of size P.");

  // The model forms come first: pybind11 tries overloads in order, and the operator forms accept
  // any object (converted to a matrix), so a Module must be claimed before them.
  const auto model_lanczos = [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y,
                                 std::int64_t k, std::int64_t iterations, std::uint64_t seed, const std::string& which,
                                 const std::string& loss) {
    return run_lanczos(ModuleLoss(model, x, y, loss).as_operator(), k, iterations, seed, which, true);
  };
  m.def(
      "lanczos", model_lanczos,
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::kw_only(), py::arg("k") = 1,
      py::arg("iterations") = 0, py::arg("seed") = 0, py::arg("which") = "largest", py::arg("loss") = "mse",
      "The loss Hessian of model on (x, y) (as hessian_eigs).");
  m.def(
      "hutchinson_trace",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, std::int64_t probes,
         std::uint64_t seed,
         const std::string& loss) { return run_hutchinson(ModuleLoss(model, x, y, loss).as_operator(), probes, seed); },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::kw_only(), py::arg("probes") = 100,
      py::arg("seed") = 0, py::arg("loss") = "mse", "The trace of the loss Hessian of model on (x, y).");
  m.def(
      "slq_density",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, std::int64_t probes,
         std::int64_t steps, std::uint64_t seed, double sigma, const std::optional<Tensor>& grid,
         std::int64_t grid_points, const std::string& loss) {
        return run_slq(ModuleLoss(model, x, y, loss).as_operator(), probes, steps, seed, sigma, grid, grid_points);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::kw_only(), py::arg("probes") = 10,
      py::arg("steps") = 80, py::arg("seed") = 0, py::arg("sigma") = 0.0, py::arg("grid") = py::none(),
      py::arg("grid_points") = 1000, py::arg("loss") = "mse",
      "The spectral density of the loss Hessian of model on (x, y).");

  m.def(
      "lanczos",
      [](const py::object& op, std::int64_t k, std::int64_t iterations, std::uint64_t seed, const std::string& which,
         bool explicit_residuals) {
        return run_lanczos(as_operator(op), k, iterations, seed, which, explicit_residuals);
      },
      py::arg("op"), py::kw_only(), py::arg("k") = 1, py::arg("iterations") = 0, py::arg("seed") = 0,
      py::arg("which") = "largest", py::arg("explicit_residuals") = true,
      (std::string("op: a LinearOperator or a symmetric matrix [n, n].") + kLanczosDoc).c_str());

  m.def(
      "hessian_eigs", model_lanczos,
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::kw_only(), py::arg("k") = 1,
      py::arg("iterations") = 0, py::arg("seed") = 0, py::arg("which") = "largest", py::arg("loss") = "mse",
      (std::string("The loss Hessian's extreme eigenpairs (lanczos on hessian_operator).") + kLanczosDoc).c_str());

  m.def(
      "hutchinson_trace",
      [](const py::object& op, std::int64_t probes, std::uint64_t seed) {
        return run_hutchinson(as_operator(op), probes, seed);
      },
      py::arg("op"), py::kw_only(), py::arg("probes") = 100, py::arg("seed") = 0, R"doc(
Hutchinson's estimate of tr(op) from Rademacher probes z: {"mean": mean of z^T op z, "std_error":
sample standard deviation / sqrt(probes) (NaN for one probe), "probes"}. op: a LinearOperator or a
symmetric matrix.)doc");

  m.def(
      "slq_density",
      [](const py::object& op, std::int64_t probes, std::int64_t steps, std::uint64_t seed, double sigma,
         const std::optional<Tensor>& grid,
         std::int64_t grid_points) { return run_slq(as_operator(op), probes, steps, seed, sigma, grid, grid_points); },
      py::arg("op"), py::kw_only(), py::arg("probes") = 10, py::arg("steps") = 80, py::arg("seed") = 0,
      py::arg("sigma") = 0.0, py::arg("grid") = py::none(), py::arg("grid_points") = 1000,
      (std::string("op: a LinearOperator or a symmetric matrix.") + kSlqDoc).c_str());

  m.def(
      "eigh",
      [](const Tensor& a) {
        theory::SymmetricEigen e;
        {
          ReleaseGil released;
          e = theory::eigh(a.to(DType::f64).contiguous());
        }
        return py::make_tuple(array_from_tensor(e.values), array_from_tensor(e.vectors));
      },
      py::arg("a"),
      "(values [n] ascending, vectors [n, n] with unit eigenvector columns) of a symmetric a:[n, n] "
      "(LAPACK; only the lower triangle is read).");

  m.def(
      "svd",
      [](const Tensor& a) {
        theory::Svd s;
        {
          ReleaseGil released;
          s = theory::svd(a.to(DType::f64).contiguous());
        }
        return py::make_tuple(array_from_tensor(s.u), array_from_tensor(s.s), array_from_tensor(s.v));
      },
      py::arg("a"), "Thin SVD (u [m, k], s [k] descending, v [n, k]) with a = u diag(s) v^T (LAPACK).");

  m.def(
      "flatten_tensors", [](const std::vector<Tensor>& tensors) { return theory::flatten_tensors(tensors); },
      py::arg("tensors"), "Concatenates every array's elements, in order, into one float64 vector [P].");
  m.def(
      "unflatten_like",
      [](const Tensor& flat, const std::vector<Tensor>& like) { return theory::unflatten_like(flat, like); },
      py::arg("flat"), py::arg("like"),
      "The inverse of flatten_tensors: flat:[P] -> arrays shaped (and typed) like `like`.");
}

}  // namespace theta::python
