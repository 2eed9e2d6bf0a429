// The tiled NTK: against the whole-batch kernel, in memory and on disk, bit for bit across
// schedules, and restartable after a stop; foreign and damaged files refused.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "nn/conv.hpp"
#include "nn/layers.hpp"
#include "nn/residual.hpp"
#include "tensor/npy.hpp"
#include "tensor/ops.hpp"
#include "tensor/file_io.hpp"
#include "tensor/parallel.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/thread_count.hpp"
#include "tests/support/kernel_compare.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_tiled.hpp"

using namespace theta;
using theta::test::max_rel_diff;
using namespace theta::theory;
using Catch::Contains;
using test::ThreadCount;

namespace {

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<std::size_t>(ca.numel()) * dtype_size(ca.dtype())) == 0;
}

// A residual MLP with a LayerNorm: structured Linear blocks plus fallback (LayerNorm) parameters.
std::shared_ptr<nn::Sequential> mixed_net(int outputs) {
  Rng rng(21);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(4, 6, rng, nn::LinearOptions{.parameterization = nn::Parameterization::ntk}));
  net->add(std::make_shared<nn::LayerNorm>(6));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Residual>(std::make_shared<nn::Linear>(6, 6, rng)));
  net->add(std::make_shared<nn::Linear>(6, outputs, rng));
  return net;
}

std::string read_bytes(const std::string& path) { return read_file(path); }

}  // namespace

TEST_CASE("tile_plan covers the kernel once, upper triangle only when symmetric", "[theory][ntk][tiled]") {
  const auto sym = tile_plan(10, 10, 3, true);  // T = 4
  CHECK(sym.size() == 4u * 5u / 2u);
  for (const auto& [i, j] : sym) CHECK(i <= j);
  CHECK(sym.front() == std::pair<std::int64_t, std::int64_t>{0, 0});
  CHECK(sym.back() == std::pair<std::int64_t, std::int64_t>{3, 3});
  CHECK(tile_plan(10, 7, 3, false).size() == 4u * 3u);
  CHECK(tile_plan(5, 5, 64, true).size() == 1u);
  CHECK_THROWS_AS(tile_plan(4, 5, 2, true), std::invalid_argument);
  CHECK_THROWS_AS(tile_plan(4, 4, 0, false), std::invalid_argument);
}

TEST_CASE("tiled NTK equals the whole-batch kernel for every tile size", "[theory][ntk][tiled]") {
  for (int outputs : {1, 3}) {
    auto net = mixed_net(outputs);
    Rng rng(5);
    const Tensor x1 = rng.normal({11, 4}), x2 = rng.normal({7, 4});
    const Tensor full_sym = empirical_ntk(*net, x1, x1), trace_sym = empirical_ntk_trace(*net, x1, x1);
    const Tensor full_cross = empirical_ntk(*net, x1, x2), trace_cross = empirical_ntk_trace(*net, x1, x2);
    for (std::int64_t tile : {1, 3, 4, 11, 64}) {
      INFO("outputs " << outputs << ", tile " << tile);
      const Tensor ts = tiled_ntk(*net, x1, x1, {.tile = tile, .form = NtkForm::full});
      CHECK(max_rel_diff(ts, full_sym) < 1e-12);
      // The kernel of x with itself is exactly symmetric: lower tiles are the upper ones mirrored.
      CHECK(bitwise_equal(ts, ts.permute({1, 0, 3, 2})));
      CHECK(max_rel_diff(tiled_ntk(*net, x1, x1, {.tile = tile, .form = NtkForm::trace}), trace_sym) < 1e-12);
      CHECK(max_rel_diff(tiled_ntk(*net, x1, x2, {.tile = tile, .form = NtkForm::full}), full_cross) < 1e-12);
      CHECK(max_rel_diff(tiled_ntk(*net, x1, x2, {.tile = tile, .form = NtkForm::trace}), trace_cross) < 1e-12);
    }
  }
}

