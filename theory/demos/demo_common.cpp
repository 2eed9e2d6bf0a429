#include "theory/demos/demo_common.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <system_error>

#include "tensor/blas_runtime.hpp"
#include "tensor/npy.hpp"

namespace theta::demos {

namespace {
[[noreturn]] void usage(const std::string& name, const std::string& description, int code) {
  (code ? std::cerr : std::cout) << name << ": " << description << "\n\nusage: " << name
                                 << " [--out DIR] [--dump DIR] [--quick] [--resume] [--stop-after N] [--seed N]\n"
                                 << "  --out DIR   where CSV, SVG and verdict.txt go (default out/" << name << ")\n"
                                 << "  --dump DIR  also write raw arrays as .npy (demos that support it)\n"
                                 << "  --quick     smaller sizes, for smoke runs\n"
                                 << "  --resume    continue from the checkpoint in --out (training demos)\n"
                                 << "  --stop-after N  stop after N epochs as if interrupted (training demos)\n"
                                 << "  --seed N    base random seed (default 0)\n";
  std::exit(code);
}

// Creates the folder given to `flag` and checks that a file can be created in it, so that an
// unusable folder is reported before the run rather than when its results are written.
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
}  // namespace

DemoArgs parse_demo_args(int argc, char** argv, const std::string& name, const std::string& description) {
  ensure_blas_core(argc, argv);
  DemoArgs args;
  args.out = "out/" + name;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << name << ": " << a << " needs a value\n";
        usage(name, description, 2);
      }
      return argv[++i];
    };
    if (a == "--out") args.out = value();
    else if (a == "--dump") args.dump = value();
    else if (a == "--quick") args.quick = true;
    else if (a == "--resume") args.resume = true;
    else if (a == "--stop-after") {
      const std::string v = value();
      char* end = nullptr;
      args.stop_after = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || args.stop_after < 0) {
        std::cerr << name << ": --stop-after needs a non-negative integer, got '" << v << "'\n";
        usage(name, description, 2);
      }
    } else if (a == "--seed") {
      const std::string v = value();
      char* end = nullptr;
      args.seed = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end) {
        std::cerr << name << ": --seed needs a non-negative integer, got '" << v << "'\n";
        usage(name, description, 2);
      }
    } else if (a == "--help" || a == "-h") usage(name, description, 0);
    else {
      std::cerr << name << ": unknown argument '" << a << "'\n";
      usage(name, description, 2);
    }
  }
  prepare_output_dir("--out", args.out);
  if (!args.dump.empty()) prepare_output_dir("--dump", args.dump);
  return args;
}

// Note [Demo exit statuses]
// Whatever a demo throws ends here, never in std::terminate (an abort and a core dump for what is
// usually a wrong path or a damaged file). theta's user errors all derive from
// std::invalid_argument; the rest (std::system_error from a failed write, AnomalyError,
// NonFiniteLossError, InternalError, std::bad_alloc) are failures of the run itself.
int run_demo(int argc, char** argv, const std::string& name, const std::string& description,
             const std::function<int(const DemoArgs&)>& body) {
  try {
    return body(parse_demo_args(argc, argv, name, description));
  } catch (const std::invalid_argument& e) {
    std::cout.flush();
    std::cerr << name << ": error: " << e.what() << std::endl;
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << name << ": error: " << e.what() << std::endl;
    return kExitError;
  } catch (...) {
    std::cout.flush();
    std::cerr << name << ": error: an exception that is not a std::exception" << std::endl;
    return kExitError;
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
  if (!S_ISDIR(st.st_mode))
    throw std::system_error(ENOTDIR, std::generic_category(), "'" + path + "' exists");
}

void progress(const std::string& message) { std::cerr << "  .. " << message << std::endl; }

int finish_demo(const DemoArgs& args, const std::string& name, bool ok, const std::string& summary,
                const std::vector<std::string>& figures) {
  std::ostringstream verdict;
  verdict << name << '\n' << (ok ? "PASS" : "FAIL") << '\n' << summary << '\n';
  for (const auto& f : figures) verdict << f << '\n';
  write_file_atomic(args.out + "/verdict.txt", verdict.str());
  std::cout << name << ": " << (ok ? "PASS" : "FAIL") << " " << summary << std::endl;
  return ok ? kExitPass : kExitFail;
}

}  // namespace theta::demos
