// What a demo leaves behind: CSV text, and verdict.json through its lifecycle (RUNNING, then
// PASS, FAIL, INCOMPLETE or ERROR) with its checks, files and metadata.

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "tensor/file_io.hpp"
#include "tests/support/temp_dir.hpp"
#include "theory/demos/demo_results.hpp"

using namespace theta;
using namespace theta::demos;
using theta::test::TempDir;

namespace {
bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

DemoArgs args_in(const TempDir& dir) {
  DemoArgs args;
  args.out = dir.file("");
  args.command_line = "demo --out 'x y'";
  return args;
}

const DemoInfo kInfo{.name = "demo", .description = "says \"hi\"", .flags = 0};
}  // namespace

TEST_CASE("write_csv writes a header and full-precision rows, quoting where needed", "[demos]") {
  TempDir dir;
  const std::string path = dir.file("t.csv");
  write_csv(path, {"step", "loss, mean", "say \"hi\""}, {{0, 1, 2}, {0.1, 1.0 / 3.0, -2.5e-300}, {1, 2, 3}});
  CHECK(read_file(path) ==
        "step,\"loss, mean\",\"say \"\"hi\"\"\"\n"
        "0,0.10000000000000001,1\n"
        "1,0.33333333333333331,2\n"
        "2,-2.5e-300,3\n");
  write_csv(path, {}, {});
  CHECK(read_file(path) == "\n");
  CHECK_THROWS_AS(write_csv(path, {"a", "b"}, {{1.0}}), std::invalid_argument);
  CHECK_THROWS_AS(write_csv(path, {"a", "b"}, {{1.0}, {1.0, 2.0}}), std::invalid_argument);
}

TEST_CASE("json_string escapes quotes, backslashes and control characters", "[demos]") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("a \"b\" \\ c") == "\"a \\\"b\\\" \\\\ c\"");
  CHECK(json_string("line\nnext\ttab\x01") == "\"line\\nnext\\ttab\\u0001\"");
}

TEST_CASE("Results writes a RUNNING verdict at once and the final one at the end", "[demos]") {
  TempDir dir;
  std::ostringstream log;
  Results results(kInfo, args_in(dir), log);
  std::string json = read_file(dir.file("verdict.json"));
  CHECK(contains(json, "\"status\": \"RUNNING\""));
  CHECK(contains(json, "\"finished\": null"));
  CHECK(contains(json, "\"description\": \"says \\\"hi\\\"\""));
  CHECK(contains(json, "\"command\": \"demo --out 'x y'\""));
  CHECK(contains(json, "\"openblas_core\": \""));
  CHECK(contains(json, "\"simd\": \""));
  CHECK(contains(json, "\"files\": []"));

  results.write_csv("a.csv", {"x"}, {{1.0}});
  CHECK(read_file(dir.file("a.csv")) == "x\n1\n");
  CHECK(results.check({.id = "one", .claim = "c1", .measured = "1", .predicted = "1", .tolerance = "<= 0.1",
                       .pass = true, .limit = 0.1}));
  CHECK(results.ok());
  CHECK(results.finish("all good") == kExitPass);
  CHECK(log.str() == "  ok   c1: 1 (predicted 1, tolerance <= 0.1)\ndemo: PASS all good\n");
  json = read_file(dir.file("verdict.json"));
  CHECK(contains(json, "\"status\": \"PASS\""));
  CHECK(contains(json, "\"summary\": \"all good\""));
  CHECK(contains(json, "\"files\": [\"a.csv\"]"));
  CHECK(contains(json, "{\"id\": \"one\", \"claim\": \"c1\", \"measured\": \"1\", \"predicted\": \"1\", "
                       "\"tolerance\": \"<= 0.1\", \"pass\": true, \"limit\": 0.10000000000000001}"));
  CHECK_FALSE(contains(json, "\"finished\": null"));
}

TEST_CASE("Results fails on a failed check or on no check at all", "[demos]") {
  TempDir dir;
  {
    std::ostringstream log;
    Results results(kInfo, args_in(dir), log);
    CHECK(results.finish("nothing checked") == kExitFail);
    CHECK(contains(read_file(dir.file("verdict.json")), "\"status\": \"FAIL\""));
    CHECK(log.str() == "demo: FAIL nothing checked\n");
  }
  std::ostringstream log;
  Results results(kInfo, args_in(dir), log);
  CHECK(results.check({.id = "good", .pass = true}));
  CHECK_FALSE(results.check({.id = "bad", .claim = "c", .pass = false}));
  CHECK_FALSE(results.ok());
  CHECK(results.finish("one bad") == kExitFail);
  CHECK(contains(log.str(), "  FAIL c: "));
  CHECK(contains(log.str(), "\ndemo: FAIL one bad\n"));
  const std::string json = read_file(dir.file("verdict.json"));
  CHECK(contains(json, "\"status\": \"FAIL\""));
  CHECK(contains(json, "\"pass\": false, \"limit\": null"));
}

TEST_CASE("Results reports an early stop as INCOMPLETE and an exception as ERROR", "[demos]") {
  TempDir dir;
  {
    std::ostringstream log;
    Results results(kInfo, args_in(dir), log);
    CHECK(results.check({.id = "early", .pass = true}));
    CHECK(results.finish_incomplete("stopped after 1 of 30 epochs") == kExitIncomplete);
    CHECK(contains(log.str(), "demo: INCOMPLETE stopped after 1 of 30 epochs\n"));
    const std::string json = read_file(dir.file("verdict.json"));
    CHECK(contains(json, "\"status\": \"INCOMPLETE\""));
    CHECK_FALSE(contains(json, "PASS"));
  }
  std::ostringstream log;
  Results results(kInfo, args_in(dir), log);
  results.record_error("load_digits: no such file");
  const std::string json = read_file(dir.file("verdict.json"));
  CHECK(contains(json, "\"status\": \"ERROR\""));
  CHECK(contains(json, "\"summary\": \"load_digits: no such file\""));
}
