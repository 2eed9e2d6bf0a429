// theta_ntk: the NTK of an MLP trained elsewhere, written to a .npy file.
//
//   theta_ntk --model model.json --weights W --x x.npy [--x2 x2.npy] --out K.npy
//             [--kernel empirical|ntk|nngp] [--form trace|full|output --output O] [--tile N] [--threads N]
//             [--max-tiles N] [--quiet]
//   mpirun -np R theta_ntk ...   (built with MPI: the tiles split over R ranks, one output file)
//
// model.json describes the MLP (theory/model_spec.hpp), W holds its weights as a PyTorch
// state_dict (.npz, or a directory of .npy files as ntk_demo --dump writes), x.npy the inputs
// [n, d]. The empirical kernel is computed tile by tile straight into the output file and a
// stopped run resumes where it stopped (theory/ntk_tiled.hpp); the analytic infinite-width NTK or
// NNGP (relu and erf MLPs) is computed in memory. Everything is checked before anything is
// written; bad arguments or inputs end in one line on stderr and exit status 2.
//
// Under mpirun, rank r of R computes its share of the tiles (part r of R, Note [Split runs] in
// theory/ntk_tiled.cpp) into the one output file, rank 0 creates the file, owns its log and
// checks the finished file; the bytes are those of a single-process run. An error on any rank
// is printed and ends every rank (MPI_Abort) with the error's exit status.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>

#include "tensor/blas_runtime.hpp"
#include "tensor/npy.hpp"
#include "tensor/parallel.hpp"
#include "theory/model_spec.hpp"
#include "theory/ntk.hpp"
#include "theory/ntk_tiled.hpp"
#include "theory/tools/world.hpp"

using namespace theta;

namespace {

constexpr const char* kUsage =
    "usage: theta_ntk --model model.json --weights W --x x.npy [--x2 x2.npy] --out K.npy\n"
    "                 [--kernel empirical|ntk|nngp] [--form trace|full|output --output O] [--tile N] [--threads N]\n"
    "                 [--max-tiles N] [--quiet]\n"
    "       mpirun -np R theta_ntk ...   (the empirical kernel's tiles split over R ranks, one output)\n"
    "  --model     the MLP: {\"widths\": [...], \"activation\": ..., \"parameterisation\": ..., \"sigma_w\": ...,\n"
    "              \"sigma_b\": ..., \"bias\": ...}\n"
    "  --weights   its PyTorch state_dict: an .npz, or a directory of <name>.npy files\n"
    "  --x, --x2   inputs [n1, d] and [n2, d] (.npy); without --x2 the kernel of x with itself\n"
    "  --out       the kernel (.npy, float64): [n1, n2] for --form trace (default), [n1, n2, O, O] for full,\n"
    "              [n1, n2] of output O alone (counted from 0) for --form output --output O\n"
    "  --kernel    empirical (default, tiled, restartable), or the analytic infinite-width ntk or nngp\n"
    "  --tile      rows per tile of the empirical kernel (default 256)\n"
    "  --threads   threads per process (default: the CPUs this process may use)\n"
    "  --max-tiles stop after N tiles in each process (exit 3); the same command again resumes\n"
    "  --quiet     no progress on stderr\n";

// Thrown for bad arguments: exit status 2 with the message.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Args {
  std::map<std::string, std::string> values;
  bool quiet = false;

  const std::string& required(const std::string& flag) const {
    const auto it = values.find(flag);
    if (it == values.end()) throw UsageError("missing " + flag);
    return it->second;
  }
  std::string optional(const std::string& flag, const std::string& fallback) const {
    const auto it = values.find(flag);
    return it == values.end() ? fallback : it->second;
  }
};

Args parse_args(int argc, char** argv) {
  static const char* const kValued[] = {"--model",  "--weights", "--x",    "--x2",      "--out",
                                        "--kernel", "--form",    "--tile", "--threads", "--max-tiles", "--output"};
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--quiet") {
      args.quiet = true;
      continue;
    }
    bool valued = false;
    for (const char* v : kValued) valued |= flag == v;
    if (!valued) throw UsageError("unknown argument '" + flag + "'");
    if (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0) throw UsageError(flag + " needs a value");
    if (!args.values.emplace(flag, argv[++i]).second) throw UsageError(flag + " given twice");
  }
  return args;
}

// The integer `text` of `flag`, at least `least`.
std::int64_t integer_at_least(const std::string& flag, const std::string& text, std::int64_t least, const char* kind) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || v < least) throw UsageError(flag + " must be a " + kind + " integer, got '" + text + "'");
  return v;
}

std::int64_t positive_integer(const std::string& flag, const std::string& text) {
  return integer_at_least(flag, text, 1, "positive");
}

std::int64_t non_negative_integer(const std::string& flag, const std::string& text) {
  return integer_at_least(flag, text, 0, "non-negative");
}

// Tiles done, rate and time left: one line rewritten in place on a terminal, otherwise a plain
// line every 10% of the tiles.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), live_(::isatty(2) == 1), start_(Clock::now()) {}

  bool operator()(std::int64_t done, std::int64_t total) {
    if (quiet_) return true;
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = done / std::max(seconds, 1e-9);
    const bool milestone = done == total || done * 10 / total != (done - 1) * 10 / total;
    if (!live_ && !milestone) return true;
    std::fprintf(stderr, "%stiles %lld/%lld  %.2f tiles/s  %.0f s left%s", live_ ? "\r" : "",
                 static_cast<long long>(done), static_cast<long long>(total), rate, (total - done) / rate,
                 live_ && done < total ? "   " : "\n");
    return true;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool quiet_, live_;
  Clock::time_point start_;
};

