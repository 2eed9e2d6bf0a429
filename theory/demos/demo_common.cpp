#include "theory/demos/demo_common.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/ops.hpp"

namespace theta::demos {

// Note [Demo exit statuses]
// Whatever a demo throws ends here, never in std::terminate (an abort and a core dump for what is
// usually a wrong path or a damaged file). theta's user errors all derive from
// std::invalid_argument; the rest (std::system_error from a failed write, AnomalyError,
// NonFiniteLossError, InternalError, std::bad_alloc) are failures of the run itself. Once the
// output folder holds a verdict, the error is recorded there too (status ERROR).
int run_demo(int argc, char** argv, const DemoInfo& info, const DemoBody& body) {
  std::unique_ptr<Results> results;
  auto report = [&](const std::string& message, int status) {
    std::cout.flush();
    std::cerr << info.name << ": error: " << message << std::endl;
    if (results) results->record_error(message);
    return status;
  };
  try {
    ensure_blas_core(argc, argv);
    const DemoArgs args = parse_demo_args(std::vector<std::string>(argv, argv + argc), info);
    if (args.help) {
      std::cout << usage_text(info);
      return kExitPass;
    }
    prepare_output_dirs(args);
    results = std::make_unique<Results>(info, args);
    return body(args, *results);
  } catch (const std::invalid_argument& e) {
    return report(e.what(), kExitBadInput);
  } catch (const std::exception& e) {
    return report(e.what(), kExitError);
  } catch (...) {
    return report("an exception that is not a std::exception", kExitError);
  }
}

void progress(const std::string& message) { std::cerr << "  .. " << message << std::endl; }

std::string fmt(double v, int precision) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*g", precision, v);
  return buffer;
}

double frobenius(const Tensor& t) { return norm(t).item(); }

double log_log_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double count = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < x.size(); ++i) mx += std::log(x[i]) / count, my += std::log(y[i]) / count;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxy / sxx;
}

}  // namespace theta::demos
