// theta.theory: empirical NTKs (plain and tiled), per-parameter Jacobians, per-sample gradients,
// the analytic infinite-width kernels and NTK regression.

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/error.hpp"
#include "tensor/parallel.hpp"
#include "tensor/shape.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_tiled.hpp"
#include "theory_common.hpp"

namespace theta::python {

namespace {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

theory::NtkMethod ntk_method(const std::string& name) {
  if (name == "structured") return theory::NtkMethod::structured;
  if (name == "jacobian" || name == "contraction") return theory::NtkMethod::contraction;
  throw std::invalid_argument("ntk: unknown method '" + name + "': expected \"structured\" or \"jacobian\"");
}

theory::NtkForm tiled_form(const std::string& name) {
  if (name == "trace") return theory::NtkForm::trace;
  if (name == "full") return theory::NtkForm::full;
  if (name == "output") return theory::NtkForm::output;
  throw std::invalid_argument("ntk_tiled: unknown form '" + name + "': expected \"trace\", \"full\" or \"output\"");
}

py::dict named_dict(const NamedTensors& tensors) {
  py::dict out;
  for (const auto& [name, t] : tensors) out[py::str(name)] = array_from_tensor(t);
  return out;
}

// x2 = None means the kernel of x1 with itself (the same tensor, so the C++ side sees one view
// and computes only half of the symmetric kernel).
Tensor second_input(const Tensor& x1, const std::optional<Tensor>& x2, const char* function) {
  require_batch(x1, function, "x1");
  if (!x2) return x1;
  require_batch(*x2, function, "x2");
  require_same_width(x1, *x2, function);
  return *x2;
}

// Sets theta's worker count for one call and restores it afterwards (threads <= 0: unchanged).
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : previous_(get_num_threads()), active_(threads > 0) {
    if (active_) set_num_threads(threads);
  }
  ~ThreadCount() {
    if (active_) set_num_threads(previous_);
  }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int previous_;
  bool active_;
};

theory::TiledNtkOptions tiled_options(std::int64_t tile, const std::string& form, std::int64_t output,
                                      std::int64_t max_bytes) {
  theory::TiledNtkOptions options;
  options.tile = tile;
  options.form = tiled_form(form);
  options.output = output;
  options.max_bytes = max_bytes;
  return options;
}

constexpr std::int64_t kMaxBytes = std::int64_t{1} << 30;

}  // namespace

