// A program outside the theta tree: builds two tensors, multiplies them, prints the product and
// checks it against the hand-computed result.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "tensor/blas_runtime.hpp"
#include "tensor/ops.hpp"
#include "tensor/rng.hpp"

int main(int argc, char** argv) {
  theta::ensure_blas_core(argc, argv);
  std::cout << "theta consumer: " << theta::runtime_summary() << "\n";

  const theta::Tensor a = theta::tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const theta::Tensor b = theta::arange(0, 6).reshape({3, 2});
  const theta::Tensor c = theta::matmul(a, b);  // [2,3] @ [3,2] -> [2,2]
  std::cout << c << "\n";

  const theta::Tensor expected = theta::tensor({16, 22, 34, 49}, {2, 2});
  if (!theta::allclose(c, expected)) {
    std::fprintf(stderr, "theta consumer: FAIL: matmul result differs from the expected product\n");
    return 1;
  }

  theta::Rng rng(7);
  const theta::Tensor x = rng.normal({64, 32}, 0.0, 1.0, theta::DType::f32);
  const double total = theta::sum(theta::relu(theta::matmul(x, x.t()))).item();
  if (!std::isfinite(total) || total <= 0.0) {
    std::fprintf(stderr, "theta consumer: FAIL: relu(x x^T) sums to %g\n", total);
    return 1;
  }
  std::cout << "theta consumer: OK\n";
  return 0;
}
