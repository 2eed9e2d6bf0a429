#include "tensor/cpu_limit.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace theta::detail {

// Note [Default thread count]
// theta's default thread count is the number of CPUs the process can actually run on, so that a
// program started under `taskset -c 0`, in a container with `--cpus=2`, or in a systemd unit with
// CPUQuota= does not start one busy thread per core of the host (oversubscribed threads that
// take turns on too few CPUs are slower than fewer threads). Two limits apply:
//   - the affinity mask (sched_getaffinity): the CPUs the scheduler may place us on;
//   - the cgroup CPU bandwidth quota: quota / period CPUs' worth of time per period, rounded up,
//     from cgroup v2 `cpu.max` or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, for this
//     process's cgroup (named in /proc/self/cgroup) and every ancestor up to the mount point (a
//     parent's quota bounds its children). In a container the named path may not exist below the
//     mount point (no cgroup namespace); walking up then still reaches the mount point's own
//     files, which are the container's.
// An explicit THETA_NUM_THREADS or OMP_NUM_THREADS, or set_num_threads(), takes priority.

namespace {

std::optional<std::int64_t> parse_integer(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int> quota_cpus(std::int64_t quota, std::int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  const std::int64_t cpus = (quota + period - 1) / period;
  return static_cast<int>(std::clamp<std::int64_t>(cpus, 1, 1 << 20));
}

std::optional<std::string> read_file_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<int> tighter(std::optional<int> a, std::optional<int> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// The cgroup directory `dir` below `root` and each of its ancestors up to `root` itself.
std::vector<std::string> self_and_ancestors(const std::string& root, std::string_view dir) {
  std::vector<std::string> dirs;
  std::string path(dir);
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (;;) {
    dirs.push_back(root + path);
    const std::size_t slash = path.rfind('/');
    if (slash == std::string::npos) break;
    path.resize(slash);
  }
  return dirs;
}

std::optional<int> limit_in_dir(const std::string& dir, bool v2) {
  if (v2) {
    const auto cpu_max = read_file_text(dir + "/cpu.max");
    return cpu_max ? cgroup_v2_cpu_limit(*cpu_max) : std::nullopt;
  }
  const auto quota = read_file_text(dir + "/cpu.cfs_quota_us");
  const auto period = read_file_text(dir + "/cpu.cfs_period_us");
  return quota && period ? cgroup_v1_cpu_limit(*quota, *period) : std::nullopt;
}

}  // namespace

int affinity_cpu_count() {
  for (int cpus = 1024; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (set == nullptr) break;
    const std::size_t bytes = CPU_ALLOC_SIZE(cpus);
    const bool ok = sched_getaffinity(0, bytes, set) == 0;
    const int count = ok ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (ok) return std::max(count, 1);
    if (errno != EINVAL) break;  // EINVAL: the kernel's mask is larger than ours, try again
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::optional<int> cgroup_v2_cpu_limit(std::string_view cpu_max) {
  const std::size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view quota = cpu_max.substr(0, space);
  if (quota == "max") return std::nullopt;
  const auto q = parse_integer(quota), p = parse_integer(cpu_max.substr(space + 1));
  return q && p ? quota_cpus(*q, *p) : std::nullopt;
}

std::optional<int> cgroup_v1_cpu_limit(std::string_view quota_us, std::string_view period_us) {
  const auto q = parse_integer(quota_us), p = parse_integer(period_us);
  return q && p ? quota_cpus(*q, *p) : std::nullopt;
}

std::optional<int> cgroup_cpu_limit(const std::string& root, std::string_view proc_self_cgroup) {
  std::optional<int> limit;
  std::istringstream lines{std::string(proc_self_cgroup)};
  std::string line;
  while (std::getline(lines, line)) {
    // hierarchy-id:controllers:path; v2 is "0::path", v1 lists its controllers ("cpu,cpuacct").
    const std::size_t first = line.find(':');
    const std::size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = std::string_view(line).substr(second + 1);
    if (controllers.empty()) {
      for (const std::string& dir : self_and_ancestors(root, path)) limit = tighter(limit, limit_in_dir(dir, true));
      continue;
    }
    const std::string padded = "," + controllers + ",";
    if (padded.find(",cpu,") == std::string::npos) continue;
    for (const std::string& mount : {root + "/" + controllers, root + "/cpu"})
      for (const std::string& dir : self_and_ancestors(mount, path)) limit = tighter(limit, limit_in_dir(dir, false));
  }
  return limit;
}

int available_cpus() {
  const int cpus = affinity_cpu_count();
  const auto self = read_file_text("/proc/self/cgroup");
  const auto quota = self ? cgroup_cpu_limit("/sys/fs/cgroup", *self) : std::nullopt;
  return quota ? std::min(cpus, *quota) : cpus;
}

int default_num_threads() {
  for (const char* var : {"THETA_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return available_cpus();
}

}  // namespace theta::detail
