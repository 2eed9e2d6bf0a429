#pragma once
// How many CPUs this process may use, for the default thread count (Note [Default thread count]
// in cpu_limit.cpp): the affinity mask (taskset, cpusets) and cgroup CPU quotas (containers,
// systemd), not the machine's core count.

#include <optional>
#include <string>
#include <string_view>

namespace theta::detail {

/// CPUs in the calling thread's affinity mask (sched_getaffinity; the process's mask unless the
/// thread changed its own), at least 1.
int affinity_cpu_count();

/// The CPU limit of a cgroup v2 `cpu.max` line: "max 100000" -> none, "200000 100000" -> 2;
/// a fractional quota is rounded up ("150000 100000" -> 2). None for a line it cannot parse.
std::optional<int> cgroup_v2_cpu_limit(std::string_view cpu_max);

/// The CPU limit of cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` contents: a quota of -1
/// -> none, else quota / period rounded up. None for contents it cannot parse.
std::optional<int> cgroup_v1_cpu_limit(std::string_view quota_us, std::string_view period_us);

/// The tightest CPU limit of the cgroups listed in `proc_self_cgroup` (the text of
/// /proc/self/cgroup) and of their ancestors, read from the hierarchy mounted at `root`
/// (/sys/fs/cgroup): v2 `cpu.max`, v1 `cpu.cfs_quota_us` under `cpu,cpuacct/` or `cpu/`.
/// None when no quota applies.
std::optional<int> cgroup_cpu_limit(const std::string& root, std::string_view proc_self_cgroup);

/// The CPUs this process may use: min(affinity_cpu_count(), this process' cgroup limit).
int available_cpus();

/// The default thread count: THETA_NUM_THREADS, else OMP_NUM_THREADS (each when a positive
/// integer), else available_cpus().
int default_num_threads();

}  // namespace theta::detail
