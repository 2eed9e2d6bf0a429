#pragma once
// The demos' command line: which flags a demo takes, parsing them, and the output folders.
// A bad command line is a UsageError (one line, exit status 2), never a usage dump or an abort.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace theta::demos {

/// Exit statuses of every demo.
inline constexpr int kExitPass = 0;        // the measurement agrees with the theory
inline constexpr int kExitFail = 1;        // it does not (the verdict says by how much)
inline constexpr int kExitBadInput = 2;    // bad arguments or input: a usage error, a malformed
                                           // checkpoint or data file, an unusable --out, ...
inline constexpr int kExitError = 3;       // any other error (an I/O failure while running, a bug)
inline constexpr int kExitIncomplete = 4;  // stopped early on request (--stop-after): nothing checked

/// A bad command line (an unknown or inapplicable option, a flag where a value belongs, an --out
/// that cannot hold files, --resume without a checkpoint): reported with kExitBadInput.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Optional flags, or-ed into DemoInfo::flags. Every demo takes --out, --seed and --help.
enum DemoFlag : unsigned {
  kFlagQuick = 1u << 0,      // --quick: smaller problem sizes
  kFlagDump = 1u << 1,       // --dump DIR: raw arrays as .npy
  kFlagResume = 1u << 2,     // --resume: continue from the checkpoint in --out
  kFlagStopAfter = 1u << 3,  // --stop-after N: stop after N epochs, as if interrupted
};

/// What a demo is and which optional flags it takes.
struct DemoInfo {
  std::string name;
  std::string description;
  unsigned flags = 0;
};

struct DemoArgs {
  std::string out;               // output folder (created if missing; default out/<name>)
  std::string dump;              // folder for raw arrays (--dump), empty when not given
  bool quick = false;            // smaller problem sizes (tests, smoke runs)
  bool resume = false;           // continue from a checkpoint in `out`
  std::int64_t stop_after = -1;  // stop after this many epochs, as if interrupted (-1: never)
  std::uint64_t seed = 0;        // base seed
  bool help = false;             // --help: print usage_text and exit 0
  std::string command_line;      // the whole command line, shell-quoted (for the verdict)
};

/// Parses argv[1..] against the flags `info` takes: --out DIR, --seed N, --help, and the optional
/// --quick, --dump DIR, --resume, --stop-after N. Throws UsageError naming the argument for an
/// unknown or inapplicable flag, a missing value, or a value that is itself a flag (`--out
/// --quick`). Touches no file: see prepare_output_dirs.
DemoArgs parse_demo_args(const std::vector<std::string>& argv, const DemoInfo& info);

/// The --help text: the description and exactly the flags `info` takes.
std::string usage_text(const DemoInfo& info);

/// Creates the --out (and --dump) folder and checks that a file can be created in it; throws
/// UsageError naming the flag otherwise, so a bad folder fails at once, not after the run.
void prepare_output_dirs(const DemoArgs& args);

/// Creates `path` and its parents (like mkdir -p); throws std::system_error naming the path on
/// failure, including when `path` exists but is not a directory.
void make_dirs(const std::string& path);

/// `word` quoted for a POSIX shell when it needs quoting.
std::string shell_quote(const std::string& word);

}  // namespace theta::demos
