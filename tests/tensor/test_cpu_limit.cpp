// The default thread count follows the affinity mask and cgroup CPU quotas
// (Note [Default thread count]); explicit settings keep priority.
#include <sched.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/scoped_env.hpp"
#include "tests/support/temp_dir.hpp"
#include "tensor/cpu_limit.hpp"

using namespace theta::detail;
using theta::test::ScopedEnv;
using theta::test::TempDir;

namespace {

// The CPUs in the calling thread's affinity mask, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

struct Counts {
  bool pinned = false;
  int affinity = 0, available = 0, default_threads = 0;
};

// Runs the counters on a fresh thread pinned to `cpus` (sched_setaffinity with pid 0 changes the
// calling thread only), so the test process keeps its own mask.
Counts counts_pinned_to(const std::vector<int>& cpus) {
  Counts counts;
  std::thread([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : cpus) CPU_SET(cpu, &set);
    counts.pinned = sched_setaffinity(0, sizeof(set), &set) == 0;
    counts.affinity = affinity_cpu_count();
    counts.available = available_cpus();
    counts.default_threads = default_num_threads();
  }).join();
  return counts;
}

void write_in(const TempDir& root, const std::string& dir, const std::string& name, const std::string& text) {
  std::filesystem::create_directories(root.file(dir));
  root.write(dir.empty() ? name : dir + "/" + name, text);
}

}  // namespace

TEST_CASE("a thread pinned to one CPU counts one CPU and defaults to one thread", "[tensor][parallel][threads]") {
  const std::vector<int> cpus = allowed_cpus();
  REQUIRE(!cpus.empty());
  ScopedEnv theta_threads("THETA_NUM_THREADS", nullptr), omp_threads("OMP_NUM_THREADS", nullptr);
  const Counts one = counts_pinned_to({cpus.back()});
  REQUIRE(one.pinned);
  CHECK(one.affinity == 1);
  CHECK(one.available == 1);
  CHECK(one.default_threads == 1);
  if (cpus.size() >= 2) {
    const Counts two = counts_pinned_to({cpus[0], cpus[1]});
    REQUIRE(two.pinned);
    CHECK(two.affinity == 2);
    CHECK(two.available <= 2);
    CHECK(two.available >= 1);
  }
  // The unpinned count is the whole mask (and the machine has at least that many CPUs).
  CHECK(affinity_cpu_count() == static_cast<int>(cpus.size()));
}

TEST_CASE("THETA_NUM_THREADS and OMP_NUM_THREADS outrank the CPU count", "[tensor][parallel][threads]") {
  const std::vector<int> cpus = allowed_cpus();
  {
    ScopedEnv theta_threads("THETA_NUM_THREADS", "3"), omp_threads("OMP_NUM_THREADS", "5");
    CHECK(counts_pinned_to({cpus[0]}).default_threads == 3);
  }
  {
    ScopedEnv theta_threads("THETA_NUM_THREADS", nullptr), omp_threads("OMP_NUM_THREADS", "5");
    CHECK(counts_pinned_to({cpus[0]}).default_threads == 5);
  }
  {
    ScopedEnv theta_threads("THETA_NUM_THREADS", "0"), omp_threads("OMP_NUM_THREADS", "junk");
    CHECK(counts_pinned_to({cpus[0]}).default_threads == 1);  // not positive integers: ignored
  }
}

TEST_CASE("cgroup quota lines give CPUs rounded up", "[tensor][parallel][threads]") {
  CHECK(cgroup_v2_cpu_limit("max 100000\n") == std::nullopt);
  CHECK(cgroup_v2_cpu_limit("200000 100000\n") == 2);
  CHECK(cgroup_v2_cpu_limit("150000 100000") == 2);
  CHECK(cgroup_v2_cpu_limit("50000 100000") == 1);
  CHECK(cgroup_v2_cpu_limit("800000 200000\n") == 4);
  CHECK(cgroup_v2_cpu_limit("") == std::nullopt);
  CHECK(cgroup_v2_cpu_limit("x 100000") == std::nullopt);
  CHECK(cgroup_v2_cpu_limit("100000 0") == std::nullopt);
  CHECK(cgroup_v1_cpu_limit("-1\n", "100000\n") == std::nullopt);
  CHECK(cgroup_v1_cpu_limit("300000\n", "100000\n") == 3);
  CHECK(cgroup_v1_cpu_limit("250000", "100000") == 3);
  CHECK(cgroup_v1_cpu_limit("", "100000") == std::nullopt);
}

TEST_CASE("cgroup_cpu_limit takes the tightest quota of the cgroup and its ancestors", "[tensor][parallel][threads]") {
  SECTION("cgroup v2, nested") {
    TempDir root;
    write_in(root, "a", "cpu.max", "300000 100000\n");
    write_in(root, "a/b", "cpu.max", "max 100000\n");
    write_in(root, "a/b/c", "cpu.max", "200000 100000\n");
    write_in(root, "other", "cpu.max", "100000 100000\n");  // not an ancestor: ignored
    CHECK(cgroup_cpu_limit(root.file(""), "0::/a/b/c\n") == 2);
    CHECK(cgroup_cpu_limit(root.file(""), "0::/a/b\n") == 3);
    CHECK(cgroup_cpu_limit(root.file(""), "0::/\n") == std::nullopt);
  }
  SECTION("cgroup v2 path not visible below the mount point: the mount point's own file counts") {
    TempDir root;
    write_in(root, "", "cpu.max", "100000 100000\n");
    CHECK(cgroup_cpu_limit(root.file(""), "0::/system.slice/elsewhere.scope\n") == 1);
  }
  SECTION("cgroup v1: cpu controller, mounted as cpu,cpuacct or cpu") {
    TempDir root;
    write_in(root, "cpu,cpuacct/docker/x", "cpu.cfs_quota_us", "150000\n");
    write_in(root, "cpu,cpuacct/docker/x", "cpu.cfs_period_us", "50000\n");
    const std::string self = "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/\n";
    CHECK(cgroup_cpu_limit(root.file(""), self) == 3);
    TempDir cpu_only;
    write_in(cpu_only, "cpu", "cpu.cfs_quota_us", "-1\n");
    write_in(cpu_only, "cpu", "cpu.cfs_period_us", "100000\n");
    write_in(cpu_only, "cpu/job", "cpu.cfs_quota_us", "400000\n");
    write_in(cpu_only, "cpu/job", "cpu.cfs_period_us", "100000\n");
    CHECK(cgroup_cpu_limit(cpu_only.file(""), "3:cpu:/job\n") == 4);
    CHECK(cgroup_cpu_limit(cpu_only.file(""), "3:cpuacct:/job\n") == std::nullopt);  // not the cpu controller
  }
  SECTION("no quota files at all") {
    TempDir root;
    CHECK(cgroup_cpu_limit(root.file(""), "0::/user.slice\n") == std::nullopt);
    CHECK(cgroup_cpu_limit(root.file(""), "") == std::nullopt);
  }
}