TEST_CASE("tiled NTK of a CNN equals Jacobian contraction for every tile size", "[theory][ntk][tiled][conv]") {
  // The last convolution's cotangents factor by channel; each tile's block finds (or carries) its
  // own factors, normalised at its own samples, and pairs of blocks must agree on one U.
  Rng rng(6);
  auto net = nn::cnn({.image = {1, 4, 4}, .channels = {3, 4}, .out_features = 3}, rng);
  const Tensor x1 = rng.normal({7, 16}), x2 = rng.normal({5, 16});
  const NtkOptions contraction{.method = NtkMethod::contraction};
  const Tensor full_sym = empirical_ntk(*net, x1, x1, contraction);
  const Tensor full_cross = empirical_ntk(*net, x1, x2, contraction);
  for (std::int64_t tile : {1, 3, 7}) {
    INFO("tile " << tile);
    CHECK(max_rel_diff(tiled_ntk(*net, x1, x1, {.tile = tile, .form = NtkForm::full}), full_sym) < 1e-12);
    CHECK(max_rel_diff(tiled_ntk(*net, x1, x2, {.tile = tile, .form = NtkForm::full}), full_cross) < 1e-12);
    CHECK(max_rel_diff(tiled_ntk(*net, x1, x2, {.tile = tile, .form = NtkForm::output, .output = 2}),
                       full_cross.select(3, 2).select(2, 2)) < 1e-12);
  }
}

TEST_CASE("tiled NTK on disk equals the in-memory one bit for bit and numpy-readable", "[theory][ntk][tiled]") {
  test::TempDir dir;
  auto net = mixed_net(2);
  Rng rng(6);
  const Tensor x = rng.normal({13, 4});
  for (const NtkForm form : {NtkForm::trace, NtkForm::full}) {
    const std::string path = dir.file(form == NtkForm::trace ? "trace.npy" : "full.npy");
    std::int64_t calls = 0;
    const TiledNtkOptions options{.tile = 4, .form = form, .on_tile = [&](std::int64_t, std::int64_t) {
                                    ++calls;
                                    return true;
                                  }};
    const TiledNtkRun run = tiled_ntk_to_npy(*net, x, x, path, options);
    CHECK(run.complete);
    CHECK(run.tiles_total == 4 * 5 / 2);
    CHECK(run.tiles_computed == run.tiles_total);
    CHECK(calls == run.tiles_total);
    const Tensor on_disk = load_npy(path);
    CHECK(bitwise_equal(on_disk, tiled_ntk(*net, x, x, options)));
    CHECK(std::filesystem::exists(path + ".tiles"));
    // Called again: nothing left to do.
    const TiledNtkRun again = tiled_ntk_to_npy(*net, x, x, path, options);
    CHECK((again.complete && again.tiles_computed == 0 && again.tiles_reused == run.tiles_total));
  }
}

TEST_CASE("a stopped tiled run leaves NaN where tiles are missing and resumes only those", "[theory][ntk][tiled]") {
  test::TempDir dir;
  auto net = mixed_net(1);
  Rng rng(7);
  const Tensor x1 = rng.normal({10, 4}), x2 = rng.normal({9, 4});
  for (const bool symmetric : {true, false}) {
    INFO((symmetric ? "x with itself" : "x1, x2"));
    const Tensor& other = symmetric ? x1 : x2;
    const std::string whole = dir.file(symmetric ? "whole_s.npy" : "whole_c.npy");
    const std::string parts = dir.file(symmetric ? "parts_s.npy" : "parts_c.npy");
    const TiledNtkRun uninterrupted = tiled_ntk_to_npy(*net, x1, other, whole, {.tile = 3});
    REQUIRE(uninterrupted.complete);

    const TiledNtkRun first = tiled_ntk_to_npy(
        *net, x1, other, parts, {.tile = 3, .on_tile = [](std::int64_t done, std::int64_t) { return done < 3; }});
    CHECK_FALSE(first.complete);
    CHECK(first.tiles_computed == 3);
    const Tensor partial = load_npy(parts);
    std::int64_t nan_count = 0;
    for (double v : to_vector(partial)) nan_count += std::isnan(v) ? 1 : 0;
    CHECK(nan_count > 0);

    std::int64_t resumed_calls = 0;
    const TiledNtkRun second =
        tiled_ntk_to_npy(*net, x1, other, parts, {.tile = 3, .on_tile = [&](std::int64_t, std::int64_t total) {
                                                    CHECK(total == uninterrupted.tiles_total - 3);
                                                    ++resumed_calls;
                                                    return true;
                                                  }});
    CHECK(second.complete);
    CHECK(second.tiles_reused == 3);
    CHECK(second.tiles_computed == uninterrupted.tiles_total - 3);
    CHECK(resumed_calls == second.tiles_computed);
    CHECK(read_bytes(parts) == read_bytes(whole));
  }
}

