#pragma once
// The processes of a theta_ntk run: MPI's world when the tool is built with MPI (THETA_WITH_MPI)
// and started by mpirun, otherwise this one process. Everything MPI is behind this class, so the
// tool runs the same code for one process and for R ranks.

#include <cstdint>

namespace theta::tools {

class World {
 public:
  /// Joins the MPI world when built with MPI; otherwise (or for one process) a world of one.
  World(int& argc, char**& argv);
  /// Leaves the MPI world (MPI_Finalize) when joined.
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Returns once every process has called it.
  void barrier() const;
  /// The sum of `value` over all processes, on rank 0 (other ranks get their own value back).
  std::int64_t sum_on_root(std::int64_t value) const;
  /// Ends every process of the run with exit status `status` (MPI_Abort across ranks).
  [[noreturn]] void abort(int status) const;

 private:
  int rank_ = 0, size_ = 1;
  bool joined_ = false;
};

}  // namespace theta::tools