void bind_theory_ntk(py::module_& m) {
  m.def(
      "ntk",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x1, const std::optional<Tensor>& x2,
         const std::string& method, const std::string& form, std::int64_t max_bytes) {
        const Tensor y = second_input(x1, x2, "ntk");
        theory::NtkOptions options;
        options.method = ntk_method(method);
        options.max_bytes = max_bytes;
        if (form == "diagonal" && x2) throw std::invalid_argument("ntk: form=\"diagonal\" takes x1 only (x2=None)");
        if (form != "full" && form != "trace" && form != "matrix" && form != "diagonal") {
          throw std::invalid_argument("ntk: unknown form '" + form +
                                      "': expected \"full\", \"trace\", \"matrix\" or \"diagonal\"");
        }
        ReleaseGil released;
        auto lock = lock_module(*model);
        if (form == "full") return theory::empirical_ntk(*model, x1, y, options);
        if (form == "trace") return theory::empirical_ntk_trace(*model, x1, y, options);
        if (form == "matrix") return theory::empirical_ntk_matrix(*model, x1, y, options);
        return theory::empirical_ntk_diagonal(*model, x1, options);
      },
      py::arg("model").none(false), py::arg("x1"), py::arg("x2") = py::none(), py::arg("method") = "structured",
      py::arg("form") = "full", py::arg("max_bytes") = kMaxBytes, R"doc(
The empirical NTK Theta(x1, x2)[o1, o2] = sum_p <df_o1(x1)/dp, df_o2(x2)/dp> of a model whose rows
are independent samples. x1:[n1, d], x2:[n2, d] (None: x1 with itself).

method: "structured" (per-layer (A1 A2^T) * (D1 D2^T), no Jacobian formed) or "jacobian" (J1 J2^T
from per-sample Jacobians, chunked under max_bytes). form: "full" -> [n1, n2, O, O]; "trace" ->
[n1, n2], the sum over outputs; "matrix" -> [n1, n2] for a one-output model; "diagonal" -> [n, O, O],
Theta(x_i, x_i) (x2 must be None).)doc");

  m.def(
      "parameter_jacobians",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, std::int64_t max_bytes) {
        require_batch(x, "parameter_jacobians", "x");
        NamedTensors out;
        {
          ReleaseGil released;
          auto lock = lock_module(*model);
          out = theory::parameter_jacobians(*model, x, max_bytes);
        }
        return named_dict(out);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("max_bytes") = kMaxBytes,
      "{name: [n, O, *param.shape]}: the Jacobian of every output of every sample with respect to each "
      "parameter, in registration order.");

  m.def(
      "per_sample_gradients",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        require_batch(x, "per_sample_gradients", "x");
        const theory::PerSampleLoss fn = per_sample_loss(loss, y);
        NamedTensors out;
        {
          ReleaseGil released;
          auto lock = lock_module(*model);
          out = theory::per_sample_gradients(*model, x, fn);
        }
        return named_dict(out);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("loss") = "mse", R"doc(
{name: [n, *param.shape]}: block i is the gradient of sample i's loss alone. loss "mse": the mean
over outputs of (f(x_i) - y_i)^2, y:[n, O]; "cross_entropy": softmax cross-entropy, y:[n] int64.)doc");

  m.def(
      "per_sample_gradient_norms",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        require_batch(x, "per_sample_gradient_norms", "x");
        const theory::PerSampleLoss fn = per_sample_loss(loss, y);
        ReleaseGil released;
        auto lock = lock_module(*model);
        return theory::per_sample_gradient_norms(*model, x, fn);
      },
      py::arg("model").none(false), py::arg("x"), py::arg("y"), py::arg("loss") = "mse",
      "[n]: the norms of the per-sample gradients (see per_sample_gradients) without forming them.");

  m.def(
      "analytic_ntk",
      [](const Tensor& x1, const std::optional<Tensor>& x2, std::int64_t layers, const std::string& activation,
         double sigma_w, double sigma_b) {
        const Tensor y = second_input(x1, x2, "analytic_ntk");
        const nn::ActivationKind kind = activation_kind(activation);
        theory::AnalyticKernels k;
        {
          ReleaseGil released;
          k = theory::analytic_ntk(x1, y, layers, kind, sigma_w, sigma_b);
        }
        py::dict out;
        out["nngp"] = array_from_tensor(k.nngp);
        out["ntk"] = array_from_tensor(k.ntk);
        return out;
      },
      py::arg("x1"), py::arg("x2") = py::none(), py::kw_only(), py::arg("layers"), py::arg("activation") = "relu",
      py::arg("sigma_w") = 1.0, py::arg("sigma_b") = 0.0, R"doc(
The infinite-width kernels of an MLP with `layers` Linear layers in NTK parameterisation and a
"relu" or "erf" activation between them: {"nngp": [n1, n2], "ntk": [n1, n2]}.)doc");

  m.def(
      "ntk_regression",
      [](const Tensor& k_test_train, const Tensor& k_train_train, const Tensor& y_train, const Tensor& f0_train,
         const Tensor& f0_test, double eta, double t, bool discrete) {
        theory::NtkRegressionInputs in;
        in.k_test_train = k_test_train;
        in.k_train_train = k_train_train;
        in.y_train = y_train;
        in.f0_train = f0_train;
        in.f0_test = f0_test;
        in.eta = eta;
        in.t = t;
        in.discrete = discrete;
        ReleaseGil released;
        return theory::ntk_regression(in);
      },
      py::kw_only(), py::arg("k_test_train"), py::arg("k_train_train"), py::arg("y_train"), py::arg("f0_train"),
      py::arg("f0_test"), py::arg("eta") = 1.0, py::arg("t") = std::numeric_limits<double>::infinity(),
      py::arg("discrete") = false, R"doc(
The linearised model's test prediction after gradient flow for time t (in steps) with learning rate
eta on 1/2 |f(X) - Y|^2: f0_test + K(x,X) K(X,X)^-1 (I - exp(-eta K(X,X) t)) (Y - f0_train) -> [m, k];
discrete=True gives t steps of gradient descent exactly ((I - eta K(X,X))^t; t a whole number).
k_test_train:[m, n], k_train_train:[n, n], y_train, f0_train:[n, k], f0_test:[m, k]; t=inf
(the default) gives the converged prediction.)doc");

  m.def(
      "ntk_tiled",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x1, const std::optional<Tensor>& x2, std::int64_t tile,
         const std::string& form, std::int64_t output, int threads, std::int64_t max_bytes) {
        const Tensor y = second_input(x1, x2, "ntk_tiled");
        const theory::TiledNtkOptions options = tiled_options(tile, form, output, max_bytes);
        ReleaseGil released;
        auto lock = lock_module(*model);
        const ThreadCount count(threads);
        return theory::tiled_ntk(*model, x1, y, options);
      },
      py::arg("model").none(false), py::arg("x1"), py::arg("x2") = py::none(), py::kw_only(), py::arg("tile") = 256,
      py::arg("form") = "trace", py::arg("output") = 0, py::arg("threads") = 0, py::arg("max_bytes") = kMaxBytes, R"doc(
