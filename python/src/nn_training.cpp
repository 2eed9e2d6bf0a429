// Optimisers (SGD, Adam, AdamW), one-call training steps (train_step, loss_backward), gradient
// clipping and fit(), the mini-batch training loop run in C++ with the GIL released.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "autograd/engine.hpp"
#include "autograd/var.hpp"
#include "nn/train.hpp"
#include "nn_common.hpp"

namespace theta::python {

namespace {

// The Python classes SGD, Adam and AdamW: one C++ type each, so that each is its own subclass of
// theta.nn.Optimizer.
struct SgdOptimizer : BoundOptimizer {};
struct AdamOptimizer : BoundOptimizer {};
struct AdamWOptimizer : BoundOptimizer {};

// The number of parameter elements the optimiser updates.
std::int64_t parameter_elements(const BoundOptimizer& optimizer) {
  std::int64_t params = 0;
  for (const auto& [name, p] : optimizer.impl->named_params()) params += p.numel();
  return params;
}

template <class Handle>
std::shared_ptr<Handle> make_handle(const std::shared_ptr<nn::Module>& model, std::unique_ptr<nn::Optimizer> impl) {
  auto handle = std::make_shared<Handle>();
  handle->model = model;
  handle->impl = std::move(impl);
  return handle;
}

void bind_optimizers(py::module_& m) {
  py::class_<BoundOptimizer, std::shared_ptr<BoundOptimizer>>(m, "Optimizer", R"doc(
An optimiser over all parameters of one model (made by SGD, Adam or AdamW). step() applies one
update from the parameters' accumulated gradients (parameters without one are skipped),
zero_grad() drops the gradients; the update rules are PyTorch's, number for number.
)doc")
      .def(
          "step",
          [](BoundOptimizer& self) {
            with_module(*self.model, parameter_elements(self) < kKeepGilWork, [&] { self.impl->step(); });
          },
          "One update from the accumulated gradients.")
      .def(
          "zero_grad", [](BoundOptimizer& self) { with_module(*self.model, true, [&] { self.impl->zero_grad(); }); },
          "Drops every parameter's gradient.")
      .def_property(
          "lr",
          [](const BoundOptimizer& self) { return with_module(*self.model, true, [&] { return self.impl->lr(); }); },
          [](BoundOptimizer& self, double lr) {
            if (!(lr >= 0)) throw py::value_error("lr must be >= 0, got " + std::to_string(lr));
            with_module(*self.model, true, [&] { self.impl->set_lr(lr); });
          },
          "The learning rate (settable, e.g. for a schedule in fit's on_epoch callback).")
      .def_property_readonly(
          "steps_taken",
          [](const BoundOptimizer& self) {
            return with_module(*self.model, true, [&] { return self.impl->steps_taken(); });
          },
          "Steps taken so far.")
      .def_property_readonly(
          "model", [](const BoundOptimizer& self) { return self.model; }, "The model whose parameters it updates.")
      .def(
          "state_dict",
          [](const BoundOptimizer& self) {
            std::vector<NamedTensor> state;
            {
              ReleaseGil released;
              auto lock = lock_module(*self.model);
              state = self.impl->state();
            }
            return dict_of_copies(state);
          },
          "{key: array}: copies of the state (step counts, momentum buffers or moments), named as checkpoints name "
          "it.")
      .def(
          "load_state_dict",
          [](BoundOptimizer& self, const py::dict& state) {
            const auto tensors = named_tensors_from_dict(state, "Optimizer.load_state_dict");
            ReleaseGil released;
            auto lock = lock_module(*self.model);
            self.impl->load_state(tensors);
          },
          py::arg("state_dict"),
          "Restores state_dict() output; everything is checked first (ValueError / TypeError naming the key).")
      .def("__repr__", [](const BoundOptimizer& self) {
        return "theta.nn optimizer (lr " + std::to_string(self.impl->lr()) + ") for " + self.model->describe();
      });

  py::class_<SgdOptimizer, BoundOptimizer, std::shared_ptr<SgdOptimizer>>(m, "SGD", R"doc(
torch.optim.SGD over every parameter of `model`: d = g + weight_decay p; with momentum
b = momentum b + (1 - dampening) d (b = d at the first step) and d = b, or d + momentum b with
nesterov; p -= lr d.
)doc")
      .def(py::init([](const std::shared_ptr<nn::Module>& model, double lr, double momentum, double dampening,
                       double weight_decay, bool nesterov) {
             return make_handle<SgdOptimizer>(
                 model,
                 std::make_unique<nn::Sgd>(model->named_parameters(), nn::SgdOptions{.lr = lr,
                                                                                     .momentum = momentum,
                                                                                     .dampening = dampening,
                                                                                     .weight_decay = weight_decay,
                                                                                     .nesterov = nesterov}));
           }),
           py::arg("model"), py::arg("lr") = 0.01, py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
           py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, "SGD over the model's parameters.");

  const auto adam_options = [](double lr, const std::pair<double, double>& betas, double eps, double weight_decay,
                               bool decoupled) {
    return nn::AdamOptions{.lr = lr,
                           .beta1 = betas.first,
                           .beta2 = betas.second,
                           .eps = eps,
                           .weight_decay = weight_decay,
                           .decoupled_weight_decay = decoupled};
  };
  py::class_<AdamOptimizer, BoundOptimizer, std::shared_ptr<AdamOptimizer>>(
      m, "Adam", "torch.optim.Adam over every parameter of `model` (weight decay added to the gradient).")
      .def(py::init([adam_options](const std::shared_ptr<nn::Module>& model, double lr, std::pair<double, double> betas,
                                   double eps, double weight_decay) {
             return make_handle<AdamOptimizer>(
                 model, std::make_unique<nn::Adam>(model->named_parameters(),
                                                   adam_options(lr, betas, eps, weight_decay, false)));
           }),
           py::arg("model"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999), py::arg("eps") = 1e-8,
           py::arg("weight_decay") = 0.0, "Adam over the model's parameters.");
  py::class_<AdamWOptimizer, BoundOptimizer, std::shared_ptr<AdamWOptimizer>>(
      m, "AdamW", "torch.optim.AdamW over every parameter of `model` (decoupled weight decay p *= 1 - lr wd).")
      .def(py::init([adam_options](const std::shared_ptr<nn::Module>& model, double lr, std::pair<double, double> betas,
                                   double eps, double weight_decay) {
             return make_handle<AdamWOptimizer>(
                 model, std::make_unique<nn::Adam>(model->named_parameters(),
                                                   adam_options(lr, betas, eps, weight_decay, true)));
           }),
           py::arg("model"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999), py::arg("eps") = 1e-8,
           py::arg("weight_decay") = 1e-2, "AdamW over the model's parameters.");
}

// Note [One-call training steps]
// train_step runs zero_grad, forward, loss, backward and the optimiser's step in one bound call,
// so a Python training loop pays pybind11's dispatch once per step rather than once per
// operation: a step of three 8x8 Linear layers on a batch of 16 takes about 8 us, against about
// 70 us for the same step in PyTorch eager. Such a step keeps the GIL (Note [Short calls keep the
// GIL]): its work is estimated as parameters times batch rows. The optimiser covers every
// parameter of the model (it is made from one), so its zero_grad clears them all.
double run_train_step(nn::Module& model, BoundOptimizer& optimizer, const Tensor& x, const Tensor& y, LossKind kind) {
  optimizer.impl->zero_grad();
  const autograd::Var loss = compute_loss(kind, model(autograd::Var(x)), y);
  const double value = loss.item();
  autograd::backward(loss);
  optimizer.impl->step();
  return value;
}

bool small_step(std::int64_t parameters, const Tensor& x) {
  return parameters * (x.dim() > 0 ? x.size(0) : 1) < kKeepGilWork;
}

void bind_steps(py::module_& m) {
  m.def(
      "train_step",
      [](nn::Module& model, BoundOptimizer& optimizer, const Tensor& x, const Tensor& y, const std::string& loss) {
        check_same_model(optimizer, model, "train_step");
        const LossKind kind = parse_loss(loss, "train_step");
        check_targets(kind, y, "train_step");
        return with_module(model, small_step(parameter_elements(optimizer), x),
                           [&] { return run_train_step(model, optimizer, x, y, kind); });
      },
      py::arg("model"), py::arg("optimizer"), py::arg("x"), py::arg("y"), py::arg("loss") = "mse", R"doc(
One training step in one call: optimizer.zero_grad(), forward on x, the mean loss against y ("mse":
float targets of the output's shape, "cross_entropy": int64 labels, "binary_logistic"), backward,
optimizer.step(). Returns the loss before the step as a float. The model's train/eval mode is left
as it is.
)doc");
  m.def(
      "loss_backward",
      [](nn::Module& model, const Tensor& x, const Tensor& y, const std::string& loss) {
        const LossKind kind = parse_loss(loss, "loss_backward");
        check_targets(kind, y, "loss_backward");
        return with_module(model, small_step(model.parameter_count(), x), [&] {
          const autograd::Var value = compute_loss(kind, model(autograd::Var(x)), y);
          const double out = value.item();
          autograd::backward(value);
          return out;
        });
      },
      py::arg("model"), py::arg("x"), py::arg("y"), py::arg("loss") = "mse", R"doc(
Forward on x, the mean loss against y (as train_step) and backward: the loss gradient is added to
every parameter's gradient (see Module.named_grads; zero them with Optimizer.zero_grad or
Module.zero_grad). Returns the loss as a float; no step is taken.
)doc");
  m.def(
      "clip_grad_norm",
      [](nn::Module& model, double max_norm) {
        ReleaseGil released;
        auto lock = lock_module(model);
        return nn::clip_grad_norm(model.parameters(), max_norm);
      },
      py::arg("model"), py::arg("max_norm"),
      "Scales the model's gradients so their global 2-norm is at most max_norm (torch's clip_grad_norm_); "
      "returns the norm before clipping.");
}

py::dict epoch_dict(const nn::EpochLog& log) {
  py::dict out;
  out["epoch"] = log.epoch;
  out["train_loss"] = log.train_loss;
  out["seconds"] = log.seconds;
  return out;
}

// Note [Progress through Python]
// nn::fit writes progress to the process's stderr, which a notebook never shows. The binding
// runs it quiet and prints its own line after each epoch through Python's print (sys.stdout, so
// notebooks and pytest's capsys see it), retaking the GIL for that moment only; a Python
// on_epoch callback runs at the same point. The text is the C++ loop's: "epoch e/E  loss L  T s".
// For that moment the model's lock is released too: a callback that evaluates the model or saves
// a checkpoint calls bound functions that take the same lock, which would otherwise deadlock on
// its own thread. Between epochs nothing of fit's is in flight, so another thread may then use
// the model as well; fit takes the lock back, after the GIL is released, before the next epoch.
void bind_fit(py::module_& m) {
  m.def(
      "fit",
      [](nn::Module& model, BoundOptimizer& optimizer, const Tensor& x, const Tensor& y, const std::string& loss,
         std::int64_t epochs, std::int64_t batch_size, bool shuffle, bool drop_last, std::uint64_t seed, bool progress,
         std::int64_t log_every, std::int64_t first_epoch, bool stop_on_non_finite_loss, const py::object& on_epoch) {
        check_same_model(optimizer, model, "fit");
        const LossKind kind = parse_loss(loss, "fit");
        check_targets(kind, y, "fit");
        if (x.dim() == 0 || y.dim() == 0 || x.size(0) != y.size(0))
          throw py::value_error("fit: x and y need the same number of samples (first axis), got x " +
                                shape_str(x.shape()) + " and y " + shape_str(y.shape()));
        if (batch_size < 1) throw py::value_error("fit: batch_size must be >= 1, got " + std::to_string(batch_size));
        if (log_every < 1) throw py::value_error("fit: log_every must be >= 1, got " + std::to_string(log_every));
        const nn::DataLoader loader(
            nn::Dataset{x, y},
            nn::LoaderOptions{.batch_size = batch_size, .shuffle = shuffle, .drop_last = drop_last, .seed = seed});
        nn::FitOptions options{.epochs = epochs, .quiet = true, .log_every = log_every};
        options.stop_on_non_finite_loss = stop_on_non_finite_loss;
        std::unique_lock<std::mutex>* model_lock = nullptr;
        options.on_epoch = [&](const nn::EpochLog& log) {
          const bool keep = (log.epoch + 1) % log_every == 0 || log.epoch + 1 == epochs;
          if (!(progress && keep) && on_epoch.is_none()) return;
          // Between epochs the model is consistent: the callback may use it (Note [Progress
          // through Python]). If it raises, the lock stays released and the unwinding fit needs
          // it no more.
          model_lock->unlock();
          {
            py::gil_scoped_acquire gil;
            if (progress && keep) {
              char text[160];
              std::snprintf(text, sizeof(text), "epoch %lld/%lld  loss %.6g  %.2fs",
                            static_cast<long long>(log.epoch + 1), static_cast<long long>(epochs), log.train_loss,
                            log.seconds);
              py::print(text, py::arg("flush") = true);
            }
            if (!on_epoch.is_none()) on_epoch(epoch_dict(log));
          }
          model_lock->lock();  // without the GIL, as always (Note [One call per module])
        };
        std::vector<nn::EpochLog> logs;
        {
          ReleaseGil released;
          auto lock = lock_module(model);
          model_lock = &lock;
          logs = nn::fit(
              model, *optimizer.impl, loader,
              [kind](const autograd::Var& out, const Tensor& target) { return compute_loss(kind, out, target); },
              options, first_epoch);
        }
        py::list out;
        for (const auto& log : logs) out.append(epoch_dict(log));
        return out;
      },
      py::arg("model"), py::arg("optimizer"), py::arg("x"), py::arg("y"), py::arg("loss") = "cross_entropy",
      py::arg("epochs") = 1, py::arg("batch_size") = 32, py::arg("shuffle") = true, py::arg("drop_last") = false,
      py::arg("seed") = 0, py::arg("progress") = true, py::arg("log_every") = 1, py::arg("first_epoch") = 0,
      py::arg("stop_on_non_finite_loss") = true, py::arg("on_epoch") = py::none(), R"doc(
Trains `model` (switched to training mode) on (x, y) for epoch indices first_epoch .. epochs - 1 in
mini-batches (order a pure function of seed and epoch, so a run resumed from a checkpoint repeats
an uninterrupted one), each batch doing zero_grad, forward, loss, backward, optimizer.step().
Runs in C++ with the GIL released; Ctrl-C stops it between batches. Prints "epoch e/E  loss L  T s"
to sys.stdout every log_every epochs when progress is true, and calls on_epoch(log) after every
epoch. A NaN or infinite batch loss raises NonFiniteLossError (the model as the previous batches
left it) unless stop_on_non_finite_loss is false. Returns [{"epoch", "train_loss", "seconds"}, ...].
)doc");
}

}  // namespace

void bind_nn_training(py::module_& m) {
  auto non_finite = py::register_exception<nn::NonFiniteLossError>(m, "NonFiniteLossError", PyExc_ArithmeticError);
  non_finite.attr("__doc__") =
      "Raised by fit at the first NaN or infinite batch loss (the message names the epoch and batch); the model "
      "is as the previous batches left it.";
  bind_optimizers(m);
  bind_steps(m);
  bind_fit(m);
}

}  // namespace theta::python
