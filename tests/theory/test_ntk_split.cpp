// A tiled kernel run split over processes (TiledNtkOptions part/parts): the shares cover the plan
// once, parts run one after another or side by side (threads with a barrier, as MPI ranks would)
// write the bytes of a single run, and a stopped or killed split run resumes with only the
// missing tiles, whatever the number of parts then.

#include <catch2/catch.hpp>

#include <barrier>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nn/layers.hpp"
#include "tensor/file_io.hpp"
#include "tensor/npy.hpp"
#include "tensor/parallel.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/thread_count.hpp"
#include "theory/ntk_tiled.hpp"

using namespace theta;
using namespace theta::theory;
using Catch::Contains;
using test::ThreadCount;

namespace {

std::shared_ptr<nn::Sequential> small_net() {
  Rng rng(31);
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(4, 7, rng, nn::LinearOptions{.parameterization = nn::Parameterization::ntk}));
  net->add(std::make_shared<nn::Activation>(nn::ActivationKind::tanh));
  net->add(std::make_shared<nn::Linear>(7, 2, rng));
  return net;
}

// Runs `parts` parts side by side, each on its own thread with its own copy of the model, joined
// by a barrier; part p goes on after its done-th tile while keep_going(p, done). Returns each
// part's result.
std::vector<TiledNtkRun> run_side_by_side(nn::Module& model, const Tensor& x1, const Tensor& x2,
                                          const std::string& path, std::int64_t tile, std::int64_t parts,
                                          const std::function<bool(std::int64_t, std::int64_t)>& keep_going) {
  std::vector<std::unique_ptr<nn::Module>> copies;
  for (std::int64_t p = 0; p < parts; ++p) copies.push_back(model.clone());
  std::barrier<> sync(static_cast<std::ptrdiff_t>(parts));
  std::vector<TiledNtkRun> runs(static_cast<std::size_t>(parts));
  std::vector<std::string> errors(static_cast<std::size_t>(parts));
  std::vector<std::thread> threads;
  for (std::int64_t p = 0; p < parts; ++p)
    threads.emplace_back([&, p] {
      const auto i = static_cast<std::size_t>(p);
      try {
        runs[i] = tiled_ntk_to_npy(*copies[i], x1, x2, path,
                                   {.tile = tile,
                                    .on_tile = [&, p](std::int64_t done, std::int64_t) { return keep_going(p, done); },
                                    .part = p,
                                    .parts = parts,
                                    .barrier = [&] { sync.arrive_and_wait(); }});
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  return runs;
}

std::int64_t computed(const std::vector<TiledNtkRun>& runs) {
  std::int64_t sum = 0;
  for (const auto& r : runs) sum += r.tiles_computed;
  return sum;
}

}  // namespace

TEST_CASE("tile shares split the plan block-cyclically, every tile in exactly one share", "[theory][ntk][split]") {
  for (const bool symmetric : {true, false}) {
    const auto plan = tile_plan(11, 11, 2, symmetric);  // 6 x 6 tiles: 21 or 36
    for (const std::int64_t parts : {1, 2, 3, 5, 40}) {
      INFO("parts " << parts << (symmetric ? ", symmetric" : ""));
      std::map<std::pair<std::int64_t, std::int64_t>, int> seen;
      for (std::int64_t part = 0; part < parts; ++part) {
        const auto share = tile_share(11, 11, 2, symmetric, part, parts);
        for (std::size_t k = 0; k < share.size(); ++k) {
          CHECK(share[k] == plan[static_cast<std::size_t>(part) + k * static_cast<std::size_t>(parts)]);
          ++seen[share[k]];
        }
      }
      CHECK(seen.size() == plan.size());
      for (const auto& [ij, n] : seen) CHECK(n == 1);
    }
  }
  CHECK_THROWS_WITH(tile_share(4, 4, 2, true, 3, 3), Contains("0 <= part < parts"));
  CHECK_THROWS_WITH(tile_share(4, 4, 2, true, 0, 0), Contains("0 <= part < parts"));
}

TEST_CASE("parts side by side write the bytes of one process, each tile computed once", "[theory][ntk][split]") {
  test::TempDir dir;
  auto net = small_net();
  Rng rng(5);
  const Tensor x = rng.normal({13, 4}), x2 = rng.normal({8, 4});
  const ThreadCount threads(1);
  for (const bool symmetric : {true, false}) {
    const Tensor& other = symmetric ? x : x2;
    const std::string single = dir.file(symmetric ? "single_s.npy" : "single_c.npy");
    const TiledNtkRun whole = tiled_ntk_to_npy(*net, x, other, single, {.tile = 3});
    REQUIRE(whole.complete);
    const std::int64_t t = 5;  // tiles along 13 rows
    CHECK(whole.tiles_total == (symmetric ? t * (t + 1) / 2 : t * 3));
    for (const std::int64_t parts : {2, 3, 7}) {
      INFO("parts " << parts << (symmetric ? ", symmetric" : ""));
      const std::string path = dir.file("split" + std::to_string(parts) + (symmetric ? "s" : "c") + ".npy");
      const auto runs =
          run_side_by_side(*net, x, other, path, 3, parts, [](std::int64_t, std::int64_t) { return true; });
      CHECK(runs[0].complete);
      for (std::size_t p = 1; p < runs.size(); ++p) CHECK_FALSE(runs[p].complete);
      for (const auto& r : runs) CHECK(r.share_done);
      CHECK(computed(runs) == whole.tiles_total);
      CHECK(read_file(path) == read_file(single));
      CHECK(std::filesystem::exists(path + ".tiles"));
      CHECK_FALSE(std::filesystem::exists(path + ".tiles.1"));  // folded into the main log
    }
  }
  // K == K^T exactly: the mirrored tiles are written by the part that computed them.
  const Tensor k = load_npy(dir.file("split3s.npy"));
  const auto v = to_vector(k);
  for (std::int64_t i = 0; i < 13; ++i)
    for (std::int64_t j = 0; j < 13; ++j) REQUIRE(std::memcmp(&v[i * 13 + j], &v[j * 13 + i], sizeof(double)) == 0);
}

TEST_CASE("parts run one after another leave part logs that the next run folds in", "[theory][ntk][split]") {
  test::TempDir dir;
  auto net = small_net();
  Rng rng(6);
  const Tensor x = rng.normal({10, 4});
  const ThreadCount threads(1);
  const TiledNtkRun whole = tiled_ntk_to_npy(*net, x, x, dir.file("single.npy"), {.tile = 3});  // 10 tiles
  const std::string path = dir.file("k.npy");

  // Part 1 cannot start before part 0 made the file.
  CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, path, {.tile = 3, .part = 1, .parts = 3}),
                    Contains("part 0 of the run creates the kernel file"));
  std::int64_t sum = 0;
  for (std::int64_t part = 0; part < 3; ++part) {
    const TiledNtkRun r = tiled_ntk_to_npy(*net, x, x, path, {.tile = 3, .part = part, .parts = 3});
    CHECK(r.share_done);
    CHECK_FALSE(r.complete);  // part 0 ran first: the others' tiles were not there when it checked
    CHECK(r.tiles_computed == static_cast<std::int64_t>(tile_share(10, 10, 3, true, part, 3).size()));
    sum += r.tiles_computed;
  }
  CHECK(sum == whole.tiles_total);
  CHECK(std::filesystem::exists(path + ".tiles.1"));
  CHECK(std::filesystem::exists(path + ".tiles.2"));
  const std::string part_log = read_file(path + ".tiles.2");

  // One process finds every tile done (its own log and the parts' logs), checks and completes.
  const TiledNtkRun last = tiled_ntk_to_npy(*net, x, x, path, {.tile = 3});
  CHECK(last.complete);
  CHECK(last.tiles_computed == 0);
  CHECK(last.tiles_reused == whole.tiles_total);
  CHECK(read_file(path) == read_file(dir.file("single.npy")));
  CHECK_FALSE(std::filesystem::exists(path + ".tiles.1"));
  CHECK_FALSE(std::filesystem::exists(path + ".tiles.2"));

  // A part log whose file and main log are gone names tiles of no file: a new run ignores it.
  std::filesystem::remove(path);
  std::filesystem::remove(path + ".tiles");
  write_file_atomic(path + ".tiles.2", part_log);
  const TiledNtkRun fresh = tiled_ntk_to_npy(*net, x, x, path, {.tile = 3});
  CHECK(fresh.complete);
  CHECK(fresh.tiles_computed == whole.tiles_total);
  CHECK_FALSE(std::filesystem::exists(path + ".tiles.2"));
}