The empirical NTK computed tile by tile (tile x tile blocks, each a pure function of its inputs, so
any thread count gives the same bits). form: "trace" -> [n1, n2]; "full" -> [n1, n2, O, O];
"output" -> [n1, n2], output `output`'s kernel. threads > 0 sets theta's thread count for the call
(a process-wide setting, restored afterwards); 0 keeps the current one.)doc");

  m.def(
      "ntk_tiled_to_npy",
      [](const std::shared_ptr<nn::Module>& model, const Tensor& x1, const std::optional<Tensor>& x2,
         const std::string& path, std::int64_t tile, const std::string& form, std::int64_t output, int threads,
         std::int64_t max_bytes, std::int64_t part, std::int64_t parts, std::optional<std::int64_t> max_tiles) {
        const Tensor y = second_input(x1, x2, "ntk_tiled_to_npy");
        theory::TiledNtkOptions options = tiled_options(tile, form, output, max_bytes);
        options.part = part;
        options.parts = parts;
        if (max_tiles) {
          THETA_CHECK(*max_tiles >= 1, std::invalid_argument, "ntk_tiled_to_npy: max_tiles must be at least 1, got ",
                      *max_tiles);
          const std::int64_t limit = *max_tiles;
          options.on_tile = [limit](std::int64_t done, std::int64_t) { return done < limit; };
        }
        theory::TiledNtkRun run;
        {
          ReleaseGil released;
          auto lock = lock_module(*model);
          const ThreadCount count(threads);
          run = theory::tiled_ntk_to_npy(*model, x1, y, path, options);
        }
        py::dict out;
        out["tiles_total"] = run.tiles_total;
        out["tiles_computed"] = run.tiles_computed;
        out["tiles_reused"] = run.tiles_reused;
        out["complete"] = run.complete;
        out["share_done"] = run.share_done;
        return out;
      },
      py::arg("model").none(false), py::arg("x1"), py::arg("x2") = py::none(), py::kw_only(), py::arg("path"),
      py::arg("tile") = 256, py::arg("form") = "trace", py::arg("output") = 0, py::arg("threads") = 0,
      py::arg("max_bytes") = kMaxBytes, py::arg("part") = 0, py::arg("parts") = 1, py::arg("max_tiles") = py::none(),
      R"doc(
Writes the tiled NTK (see ntk_tiled) into the float64 .npy file `path` tile by tile, with a log
`path + ".tiles"` of finished tiles: a stopped or killed run called again with the same arguments
computes only the missing tiles. max_tiles stops this call after that many tiles (the file stays
restartable); part/parts split the tiles over processes writing the same file. Returns
{"tiles_total", "tiles_computed", "tiles_reused", "complete", "share_done"}; read the kernel
with numpy.load(path, mmap_mode="r").)doc");
}

}  // namespace theta::python