TEST_CASE("tiled runs refuse foreign, mismatched and damaged files and keep them", "[theory][ntk][tiled]") {
  test::TempDir dir;
  auto net = mixed_net(1);
  Rng rng(8);
  const Tensor x = rng.normal({8, 4});
  const TiledNtkOptions options{.tile = 3};

  SECTION("a file at the path without a log") {
    const std::string path = dir.file("k.npy");
    save_npy(path, ones({8, 8}));
    const std::string before = read_bytes(path);
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, x, x, path, options), FormatError);
    CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, options), Catch::Matchers::Contains("has no tile log"));
    CHECK(read_bytes(path) == before);
  }
  SECTION("a log for other inputs") {
    const std::string path = dir.file("k.npy");
    tiled_ntk_to_npy(*net, x, x, path, options);
    const Tensor other = x + 1.0;
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, other, other, path, options), FormatError);
    CHECK_THROWS_WITH(
        tiled_ntk_to_npy(*net, other, other, path, options),
        Catch::Matchers::Contains("belongs to another kernel") && Catch::Matchers::Contains("fingerprint"));
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, x, x, path, {.tile = 4}), FormatError);
    CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, {.tile = 4}),
                      Catch::Matchers::Contains("'tile 3' where this run has 'tile 4'"));
  }
  SECTION("a log that is not theta's, or has a line no run writes") {
    const std::string path = dir.file("k.npy");
    tiled_ntk_to_npy(*net, x, x, path, options);
    const std::string log = read_bytes(path + ".tiles");
    write_file_atomic(path + ".tiles", "hello\n");
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, x, x, path, options), FormatError);
    CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, options),
                      Catch::Matchers::Contains("is not a theta tile log"));
    const std::string header = log.substr(0, log.find("done"));
    write_file_atomic(path + ".tiles", header + "done 0 99\n");
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, x, x, path, options), FormatError);
    CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, options),
                      Catch::Matchers::Contains("is not a finished tile of this kernel"));
  }
  SECTION("a truncated data file") {
    const std::string path = dir.file("k.npy");
    tiled_ntk_to_npy(*net, x, x, path, {.tile = 3, .on_tile = [](std::int64_t, std::int64_t) { return false; }});
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 8);
    CHECK_THROWS_AS(tiled_ntk_to_npy(*net, x, x, path, options), FormatError);
    CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, options), Catch::Matchers::Contains("truncated data"));
  }
  SECTION("a torn last log line is dropped and its tile computed again") {
    const std::string path = dir.file("k.npy");
    tiled_ntk_to_npy(*net, x, x, path, {.tile = 3, .on_tile = [](std::int64_t d, std::int64_t) { return d < 2; }});
    {
      std::ofstream log(path + ".tiles", std::ios::app);
      log << "done 1 ";  // a crash in the middle of an append
    }
    const TiledNtkRun run = tiled_ntk_to_npy(*net, x, x, path, options);
    CHECK(run.complete);
    CHECK(run.tiles_reused == 2);
    CHECK(bitwise_equal(load_npy(path), tiled_ntk(*net, x, x, options)));
  }
}

