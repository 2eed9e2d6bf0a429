// A program outside the theta tree, written as a new user writes one: the umbrella header only,
// built against the installed package (or add_subdirectory). It loads the shipped digits, trains
// an MLP, computes an NTK and a Hessian spectrum, and checks each result against an independent
// computation. `theta_consumer --threads` prints the default thread count and exits.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>

#include "theta/theta.hpp"

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "theta consumer: FAIL: %s\n", what.c_str());
  return 1;
}

// max |a - b| <= tol * max |b|
bool close(const theta::Tensor& a, const theta::Tensor& b, double tol) {
  return theta::max(theta::abs(a - b)).item() <= tol * theta::max(theta::abs(b)).item();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace theta;
  ensure_blas_core(argc, argv);
  if (argc == 2 && std::string(argv[1]) == "--threads") {
    std::cout << get_num_threads() << "\n";
    return 0;
  }
  std::cout << "theta consumer: " << runtime_summary() << "\n";

  // tensor: a product against the hand-computed one.
  const Tensor c = matmul(tensor({1, 2, 3, 4, 5, 6}, {2, 3}), arange(0, 6).reshape({3, 2}));
  if (!allclose(c, tensor({16, 22, 34, 49}, {2, 2}))) return fail("matmul differs from the hand-computed product");

  // nn: the shipped digits, found without a source tree (run.sh checks where this path lies).
  std::cout << "theta consumer: data " << nn::data_file("digits.csv.gz") << "\n";
  const nn::Dataset digits = nn::load_digits();
  if (digits.x.shape() != Shape{1797, 64}) return fail("digits: x is " + shape_str(digits.x.shape()));
  const nn::Split split = nn::train_test_split(digits, 0.2, /*seed=*/42);
  Rng rng(7);
  auto net = nn::mlp({64, 32, 10}, rng, {.activation = nn::ActivationKind::tanh});
  nn::Sgd sgd(net->named_parameters(), {.lr = 0.01, .momentum = 0.9});
  nn::DataLoader loader(split.train, {.batch_size = 64, .seed = 3});
  const nn::LossFn loss_fn = [](const autograd::Var& logits, const Tensor& y) { return nn::cross_entropy(logits, y); };
  const std::vector<nn::EpochLog> logs = nn::fit(*net, sgd, loader, loss_fn, {.epochs = 10, .quiet = true});
  double test_accuracy = 0.0;
  {
    autograd::NoGradGuard no_grad;
    test_accuracy = nn::accuracy(net->forward(autograd::Var(split.test.x)).value(), split.test.y);
  }
  std::cout << "theta consumer: loss " << logs.front().train_loss << " -> " << logs.back().train_loss
            << ", test accuracy " << test_accuracy << "\n";
  if (!(logs.back().train_loss < logs.front().train_loss) || test_accuracy < 0.9)
    return fail("training on digits did not learn");

  // autograd: backward() stores what grad() returns.
  const Tensor x = split.test.x.slice(0, 0, 16), labels = split.test.y.slice(0, 0, 16);
  net->zero_grad();
  const autograd::Var loss = loss_fn(net->forward(autograd::Var(x)), labels);
  const std::vector<autograd::Var> params = net->parameters();
  const std::vector<autograd::Var> grads = autograd::grad({loss}, params, {}, {.retain_graph = true});
  autograd::backward(loss);
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!close(params[i].grad(), grads[i].value(), 1e-14)) return fail("backward() and grad() disagree");

  // theory: the NTK by two algorithms, and its spectrum (eigh) against its trace.
  const Tensor ntk = theory::empirical_ntk(*net, x, x);  // [16, 16, 10, 10]
  const Tensor reference = theory::empirical_ntk(*net, x, x, {.method = theory::NtkMethod::contraction});
  if (ntk.shape() != Shape{16, 16, 10, 10} || !close(ntk, reference, 1e-10))
    return fail("structured NTK differs from Jacobian contraction");
  const Tensor kernel = theory::empirical_ntk_trace(*net, x, x);  // [16, 16]
  const Tensor spectrum = theory::eigh(kernel).values;
  if (min(spectrum).item() < -1e-9 * max(spectrum).item() ||
      std::abs(sum(spectrum).item() - sum(kernel * eye(16)).item()) > 1e-9 * sum(spectrum).item())
    return fail("NTK spectrum is not that of a PSD kernel with its trace");

  // theory: the top of the loss Hessian's spectrum; every Rayleigh quotient lies below the top.
  const auto loss_of_params = theory::module_loss(net, x, labels, loss_fn);
  const auto hessian = theory::hessian_operator(loss_of_params, theory::parameter_values(*net));
  const theory::EigenResult top = theory::lanczos_top_k(hessian, 3);
  const Tensor v = rng.normal({hessian.size});
  const double rayleigh = dot(v, hessian.apply(v)).item() / dot(v, v).item();
  std::cout << "theta consumer: Hessian top eigenvalues " << top.values << "\n";
  if (max(top.residuals).item() > 1e-6 * std::abs(top.values.at({0})) || top.values.at({0}) < rayleigh)
    return fail("Lanczos eigenpairs of the Hessian do not check out");

  std::cout << "theta consumer: OK\n";
  return 0;
}
