// The demos' CSV and SVG writers: exact CSV text (with RFC 4180 quoting), SVG structure, escaping,
// log axes, ranges far from zero, and argument errors.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/file_io.hpp"
#include "tests/support/temp_dir.hpp"
#include "theory/plot.hpp"

using namespace theta;
using namespace theta::theory;
using theta::test::TempDir;

namespace {
std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("write_csv writes a header and full-precision rows, quoting where needed", "[theory][plot]") {
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

TEST_CASE("write_svg_plot draws each series, escapes text and skips points a log axis cannot show",
          "[theory][plot]") {
  TempDir dir;
  const std::string path = dir.file("p.svg");
  const std::vector<Series> series = {
      {.label = "loss <train> & 'test'", .x = {1, 10, 100}, .y = {1.0, 0.1, 0.01}},
      {.label = "prediction", .x = {1, 100}, .y = {1.0, 0.01}, .dashed = true},
      {.label = "runs", .x = {0.0, 5, 50}, .y = {0.5, 0.2, -1.0}, .markers = true, .color = "red"},
  };
  write_svg_plot(path, series, {.title = "a < b", .x_label = "step", .y_label = "loss", .log_x = true, .log_y = true});
  const std::string svg = read_file(path);
  CHECK(svg.rfind("<svg xmlns='http://www.w3.org/2000/svg'", 0) == 0);
  CHECK(svg.size() > 200);
  CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  CHECK(count(svg, "<polyline") == 2);
  CHECK(count(svg, "stroke-dasharray") == 2);  // the dashed series and its legend entry
  // Markers: x = 0 and y = -1 have no logarithm, so only (5, 0.2) is drawn.
  CHECK(count(svg, "<circle") == 1);
  CHECK(count(svg, "fill='red'") == 1);
  CHECK(svg.find("loss &lt;train&gt; &amp; &apos;test&apos;") != std::string::npos);
  CHECK(svg.find("a &lt; b") != std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);

  CHECK_THROWS_WITH(write_svg_plot(path, {{.label = "bad", .x = {1, 2}, .y = {1}}}, {}),
                    Catch::Contains("'bad'") && Catch::Contains("2 x values and 1 y values"));
}

TEST_CASE("write_svg_plot handles flat ranges, ranges far from zero and empty plots", "[theory][plot]") {
  TempDir dir;
  const std::string path = dir.file("p.svg");
  // 1e17 + k: a tick step of 5 does not move 1e17 in float64 (its spacing is 16); the loop must
  // still end.
  write_svg_plot(path, {{.label = "far", .x = {1e17, 1e17 + 16}, .y = {5, 5}}}, {});
  std::string svg = read_file(path);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(svg.find("inf") == std::string::npos);
  CHECK(count(svg, "<polyline") == 1);
  write_svg_plot(path, {{.label = "one point", .x = {3}, .y = {3}}}, {});
  svg = read_file(path);
  CHECK(svg.find("nan") == std::string::npos);
  write_svg_plot(path, {}, {.title = "empty"});
  CHECK(read_file(path).find("empty") != std::string::npos);
}
