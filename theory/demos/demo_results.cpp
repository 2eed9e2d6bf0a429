#include "theory/demos/demo_results.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "tensor/blas_runtime.hpp"
#include "tensor/error.hpp"
#include "tensor/file_io.hpp"
#include "tensor/kernels/kernels.hpp"
#include "tensor/parallel.hpp"

namespace theta::demos {

namespace {

// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream out;
  out << std::setprecision(17) << v;
  return out.str();
}

// The CPU's model name from /proc/cpuinfo ("" when unknown).
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "";
}

// The commit of the source tree the demo was built in, as it is when the demo runs (`git describe
// --always --dirty`), or "" when git or the tree is not there (an installed copy, a tarball).
std::string git_commit() {
#ifdef THETA_SOURCE_DIR
  const std::string command =
      "git -C " + shell_quote(THETA_SOURCE_DIR) + " describe --always --dirty --abbrev=12 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return "";
  char buffer[128] = {};
  std::string out;
  while (std::fgets(buffer, sizeof buffer, pipe.get())) out += buffer;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
#else
  return "";
#endif
}

}  // namespace

void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& columns, const char* op) {
  THETA_CHECK(header.size() == columns.size(), std::invalid_argument, "write_csv: ", path, ": ", header.size(),
              " column names for ", columns.size(), " columns");
  const std::size_t rows = columns.empty() ? 0 : columns[0].size();
  for (const auto& c : columns)
    THETA_CHECK(c.size() == rows, std::invalid_argument, "write_csv: ", path, ": columns of ", rows, " and ",
                c.size(), " rows");
  std::ostringstream out;
  out << std::setprecision(17);
  for (std::size_t j = 0; j < header.size(); ++j) out << (j ? "," : "") << csv_field(header[j]);
  out << '\n';
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < columns.size(); ++j) out << (j ? "," : "") << columns[j][i];
    out << '\n';
  }
  write_file_atomic(path, out.str(), op);
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

Results::Results(const DemoInfo& info, const DemoArgs& args, std::ostream& log)
    : info_(info), args_(args), started_(utc_now()), start_(std::chrono::steady_clock::now()), log_(&log) {
  std::ostringstream m;
  m << "  \"command\": " << json_string(args.command_line) << ",\n"
    << "  \"git_commit\": " << json_string(git_commit()) << ",\n"
    << "  \"cpu\": " << json_string(cpu_model()) << ",\n"
    << "  \"openblas_core\": " << json_string(blas_core_name()) << ",\n"
    << "  \"simd\": " << json_string(detail::kernels().arch_name) << ",\n"
    << "  \"threads\": " << get_num_threads() << ",\n";
  metadata_ = m.str();
  write("RUNNING", "started, not finished", false);
}

void Results::write_csv(const std::string& file, const std::vector<std::string>& header,
                        const std::vector<std::vector<double>>& columns) {
  demos::write_csv(args_.out + "/" + file, header, columns, info_.name.c_str());
  files_.push_back(file);
}

bool Results::check(Check check) {
  *log_ << (check.pass ? "  ok   " : "  FAIL ") << check.claim << ": " << check.measured << " (predicted "
            << check.predicted << ", tolerance " << check.tolerance << ")" << std::endl;
  checks_.push_back(std::move(check));
  return checks_.back().pass;
}

bool Results::ok() const {
  for (const Check& c : checks_)
    if (!c.pass) return false;
  return true;
}

int Results::finish(const std::string& summary) {
  const bool pass = !checks_.empty() && ok();
  write(pass ? "PASS" : "FAIL", summary, true);
  *log_ << info_.name << ": " << (pass ? "PASS " : "FAIL ") << summary << std::endl;
  return pass ? kExitPass : kExitFail;
}

int Results::finish_incomplete(const std::string& summary) {
  write("INCOMPLETE", summary, true);
  *log_ << info_.name << ": INCOMPLETE " << summary << std::endl;
  return kExitIncomplete;
}

void Results::record_error(const std::string& message) noexcept {
  try {
    write("ERROR", message, true);
  } catch (...) {
    // The folder became unwritable: the RUNNING verdict stays, which the report shows as unfinished.
  }
}

void Results::write(const std::string& status, const std::string& summary, bool finished) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::ostringstream j;
  j << "{\n  \"demo\": " << json_string(info_.name) << ",\n"
    << "  \"description\": " << json_string(info_.description) << ",\n"
    << "  \"status\": " << json_string(status) << ",\n"
    << "  \"summary\": " << json_string(summary) << ",\n"
    << "  \"started\": " << json_string(started_) << ",\n"
    << "  \"finished\": " << (finished ? json_string(utc_now()) : "null") << ",\n"
    << "  \"seconds\": " << json_number(finished ? seconds : NAN) << ",\n"
    << metadata_ << "  \"files\": [";
  for (std::size_t i = 0; i < files_.size(); ++i) j << (i ? ", " : "") << json_string(files_[i]);
  j << "],\n  \"checks\": [";
  for (std::size_t i = 0; i < checks_.size(); ++i) {
    const Check& c = checks_[i];
    j << (i ? "," : "") << "\n    {\"id\": " << json_string(c.id) << ", \"claim\": " << json_string(c.claim)
      << ", \"measured\": " << json_string(c.measured) << ", \"predicted\": " << json_string(c.predicted)
      << ", \"tolerance\": " << json_string(c.tolerance) << ", \"pass\": " << (c.pass ? "true" : "false")
      << ", \"limit\": " << json_number(c.limit) << "}";
  }
  j << (checks_.empty() ? "" : "\n  ") << "]\n}\n";
  write_file_atomic(args_.out + "/verdict.json", j.str());
}

}  // namespace theta::demos