TEST_CASE("a stopped split run resumes with only the missing tiles, on any number of parts", "[theory][ntk][split]") {
  test::TempDir dir;
  auto net = small_net();
  Rng rng(8);
  const Tensor x = rng.normal({16, 4});
  const ThreadCount threads(1);
  const TiledNtkRun whole = tiled_ntk_to_npy(*net, x, x, dir.file("single.npy"), {.tile = 3});  // 21 tiles
  const std::string path = dir.file("k.npy");

  // Three parts; part 1 stops after 2 of its 7 tiles, part 2 after 1: the file is incomplete.
  const auto first = run_side_by_side(*net, x, x, path, 3, 3,
                                      [](std::int64_t p, std::int64_t done) { return p == 0 || done < 3 - p; });
  CHECK_FALSE(first[0].complete);
  CHECK(first[0].share_done);
  CHECK_FALSE(first[1].share_done);
  CHECK(first[1].tiles_computed == 2);
  CHECK(first[2].tiles_computed == 1);
  std::int64_t nan_count = 0;
  for (double v : to_vector(load_npy(path))) nan_count += std::isnan(v) ? 1 : 0;
  CHECK(nan_count > 0);

  // Resumed on two parts: only the 21 - (7 + 2 + 1) missing tiles are computed.
  const auto second = run_side_by_side(*net, x, x, path, 3, 2, [](std::int64_t, std::int64_t) { return true; });
  CHECK(second[0].complete);
  CHECK(second[0].tiles_reused == 10);
  CHECK(computed(second) == whole.tiles_total - 10);
  CHECK(read_file(path) == read_file(dir.file("single.npy")));
  CHECK(read_file(path + ".tiles").find("complete") != std::string::npos);
}

TEST_CASE("an in-memory kernel and bad shares are refused", "[theory][ntk][split]") {
  auto net = small_net();
  const Tensor x = ones({4, 4});
  CHECK_THROWS_WITH(tiled_ntk(*net, x, x, {.tile = 2, .part = 0, .parts = 2}), Contains("computed whole"));
  test::TempDir dir;
  CHECK_THROWS_WITH(tiled_ntk_to_npy(*net, x, x, dir.file("k.npy"), {.tile = 2, .part = 2, .parts = 2}),
                    Contains("need 0 <= part < parts, got part 2 of 2"));
  CHECK_FALSE(std::filesystem::exists(dir.file("k.npy")));
}