TEST_CASE("tiles on several threads give the bits of one thread", "[theory][ntk][tiled]") {
  test::TempDir dir;
  auto net = mixed_net(2);
  Rng rng(9);
  const Tensor x = rng.normal({14, 4}), x2 = rng.normal({6, 4});
  Tensor one_thread, one_thread_cross;
  {
    const ThreadCount threads(1);
    one_thread = tiled_ntk(*net, x, x, {.tile = 3, .form = NtkForm::full});
    one_thread_cross = tiled_ntk(*net, x, x2, {.tile = 4});
    tiled_ntk_to_npy(*net, x, x, dir.file("one.npy"), {.tile = 3});
  }
  const ThreadCount threads(3);
  CHECK(bitwise_equal(tiled_ntk(*net, x, x, {.tile = 3, .form = NtkForm::full}), one_thread));
  CHECK(bitwise_equal(tiled_ntk(*net, x, x2, {.tile = 4}), one_thread_cross));
  tiled_ntk_to_npy(*net, x, x, dir.file("three.npy"), {.tile = 3});
  CHECK(read_bytes(dir.file("three.npy")) == read_bytes(dir.file("one.npy")));
  // The model's own hooks are gone afterwards: a plain forward records nothing extra.
  CHECK(max_rel_diff(tiled_ntk(*net, x, x, {.tile = 5}), empirical_ntk_trace(*net, x, x)) < 1e-12);
}

TEST_CASE("an error in any tile stops a threaded run and reaches the caller", "[theory][ntk][tiled]") {
  auto net = mixed_net(1);
  Rng rng(10);
  Tensor x = rng.normal({12, 4});
  x.select(0, 10).select(0, 2).fill_(std::nan(""));  // only the last row block is bad
  const ThreadCount threads(2);
  CHECK_THROWS_WITH(tiled_ntk(*net, x, x, {.tile = 2}), Contains("NaN"));
}

TEST_CASE("the one-output form is that output's block of the full kernel", "[theory][ntk][tiled]") {
  test::TempDir dir;
  auto net = mixed_net(3);  // LayerNorm parameters take the contraction fallback
  Rng rng(11);
  const Tensor x1 = rng.normal({9, 4}), x2 = rng.normal({5, 4});
  const Tensor full_sym = empirical_ntk(*net, x1, x1), full_cross = empirical_ntk(*net, x1, x2);
  for (std::int64_t o = 0; o < 3; ++o) {
    INFO("output " << o);
    const Tensor sym = tiled_ntk(*net, x1, x1, {.tile = 4, .form = NtkForm::output, .output = o});
    CHECK(max_rel_diff(sym, full_sym.select(3, o).select(2, o)) < 1e-12);
    CHECK(bitwise_equal(sym, sym.t()));
    const Tensor cross = tiled_ntk(*net, x1, x2, {.tile = 2, .form = NtkForm::output, .output = o});
    CHECK(max_rel_diff(cross, full_cross.select(3, o).select(2, o)) < 1e-12);
    const std::string path = dir.file("o" + std::to_string(o) + ".npy");
    tiled_ntk_to_npy(*net, x1, x1, path, {.tile = 4, .form = NtkForm::output, .output = o});
    CHECK(bitwise_equal(load_npy(path), sym));
  }
  // A log for one output is not another output's.
  CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x1, x1, dir.file("o0.npy"), {.tile = 4, .form = NtkForm::output, .output = 1}),
                    Contains("'form output 0' where this run has 'form output 1'"));
  CHECK_THROWS_AS(tiled_ntk(*net, x1, x1, {.form = NtkForm::output, .output = 3}), IndexError);
  CHECK_THROWS_WITH(tiled_ntk(*net, x1, x1, {.form = NtkForm::output, .output = -1}),
                    Contains("output -1 is out of range for a model with 3 outputs"));
}
