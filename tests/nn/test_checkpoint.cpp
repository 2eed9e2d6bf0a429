// Checkpoints: bitwise round trips, deterministic atomic files, and archives written by NumPy.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/nn/checkpoint_test_support.hpp"
#include "tests/support/temp_dir.hpp"

// NumPy reads theta's checkpoints (checked by hand with NumPy 1.24.2; the archive is the one the
// round-trip test writes, e.g. saved to /tmp/ckpt.npz):
//   /usr/bin/python3 -c "import numpy; d = numpy.load('/tmp/ckpt.npz'); print({k: (d[k].dtype, d[k].shape) for k in d.files})"
// tests/data/npz/README.md records how the NumPy-written archives read below were made.

using namespace theta;
using namespace theta::nn;
using namespace theta::checkpoint_test;
using theta::test::TempDir;
using theta::test::TinyNet;

TEST_CASE("checkpoint round trip restores parameters, buffers and optimizer state bitwise", "[nn][checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.npz");
  TinyNet a(4, 3, 2, 1);
  TinyNet b(4, 3, 2, 2);

  SECTION("SGD with momentum") {
    Sgd opt_a(a.named_parameters(), {.lr = 0.1, .momentum = 0.9});
    Sgd opt_b(b.named_parameters(), {.lr = 0.1, .momentum = 0.9});
    train_steps(a, opt_a, 3);
    save_checkpoint(path, a, &opt_a);
    REQUIRE_FALSE(bitwise_equal(snapshot(a), snapshot(b)));
    load_checkpoint(path, b, &opt_b);
    check_bitwise(snapshot(b), snapshot(a));
    check_bitwise(snapshot(opt_b), snapshot(opt_a));
    CHECK(opt_b.steps_taken() == 3);
    CHECK(opt_b.state().size() == 6);  // step + one momentum buffer per parameter + has_state
    // Training on from the checkpoint is identical to training on without it.
    train_steps(a, opt_a, 2);
    train_steps(b, opt_b, 2);
    check_bitwise(snapshot(b), snapshot(a));
  }
  SECTION("Adam") {
    Adam opt_a(a.named_parameters(), {.lr = 0.01});
    Adam opt_b(b.named_parameters(), {.lr = 0.01});
    train_steps(a, opt_a, 2);
    save_checkpoint(path, a, &opt_a);
    load_checkpoint(path, b, &opt_b);
    check_bitwise(snapshot(b), snapshot(a));
    check_bitwise(snapshot(opt_b), snapshot(opt_a));
    train_steps(a, opt_a, 2);
    train_steps(b, opt_b, 2);
    check_bitwise(snapshot(b), snapshot(a));
  }
  SECTION("a parameter that never had a gradient (Note [Optimizer state presence])") {
    // The optimizer also holds a parameter the model never uses: it has no buffers.
    auto with_unused = [](const Module& m) {
      auto named = m.named_parameters();
      named.emplace_back("unused", Var(zeros({3}), true));
      return named;
    };
    for (const bool adam : {false, true}) {
      INFO((adam ? "Adam" : "SGD with momentum"));
      std::unique_ptr<Optimizer> opt_a, opt_b;
      if (adam) {
        opt_a = std::make_unique<Adam>(with_unused(a), AdamOptions{.lr = 0.01});
        opt_b = std::make_unique<Adam>(with_unused(b), AdamOptions{.lr = 0.01});
      } else {
        opt_a = std::make_unique<Sgd>(with_unused(a), SgdOptions{.lr = 0.1, .momentum = 0.9});
        opt_b = std::make_unique<Sgd>(with_unused(b), SgdOptions{.lr = 0.1, .momentum = 0.9});
      }
      train_steps(a, *opt_a, 2);
      save_checkpoint(path, a, opt_a.get());
      load_checkpoint(path, b, opt_b.get());
      check_bitwise(snapshot(b), snapshot(a));
      check_bitwise(snapshot(*opt_b), snapshot(*opt_a));
      train_steps(a, *opt_a, 2);
      train_steps(b, *opt_b, 2);
      check_bitwise(snapshot(b), snapshot(a));
    }
  }
  SECTION("model only; optimizer state in the file is ignored without an optimizer") {
    Sgd opt_a(a.named_parameters(), {.lr = 0.1, .momentum = 0.5});
    train_steps(a, opt_a, 1);
    save_checkpoint(path, a, &opt_a);
    load_checkpoint(path, b);
    check_bitwise(snapshot(b), snapshot(a));
    save_checkpoint(path, a);
    TinyNet c(4, 3, 2, 3);
    load_checkpoint(path, c);
    check_bitwise(snapshot(c), snapshot(a));
  }
}

TEST_CASE("checkpoint files are deterministic, named like the model, and atomic", "[nn][checkpoint]") {
  TempDir dir;
  TinyNet a(4, 3, 2, 1);
  Sgd opt(a.named_parameters(), {.lr = 0.1, .momentum = 0.9});
  train_steps(a, opt, 1);
  save_checkpoint(dir.file("one.npz"), a, &opt);
  save_checkpoint(dir.file("two.npz"), a, &opt);
  const std::string bytes = read_file(dir.file("one.npz"));
  CHECK(bytes == read_file(dir.file("two.npz")));
  CHECK(bytes.substr(0, 4) == "PK\x03\x04");

  std::vector<std::string> names;
  for (const auto& [name, t] : load_npz(dir.file("one.npz"))) names.push_back(name);
  CHECK(names == std::vector<std::string>{"param/hidden.weight", "param/hidden.bias", "param/out.weight",
                                          "param/out.bias", "buffer/hidden.scale", "buffer/out.scale",
                                          "optim/step", "optim/momentum.hidden.weight",
                                          "optim/momentum.hidden.bias", "optim/momentum.out.weight",
                                          "optim/momentum.out.bias", "optim/has_state"});
  // Overwriting goes through a temporary file: no leftovers in the directory.
  save_checkpoint(dir.file("one.npz"), a, &opt);
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.file(""))) ++files;
  CHECK(files == 2);
}

TEST_CASE("npz archives written by NumPy are read, compressed ones rejected clearly", "[nn][checkpoint]") {
  const auto tensors = load_npz(golden("numpy_savez.npz"));
  REQUIRE(tensors.size() == 4);
  CHECK(tensors[0].first == "param/w");
  CHECK(tensors[0].second.shape() == Shape{2, 3});
  CHECK(to_vector(tensors[0].second) == std::vector<double>{0, 0.25, 0.5, 0.75, 1.0, 1.25});
  CHECK(tensors[1].first == "buffer/count");
  CHECK(tensors[1].second.dtype() == DType::i64);
  CHECK(to_vector(tensors[1].second) == std::vector<double>{3, -1, 7});
  CHECK(tensors[2].first == "optim/step");
  CHECK(tensors[2].second.dim() == 0);
  CHECK(tensors[2].second.item<std::int64_t>() == 5);
  CHECK(tensors[3].first == "f32");
  CHECK(tensors[3].second.dtype() == DType::f32);
  CHECK(to_vector(tensors[3].second) == std::vector<double>{1.5, -2.25, 0.0, 3.0});

  // theta writes the same tensors back and reads them identically.
  check_bitwise(parse_exact(npz_serialize(tensors)), tensors);

  try {
    load_npz(golden("numpy_savez_compressed.npz"));
    FAIL("a compressed archive was accepted");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("member 'param/w.npy': compression method 8"));
  }
}
