// theta_ntk end to end: the kernel it writes against the library's, and bad inputs ending in
// exit status 2 with one message and no output file.

#include <catch2/catch.hpp>

#ifdef THETA_NTK_TOOL

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "nn/npz.hpp"
#include "tensor/file_io.hpp"
#include "tensor/npy.hpp"
#include "tests/support/temp_dir.hpp"
#include "theory/model_spec.hpp"
#include "tests/support/kernel_compare.hpp"
#include "theory/ntk.hpp"

using namespace theta;
using Catch::Contains;
using theta::test::max_rel_diff;

namespace {

struct ToolRun {
  int status = -1;
  std::string err;
};

ToolRun run_tool(const test::TempDir& dir, const std::string& args) {
  const std::string err_file = dir.file("stderr.txt");
  const std::string command = std::string(THETA_NTK_TOOL) + " " + args + " > /dev/null 2> " + err_file;
  const int raw = std::system(command.c_str());
  ToolRun r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.err = read_file(err_file);
  return r;
}

// A relu MLP 3-8-8-2 in NTK parameterisation, its weights under PyTorch's names, and inputs.
struct Problem {
  theory::MlpSpec spec;
  std::vector<nn::NamedTensor> weights;
  Tensor x1, x2;
};

Problem write_problem(const test::TempDir& dir) {
  Problem p;
  const std::string json = R"({"widths": [3, 8, 8, 2], "activation": "relu", "bias": true,
                              "parameterisation": "ntk", "sigma_w": 1.5, "sigma_b": 0.2})";
  write_file_atomic(dir.file("model.json"), json);
  p.spec = theory::parse_mlp_spec(json);
  Rng rng(12);
  p.weights = {{"0.weight", rng.normal({8, 3})}, {"0.bias", rng.normal({8})},      {"2.weight", rng.normal({8, 8})},
               {"2.bias", rng.normal({8})},      {"4.weight", rng.normal({2, 8})}, {"4.bias", rng.normal({2})}};
  nn::save_npz(dir.file("weights.npz"), p.weights);
  p.x1 = rng.normal({7, 3});
  p.x2 = rng.normal({5, 3});
  save_npy(dir.file("x.npy"), p.x1);
  save_npy(dir.file("x2.npy"), p.x2);
  return p;
}

}  // namespace

