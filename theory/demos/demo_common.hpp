#pragma once
// Shared main() of the demo programs. Every demo: `<demo> --out DIR` writes CSV files and
// verdict.json into DIR (theory/demos/demo_results.hpp), prints one line per check and a final
// summary line, and exits with one of the statuses in theory/demos/demo_args.hpp. The figures and
// out/index.html are drawn from those files by scripts/report.py.

#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.hpp"

#include "theory/demos/demo_args.hpp"
#include "theory/demos/demo_results.hpp"

namespace theta::demos {

/// A demo's body: runs the experiment, records checks and files in `results`, and returns
/// results.finish(...) (or finish_incomplete).
using DemoBody = std::function<int(const DemoArgs& args, Results& results)>;

/// A demo's whole main(): fixes a misdetected OpenBLAS core (tensor/blas_runtime.hpp), parses the
/// command line (--help prints usage_text and returns 0), prepares the output folders, runs
/// body and returns its exit status. Anything thrown is printed as one line
/// `<name>: error: <message>` on stderr and becomes kExitBadInput for user errors
/// (std::invalid_argument: theta's ShapeError, DTypeError, IndexError, FormatError, and
/// UsageError) or kExitError for anything else; never an abort.
int run_demo(int argc, char** argv, const DemoInfo& info, const DemoBody& body);

/// One progress line on stderr (the demos' long phases report as they go).
void progress(const std::string& message);

/// `v` with `precision` significant digits (printf's %g), for summaries and check lines.
std::string fmt(double v, int precision = 3);

/// The Frobenius norm of t (of every element).
double frobenius(const Tensor& t);

/// The least-squares slope of log(y) against log(x) (x, y > 0, of equal length >= 2).
double log_log_slope(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace theta::demos
