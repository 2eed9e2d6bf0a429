#pragma once
// Shared command line, output folder, error and verdict handling for the demo programs.
// Every demo: `<demo> --out DIR` writes CSV + SVG into DIR, writes DIR/verdict.txt, prints a
// final summary line with its error figure, and exits with one of the statuses below.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace theta::demos {

/// Exit statuses of every demo.
inline constexpr int kExitPass = 0;      // the measurement agrees with the theory
inline constexpr int kExitFail = 1;      // it does not (the verdict says by how much)
inline constexpr int kExitBadInput = 2;  // bad arguments or input: a usage error, a malformed
                                         // checkpoint or data file, an unusable --out, ...
inline constexpr int kExitError = 3;     // any other error (an I/O failure while running, a bug)

/// A bad command line (an unknown option, an --out that cannot hold files, --resume without a
/// checkpoint): reported by run_demo with kExitBadInput.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct DemoArgs {
  std::string out;         // output folder (created if missing)
  std::string dump;        // optional folder for raw arrays (--dump)
  bool quick = false;      // smaller problem sizes (tests, smoke runs)
  bool resume = false;     // continue from a checkpoint in `out` (demos that train)
  std::int64_t stop_after = -1;  // stop after this many epochs, as if interrupted (training demos)
  std::uint64_t seed = 0;  // base seed
};

/// Parses --out DIR, --dump DIR, --quick, --resume, --stop-after N, --seed N, --help; exits with
/// usage on error. Creates the --out and --dump folders and checks that files can be created in
/// them (UsageError otherwise), so a bad folder fails at once, not after the run.
/// Also fixes a misdetected OpenBLAS core by re-executing (see tensor/blas_runtime.hpp).
DemoArgs parse_demo_args(int argc, char** argv, const std::string& name, const std::string& description);

/// A demo's whole main(): parses the command line, runs body(args) and returns its exit status.
/// An exception that escapes is printed as `<name>: error: <message>` on stderr and becomes
/// kExitBadInput for user errors (std::invalid_argument: theta's ShapeError, DTypeError,
/// IndexError, FormatError, and UsageError) or kExitError for anything else; never an abort.
int run_demo(int argc, char** argv, const std::string& name, const std::string& description,
             const std::function<int(const DemoArgs&)>& body);

/// Creates `path` and its parents (like mkdir -p); throws std::system_error naming the path on
/// failure, including when `path` exists but is not a directory.
void make_dirs(const std::string& path);

/// One progress line on stderr (the demos' long phases report as they go).
void progress(const std::string& message);

/// Writes out/verdict.txt, prints `summary` as the final line and returns kExitPass or kExitFail.
/// figures: SVG file names inside `out` shown on the index page.
int finish_demo(const DemoArgs& args, const std::string& name, bool ok, const std::string& summary,
                const std::vector<std::string>& figures);

}  // namespace theta::demos
