#pragma once
// Shared command line, output folder and verdict handling for the demo programs.
// Every demo: `<demo> --out DIR` writes CSV + SVG into DIR, writes DIR/verdict.txt, prints a
// final summary line with its error figure, and exits non-zero when its check fails.

#include <cstdint>
#include <string>
#include <vector>

namespace theta::demos {

struct DemoArgs {
  std::string out;         // output folder (created if missing)
  std::string dump;        // optional folder for raw arrays (--dump)
  bool quick = false;      // smaller problem sizes (tests, smoke runs)
  bool resume = false;     // continue from a checkpoint in `out` (demos that train)
  std::int64_t stop_after = -1;  // stop after this many epochs, as if interrupted (training demos)
  std::uint64_t seed = 0;  // base seed
};

/// Parses --out DIR, --dump DIR, --quick, --resume, --stop-after N, --seed N, --help; exits with
/// usage on error.
/// Also fixes a misdetected OpenBLAS core by re-executing (see tensor/blas_runtime.hpp).
DemoArgs parse_demo_args(int argc, char** argv, const std::string& name, const std::string& description);

/// Creates `path` and its parents (like mkdir -p); throws on failure.
void make_dirs(const std::string& path);

/// One progress line on stderr (the demos' long phases report as they go).
void progress(const std::string& message);

/// Writes out/verdict.txt, prints `summary` as the final line and returns the exit code.
/// figures: SVG file names inside `out` shown on the index page.
int finish_demo(const DemoArgs& args, const std::string& name, bool ok, const std::string& summary,
                const std::vector<std::string>& figures);

}  // namespace theta::demos