TEST_CASE("theta_ntk writes the library's kernels", "[theory][ntk][tool]") {
  test::TempDir dir;
  const Problem p = write_problem(dir);
  auto net = theory::mlp_from_state_dict(p.spec, p.weights, "weights");
  const std::string common = "--model " + dir.file("model.json") + " --weights " + dir.file("weights.npz") + " --x " +
                             dir.file("x.npy") + " --quiet";

  ToolRun r = run_tool(dir, common + " --tile 3 --out " + dir.file("trace.npy"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(max_rel_diff(load_npy(dir.file("trace.npy")), theory::empirical_ntk_trace(*net, p.x1, p.x1)) < 1e-12);

  r = run_tool(dir, common + " --x2 " + dir.file("x2.npy") + " --form full --tile 2 --out " + dir.file("full.npy"));
  REQUIRE(r.status == 0);
  CHECK(max_rel_diff(load_npy(dir.file("full.npy")), theory::empirical_ntk(*net, p.x1, p.x2)) < 1e-12);

  r = run_tool(dir, common + " --x2 " + dir.file("x2.npy") + " --form output --output 1 --tile 2 --out " +
                        dir.file("one.npy"));
  REQUIRE(r.status == 0);
  CHECK(max_rel_diff(load_npy(dir.file("one.npy")), load_npy(dir.file("full.npy")).select(3, 1).select(2, 1)) < 1e-15);

  r = run_tool(dir, common + " --kernel ntk --out " + dir.file("analytic.npy"));
  REQUIRE(r.status == 0);
  const auto exact = theory::analytic_ntk(p.x1, p.x1, 3, nn::ActivationKind::relu, 1.5, 0.2);
  CHECK(max_rel_diff(load_npy(dir.file("analytic.npy")), exact.ntk) < 1e-15);

  // Weights as a directory of .npy files under another prefix (what ntk_demo --dump writes).
  std::filesystem::create_directory(dir.file("dump"));
  for (const auto& [name, t] : p.weights) save_npy(dir.file("dump/layers." + name + ".npy"), t);
  r = run_tool(dir, "--model " + dir.file("model.json") + " --weights " + dir.file("dump") + " --x " +
                        dir.file("x.npy") + " --quiet --out " + dir.file("from_dir.npy"));
  REQUIRE(r.status == 0);
  CHECK(max_rel_diff(load_npy(dir.file("from_dir.npy")), load_npy(dir.file("trace.npy"))) < 1e-15);
}

TEST_CASE("theta_ntk --max-tiles stops with exit status 3 and the same command finishes", "[theory][ntk][tool]") {
  test::TempDir dir;
  write_problem(dir);
  const std::string common = "--model " + dir.file("model.json") + " --weights " + dir.file("weights.npz") + " --x " +
                             dir.file("x.npy") + " --tile 2 --threads 1";  // 7 rows: 4 x 4 tiles, 10 computed
  ToolRun r = run_tool(dir, common + " --out " + dir.file("whole.npy"));
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("(10 of 10 tiles computed by 1 process, 0 reused"));
  r = run_tool(dir, common + " --max-tiles 3 --out " + dir.file("k.npy"));
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Contains("stopped, resumable:") && Contains("(3 of 10 tiles computed"));
  r = run_tool(dir, common + " --out " + dir.file("k.npy"));
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Contains("(7 of 10 tiles computed by 1 process, 3 reused"));
  CHECK(read_file(dir.file("k.npy")) == read_file(dir.file("whole.npy")));
  r = run_tool(dir, common + " --max-tiles 0 --out " + dir.file("k0.npy"));
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--max-tiles must be a positive integer"));
}

TEST_CASE("theta_ntk refuses bad inputs with exit status 2 and writes nothing", "[theory][ntk][tool]") {
  test::TempDir dir;
  Problem p = write_problem(dir);
  const std::string out = dir.file("k.npy");
  const auto common = [&](const std::string& x, const std::string& weights) {
    return "--model " + dir.file("model.json") + " --weights " + weights + " --x " + x + " --out " + out;
  };
  save_npy(dir.file("x_wide.npy"), ones({4, 5}));
  ToolRun r = run_tool(dir, common(dir.file("x_wide.npy"), dir.file("weights.npz")));
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("x_wide.npy is [4, 5] but the model takes [n, 3]"));

  p.weights[2].second = ones({8, 9});
  nn::save_npz(dir.file("bad.npz"), p.weights);
  r = run_tool(dir, common(dir.file("x.npy"), dir.file("bad.npz")));
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("\"2.weight\" is [8, 9]") && Contains("[8, 8]"));

  r = run_tool(dir, common(dir.file("x.npy"), dir.file("weights.npz")) + " --output 1");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--form output and --output O go together"));
  r = run_tool(dir, common(dir.file("x.npy"), dir.file("weights.npz")) + " --form output --output 2");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("output 2 is out of range for a model with 2 outputs"));
  r = run_tool(dir, common(dir.file("x.npy"), dir.file("weights.npz")) + " --tile 0");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--tile must be a positive integer"));
  r = run_tool(dir, common(dir.file("x.npy"), dir.file("weights.npz")) + " --resume");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("unknown argument '--resume'"));
  r = run_tool(dir, "--model --weights " + dir.file("weights.npz"));
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--model needs a value"));
  CHECK_FALSE(std::filesystem::exists(out));

  // An output under a regular file cannot be created.
  r = run_tool(dir, "--model " + dir.file("model.json") + " --weights " + dir.file("weights.npz") + " --x " +
                        dir.file("x.npy") + " --out " + dir.file("model.json") + "/k.npy");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("model.json/k.npy"));
}

#endif  // THETA_NTK_TOOL
