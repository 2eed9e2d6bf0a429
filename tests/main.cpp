// Test runner: fixes a misdetected OpenBLAS core before any test runs (Note [OpenBLAS core]).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "tensor/blas_runtime.hpp"

int main(int argc, char** argv) {
  theta::ensure_blas_core(argc, argv);
  return Catch::Session().run(argc, argv);
}
