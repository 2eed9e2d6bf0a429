#include "theory/landscape_grid.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "tensor/blas_runtime.hpp"
#include "tensor/interrupt.hpp"
#include "tensor/ops.hpp"
#include "tensor/parallel.hpp"
#include "theory/checks.hpp"

namespace theta::theory {

namespace {

std::string shape_of(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : std::string("undefined"); }

Tensor checked_points(const Tensor& t, const char* op, const char* name) {
  THETA_CHECK(t.defined() && t.dim() == 1, ShapeError, op, ": ", name, " must be 1-D [m], got ", shape_of(t));
  THETA_CHECK(is_floating(t.dtype()), DTypeError, op, ": ", name, " must be floating, got ", dtype_name(t.dtype()));
  return t.to(DType::f64).contiguous();
}

// Evaluates the loss at parameter vectors theta:[P] on one clone of the model.
class PointEvaluator {
 public:
  PointEvaluator(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss)
      : model_(model.clone()), x_(x), y_(y), loss_(loss) {
    for (const auto& [name, p] : model_->named_parameters()) like_.push_back(p.value());
  }

  double operator()(const Tensor& theta) const {
    const autograd::NoGradGuard no_grad;
    std::vector<autograd::Var> params;
    params.reserve(like_.size());
    std::int64_t offset = 0;
    for (const Tensor& p : like_) {
      params.emplace_back(theta.slice(0, offset, offset + p.numel()).reshape(p.shape()).to(p.dtype()));
      offset += p.numel();
    }
    const nn::BufferSnapshot keep_buffers(*model_);
    const autograd::Var value = loss_(nn::functional_call(*model_, params, autograd::Var(x_), "evaluate_losses"), y_);
    THETA_CHECK(value.numel() == 1, ShapeError, "evaluate_losses: the loss must have one element, got ",
                shape_str(value.shape()));
    return value.value().to(DType::f64).item<double>();
  }

 private:
  std::unique_ptr<nn::Module> model_;
  Tensor x_, y_;
  nn::LossFn loss_;
  std::vector<Tensor> like_;
};

}  // namespace

// Note [Grid determinism]
// Each loss is a pure function of its point, whatever thread computes it and in whatever order:
// the point is formed by the same elementwise operations everywhere; every worker owns a clone of
// the model (functional_call swaps parameters in and out, so one module cannot serve two threads)
// and restores the clone's buffers after each point, so a BatchNorm's running statistics never
// carry from one point to the next; reductions are blocked independently of the thread count
// (Note [Deterministic reductions] in tensor/ops_reduce.cpp); and OpenBLAS runs single-threaded
// inside the workers, also when there is only one, so no gemm's summation order depends on how
// many threads there are. Points are handed out by a shared counter and each result is written to
// its own slot.
Tensor evaluate_losses(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                       const Tensor& origin, const std::vector<Tensor>& directions, const Tensor& coordinates) {
  constexpr const char* op = "evaluate_losses";
  THETA_CHECK(static_cast<bool>(loss), std::invalid_argument, op, ": empty loss function");
  detail::unshared_parameters(model, op);
  const std::int64_t size = model.parameter_count();
  detail::require_parameter_vector(origin, size, op, "origin");
  std::vector<Tensor> d;
  for (std::size_t k = 0; k < directions.size(); ++k) {
    detail::require_parameter_vector(directions[k], size, op, "direction " + std::to_string(k));
    d.push_back(directions[k].to(DType::f64).contiguous());
  }
  const auto k = static_cast<std::int64_t>(directions.size());
  THETA_CHECK(coordinates.defined() && coordinates.dim() == 2 && coordinates.size(1) == k, ShapeError, op,
              ": coordinates must be [m, ", k, "] for ", k, " directions, got ", shape_of(coordinates));
  THETA_CHECK(is_floating(coordinates.dtype()), DTypeError, op, ": coordinates must be floating, got ",
              dtype_name(coordinates.dtype()));
  detail::require_finite(coordinates, op, "coordinates");
  const Tensor c = coordinates.to(DType::f64).contiguous();
  const Tensor theta0 = origin.to(DType::f64).contiguous();
  const std::int64_t m = c.size(0);
  const Tensor out = zeros({m});
  if (m == 0) return out;

  const auto point = [&](std::int64_t i) {
    Tensor theta = theta0;
    for (std::int64_t j = 0; j < k; ++j) theta = theta + d[static_cast<std::size_t>(j)] * c.at({i, j});
    return theta;
  };
  const int workers = static_cast<int>(std::min<std::int64_t>(get_num_threads(), m));
  std::vector<std::unique_ptr<PointEvaluator>> evaluators;
  for (int w = 0; w < workers; ++w) evaluators.push_back(std::make_unique<PointEvaluator>(model, x, y, loss));

  double* losses = out.data<double>();
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex failure_lock;
  std::exception_ptr failure;
  const std::thread::id caller = std::this_thread::get_id();
  const auto work = [&](const PointEvaluator& evaluate) {
    for (std::int64_t i; !stop && (i = next++) < m;) {
      try {
        if (std::this_thread::get_id() == caller) check_interrupt();  // Note [Interrupt points] in tensor/interrupt.cpp
        losses[i] = evaluate(point(i));
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_lock);
        if (!failure) failure = std::current_exception();
        stop = true;
      }
    }
  };
  {
    const theta::detail::SingleThreadedBlas blas;
    parallel_for(workers, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t w = begin; w < end; ++w) work(*evaluators[static_cast<std::size_t>(w)]);
    });
  }
  if (failure) std::rethrow_exception(failure);
  return out;
}

Tensor loss_slice(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                  const Tensor& origin, const Tensor& direction, const Tensor& alphas) {
  const Tensor a = checked_points(alphas, "loss_slice", "alphas");
  return evaluate_losses(model, x, y, loss, origin, {direction}, a.reshape({a.size(0), 1}));
}

Tensor loss_surface(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                    const Tensor& origin, const Tensor& d1, const Tensor& d2, const Tensor& alphas,
                    const Tensor& betas) {
  const Tensor a = checked_points(alphas, "loss_surface", "alphas");
  const Tensor b = checked_points(betas, "loss_surface", "betas");
  const std::int64_t rows = a.size(0), columns = b.size(0);
  const Tensor grid = Tensor::empty({rows * columns, 2}, DType::f64);
  double* g = grid.data<double>();
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < columns; ++j) {
      g[2 * (i * columns + j)] = a.data<double>()[i];
      g[2 * (i * columns + j) + 1] = b.data<double>()[j];
    }
  return evaluate_losses(model, x, y, loss, origin, {d1, d2}, grid).reshape({rows, columns});
}

Tensor loss_interpolation(const nn::Module& model, const Tensor& x, const Tensor& y, const nn::LossFn& loss,
                          const Tensor& from, const Tensor& to, const Tensor& alphas) {
  constexpr const char* op = "loss_interpolation";
  const Tensor a = checked_points(alphas, op, "alphas");
  const std::int64_t size = model.parameter_count();
  detail::require_parameter_vector(from, size, op, "from");
  detail::require_parameter_vector(to, size, op, "to");
  const Tensor start = from.to(DType::f64);
  return evaluate_losses(model, x, y, loss, start, {to.to(DType::f64) - start}, a.reshape({a.size(0), 1}));
}

}  // namespace theta::theory