int run(int argc, char** argv, const tools::World& world) {
  const Args args = parse_args(argc, argv);
  const std::string kernel = args.optional("--kernel", "empirical");
  const std::string form = args.optional("--form", "trace");
  if (kernel != "empirical" && kernel != "ntk" && kernel != "nngp")
    throw UsageError("--kernel must be empirical, ntk or nngp, got '" + kernel + "'");
  if (form != "trace" && form != "full" && form != "output")
    throw UsageError("--form must be trace, full or output, got '" + form + "'");
  if ((form == "output") != (args.values.count("--output") == 1))
    throw UsageError("--form output and --output O go together");
  const std::int64_t output = form == "output" ? non_negative_integer("--output", args.values.at("--output")) : 0;
  if (kernel != "empirical" && form != "trace")
    throw UsageError("--kernel " + kernel + " is one kernel for all outputs: use --form trace");
  const std::int64_t tile = positive_integer("--tile", args.optional("--tile", "256"));
  const std::int64_t max_tiles =
      args.values.count("--max-tiles") ? positive_integer("--max-tiles", args.values.at("--max-tiles")) : 0;
  if (args.values.count("--threads"))
    set_num_threads(static_cast<int>(positive_integer("--threads", args.values.at("--threads"))));

  // Everything is read and checked before the output is touched.
  const theory::MlpSpec spec = theory::load_mlp_spec(args.required("--model"));
  const std::string weights_path = args.required("--weights");
  auto net = theory::mlp_from_state_dict(spec, theory::load_named_tensors(weights_path), weights_path);
  const auto load_inputs = [&](const std::string& flag) {
    const std::string& path = args.required(flag);
    const Tensor x = load_npy(path);
    THETA_CHECK(x.dim() == 2 && x.size(0) > 0 && x.size(1) == spec.widths.front(), ShapeError, path, " is ",
                shape_str(x.shape()), " but the model takes [n, ", spec.widths.front(),
                "] (widths[0] = ", spec.widths.front(), ")");
    return x.to(DType::f64);
  };
  const Tensor x1 = load_inputs("--x");
  const Tensor x2 = args.values.count("--x2") ? load_inputs("--x2") : x1;
  const std::string out = args.required("--out");

  const bool root = world.rank() == 0;
  if (kernel != "empirical") {
    if (!root) return 0;  // one small kernel in memory: rank 0 alone
    const auto k = theory::analytic_ntk(x1, x2, static_cast<std::int64_t>(spec.widths.size()) - 1, spec.activation,
                                        spec.sigma_w, spec.sigma_b);
    save_npy(out, kernel == "ntk" ? k.ntk : k.nngp);
    if (!args.quiet) std::fprintf(stderr, "theta_ntk: wrote %s\n", out.c_str());
    return 0;
  }
  Progress progress(args.quiet || !root);  // rank 0's share stands for the run's progress
  const theory::TiledNtkRun r = theory::tiled_ntk_to_npy(
      *net, x1, x2, out,
      {.tile = tile,
       .form = form == "trace"  ? theory::NtkForm::trace
               : form == "full" ? theory::NtkForm::full
                                : theory::NtkForm::output,
       .output = output,
       .on_tile = [&](std::int64_t done,
                      std::int64_t total) { return progress(done, total) && (max_tiles == 0 || done < max_tiles); },
       .part = world.rank(),
       .parts = world.size(),
       .barrier = [&] { world.barrier(); }});
  const std::int64_t computed = world.sum_on_root(r.tiles_computed);
  if (!root) return r.share_done ? 0 : 3;
  if (!args.quiet)
    std::fprintf(stderr,
                 "theta_ntk: %s %s (%lld of %lld tiles computed by %d process%s, %lld reused from an earlier run)\n",
                 r.complete ? "wrote" : "stopped, resumable:", out.c_str(), static_cast<long long>(computed),
                 static_cast<long long>(r.tiles_total), world.size(), world.size() == 1 ? "" : "es",
                 static_cast<long long>(r.tiles_reused));
  return r.complete ? 0 : 3;
}

// Prints `message` on stderr (naming the rank when there are several) and ends the run: every
// rank with `status` when there are several, else returns `status`.
int fail(const tools::World& world, int status, const std::string& message) {
  if (world.size() > 1)
    std::fprintf(stderr, "theta_ntk: rank %d of %d: %s", world.rank(), world.size(), message.c_str());
  else
    std::fprintf(stderr, "theta_ntk: %s", message.c_str());
  if (world.size() > 1) world.abort(status);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_core(argc, argv);
  const tools::World world(argc, argv);
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help") {
      if (world.rank() == 0) std::fputs(kUsage, stdout);
      return 0;
    }
  try {
    return run(argc, argv, world);
  } catch (const UsageError& e) {
    return fail(world, 2, std::string(e.what()) + "\n" + kUsage);
  } catch (const std::invalid_argument& e) {  // ShapeError, FormatError, DTypeError, bad values
    return fail(world, 2, std::string(e.what()) + "\n");
  } catch (const std::system_error& e) {  // files that cannot be read or written
    return fail(world, 2, std::string(e.what()) + "\n");
  } catch (const std::exception& e) {
    return fail(world, 3, std::string("error: ") + e.what() + "\n");
  }
}
