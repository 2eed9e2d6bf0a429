#include "theory/demos/demo_args.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <system_error>
#include <vector>

namespace theta::demos {

namespace {

struct FlagDoc {
  unsigned flag;  // 0: every demo takes it
  const char* name;
  const char* value;
  const char* help;
};

constexpr FlagDoc kFlags[] = {
    {0, "--out", "DIR", "where the CSV files and verdict.json go (default out/<demo>)"},
    {kFlagDump, "--dump", "DIR", "also write the raw arrays as .npy into DIR"},
    {kFlagQuick, "--quick", "", "smaller problem sizes, for smoke runs"},
    {kFlagResume, "--resume", "", "continue from the checkpoint in --out"},
    {kFlagStopAfter, "--stop-after", "N", "stop after N epochs as if interrupted (the run is incomplete)"},
    {0, "--seed", "N", "base random seed (default 0)"},
    {0, "--help", "", "print this help and exit"},
};

const FlagDoc* find_flag(const std::string& name) {
  for (const FlagDoc& f : kFlags)
    if (name == f.name) return &f;
  return nullptr;
}

// A decimal integer in [0, max].
std::uint64_t parse_count(const std::string& flag, const std::string& text, std::uint64_t max) {
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const unsigned long long v = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE || v > max)
    throw UsageError(flag + " needs a non-negative integer, got '" + text + "'");
  return v;
}

}  // namespace

DemoArgs parse_demo_args(const std::vector<std::string>& argv, const DemoInfo& info) {
  DemoArgs args;
  args.out = "out/" + info.name;
  for (std::size_t i = 0; i < argv.size(); ++i) args.command_line += (i ? " " : "") + shell_quote(argv[i]);
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    const FlagDoc* flag = find_flag(a == "-h" ? "--help" : a);
    if (!flag) throw UsageError("unknown argument '" + a + "' (see --help)");
    if (flag->flag != 0 && !(info.flags & flag->flag))
      throw UsageError(a + " does not apply to " + info.name + " (see --help)");
    std::string value;
    if (*flag->value) {
      if (i + 1 >= argv.size()) throw UsageError(a + " needs a value " + flag->value);
      value = argv[++i];
      // A flag is never a value: `--out --quick` would otherwise make a folder named --quick.
      if (!value.empty() && value[0] == '-')
        throw UsageError(a + " needs a value " + flag->value + ", got the option '" + value + "'");
      if (value.empty()) throw UsageError(a + " needs a value " + flag->value + ", got an empty string");
    }
    const std::string name = flag->name;
    if (name == "--out") args.out = value;
    else if (name == "--dump") args.dump = value;
    else if (name == "--quick") args.quick = true;
    else if (name == "--resume") args.resume = true;
    else if (name == "--stop-after") args.stop_after = static_cast<std::int64_t>(parse_count(a, value, INT64_MAX));
    else if (name == "--seed") args.seed = parse_count(a, value, UINT64_MAX);
    else args.help = true;
  }
  return args;
}

std::string usage_text(const DemoInfo& info) {
  std::ostringstream out;
  out << info.name << ": " << info.description << "\n\nusage: " << info.name;
  for (const FlagDoc& f : kFlags)
    if (f.flag == 0 || (info.flags & f.flag)) out << " [" << f.name << (*f.value ? " " : "") << f.value << "]";
  out << "\n";
  for (const FlagDoc& f : kFlags) {
    if (f.flag != 0 && !(info.flags & f.flag)) continue;
    std::string left = std::string("  ") + f.name + (*f.value ? " " : "") + f.value;
    left.resize(std::max<std::size_t>(left.size() + 2, 18), ' ');
    out << left << f.help << "\n";
  }
  out << "\nexit status: 0 the check passed, 1 it failed, 2 bad arguments or input, 3 another error";
  if (info.flags & kFlagStopAfter) out << ", 4 stopped early (--stop-after)";
  out << "\n";
  return out.str();
}

namespace {
// Creates the folder given to `flag` and checks that a file can be created in it.
void prepare_output_dir(const std::string& flag, const std::string& dir) {
  try {
    make_dirs(dir);
    std::string probe = dir + "/.theta-probe-XXXXXX";
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create a file in '" + dir + "'");
    ::close(fd);
    ::unlink(probe.c_str());
  } catch (const std::system_error& e) {
    throw UsageError(flag + ": " + e.what());
  }
}

// The folders make_dirs(path) would create, outermost first.
std::vector<std::string> missing_dirs(const std::string& path) {
  std::vector<std::string> missing;
  std::string partial = !path.empty() && path[0] == '/' ? "/" : "";
  std::stringstream parts(path);
  std::string piece;
  while (std::getline(parts, piece, '/')) {
    if (piece.empty()) continue;
    partial += piece + "/";
    struct stat info {};
    if (::stat(partial.c_str(), &info) != 0 && errno == ENOENT) missing.push_back(partial);
  }
  return missing;
}
}  // namespace

void prepare_output_dirs(const DemoArgs& args) {
  const std::vector<std::string> created = missing_dirs(args.out);
  prepare_output_dir("--out", args.out);
  if (args.dump.empty()) return;
  try {
    prepare_output_dir("--dump", args.dump);
  } catch (const UsageError&) {
    // A bad --dump leaves no empty --out behind: remove the folders made for it (rmdir removes
    // only empty ones).
    for (auto dir = created.rbegin(); dir != created.rend(); ++dir) ::rmdir(dir->c_str());
    throw;
  }
}

void make_dirs(const std::string& path) {
  std::string partial;
  std::stringstream parts(path);
  std::string piece;
  if (!path.empty() && path[0] == '/') partial = "/";
  while (std::getline(parts, piece, '/')) {
    if (piece.empty()) continue;
    partial += piece + "/";
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      throw std::system_error(errno, std::generic_category(), "cannot create directory '" + partial + "'");
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw std::system_error(errno, std::generic_category(), "cannot create directory '" + path + "'");
  if (!S_ISDIR(st.st_mode)) throw std::system_error(ENOTDIR, std::generic_category(), "'" + path + "' exists");
}

std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "-_./=:,+@%") == std::string::npos)
    return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace theta::demos
