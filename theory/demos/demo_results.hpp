#pragma once
// What a demo leaves in its --out folder: CSV files and verdict.json, the machine-readable record
// (status, every check with measured, predicted and tolerance, the files written, and where and
// how the run happened) from which scripts/report.py draws the figures and out/index.html.
// Note [Verdict lifecycle]: verdict.json says RUNNING from the moment the folder is prepared, so a
// run that is killed or crashes never leaves an earlier run's verdict behind; it becomes PASS or
// FAIL (every check ran), INCOMPLETE (stopped early on request) or ERROR (an exception) at the end.
// The report draws only the files the verdict lists, so old CSV files are never mixed in.

#include <chrono>
#include <limits>
#include <iostream>
#include <string>
#include <vector>

#include "theory/demos/demo_args.hpp"

namespace theta::demos {

/// One claim a demo checks: a measurement against what theory predicts, within a tolerance.
struct Check {
  std::string id = {};         // short key the report uses to find the check (e.g. "depth2_saxe")
  std::string claim = {};      // the statement checked, e.g. "depth-2 modes follow Saxe's closed form"
  std::string measured = {};   // e.g. "max |u - u_saxe| / s = 1.2e-3"
  std::string predicted = {};  // e.g. "0 (Euler's O(eta) lag aside)"
  std::string tolerance = {};  // e.g. "<= 2e-3"
  bool pass = false;
  double limit = std::numeric_limits<double>::quiet_NaN();  // the tolerance as a number, for figures
};

/// Writes columns of equal length as CSV with a header line (fields quoted as RFC 4180 asks,
/// values with 17 significant digits, so they read back exactly). Written atomically; a failed
/// write throws IoError naming `op` (the demo) and the path.
void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& columns, const char* op = "write_csv");

/// `text` as a JSON string literal, quotes included.
std::string json_string(const std::string& text);

/// The record of one demo run. Construct it after the output folder is prepared.
class Results {
 public:
  /// Writes <out>/verdict.json with status RUNNING and the run's metadata. The check lines and
  /// the final line go to `log` (standard output for a demo; a string stream in tests).
  Results(const DemoInfo& info, const DemoArgs& args, std::ostream& log = std::cout);

  /// Writes <out>/<file> (see write_csv) and lists it in the verdict.
  void write_csv(const std::string& file, const std::vector<std::string>& header,
                 const std::vector<std::vector<double>>& columns);

  /// Records `check`, prints it as one line ("  ok   claim: measured ...") and returns check.pass.
  bool check(Check check);

  /// True when every check so far passed.
  bool ok() const;

  /// Ends a complete run: PASS when there is at least one check and all passed, else FAIL. Writes
  /// the verdict, prints `<name>: PASS|FAIL <summary>` as the final line, returns kExitPass or
  /// kExitFail.
  int finish(const std::string& summary);

  /// Ends a run stopped early on request: status INCOMPLETE, final line `<name>: INCOMPLETE
  /// <summary>`, returns kExitIncomplete. Checks recorded so far are kept but decide nothing.
  int finish_incomplete(const std::string& summary);

  /// Marks the run as failed by an exception (status ERROR, `message` as the summary). Never throws.
  void record_error(const std::string& message) noexcept;

 private:
  void write(const std::string& status, const std::string& summary, bool finished);

  DemoInfo info_;
  DemoArgs args_;
  std::string started_ = {};  // UTC, ISO 8601
  std::chrono::steady_clock::time_point start_;
  std::string metadata_ = {};  // the JSON members describing machine and build, comma-terminated
  std::vector<std::string> files_;
  std::vector<Check> checks_;
  std::ostream* log_;
};

}  // namespace theta::demos
