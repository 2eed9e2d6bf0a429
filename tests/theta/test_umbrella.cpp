// theta/theta.hpp: one include declares the whole public API, and no public header is left out.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "theta/theta.hpp"

namespace {

// Headers that are internal to their library (kernels, loops, helpers for writing primitives,
// theory's model probes) and so stay out of the umbrella header.
const std::set<std::string> kInternalHeaders = {
    "tensor/block_pool.hpp", "tensor/conv_chunks.hpp", "tensor/conv_geometry.hpp", "tensor/conv_winograd.hpp",
    "tensor/conv_winograd_scheme.hpp", "tensor/cpu_limit.hpp", "tensor/dims.hpp", "tensor/file_io.hpp",
    "tensor/conv_winograd_tiling.hpp", "tensor/large_blocks.hpp", "tensor/simd_gemm.hpp",
    "tensor/npy_header.hpp", "tensor/overlap.hpp", "tensor/strided_loop.hpp", "autograd/inline_list.hpp",
    "autograd/primitive.hpp", "nn/conv_factors.hpp", "nn/data_location.hpp", "nn/layer_support.hpp",
    "theory/checks.hpp", "theory/cntk_kernels.hpp", "theory/cntk_kernels_impl.hpp", "theory/lanczos.hpp",
    "theory/model_probe.hpp", "theory/ntk_blocks.hpp", "theory/tile_file.hpp",
};

}  // namespace

TEST_CASE("theta/theta.hpp declares what new users reach for", "[umbrella]") {
  // The functions a user could not find without knowing their module's header.
  void (*ensure)(int, char**) = theta::ensure_blas_core;
  void (*backward)(const theta::autograd::Var&, const theta::autograd::Var&, bool) = theta::autograd::backward;
  theta::theory::SymmetricEigen (*eigh)(const theta::Tensor&) = theta::theory::eigh;
  CHECK(ensure != nullptr);
  CHECK(backward != nullptr);
  CHECK(eigh != nullptr);
}

TEST_CASE("theta/theta.hpp includes every public header", "[umbrella]") {
  namespace fs = std::filesystem;
  const fs::path root(THETA_SOURCE_DIR);
  std::ifstream in(root / "theta" / "theta.hpp");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::string umbrella = text.str();
  int public_headers = 0;
  for (const char* module : {"tensor", "autograd", "nn", "theory"}) {
    for (const auto& entry : fs::directory_iterator(root / module)) {
      if (entry.path().extension() != ".hpp") continue;
      const std::string header = std::string(module) + "/" + entry.path().filename().string();
      const bool included = umbrella.find("#include \"" + header + "\"") != std::string::npos;
      INFO(header);
      CHECK(included != (kInternalHeaders.count(header) == 1));
      public_headers += included;
    }
  }
  CHECK(public_headers >= 30);
}
