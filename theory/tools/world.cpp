#include "theory/tools/world.hpp"

#include <cstdio>
#include <cstdlib>

#ifdef THETA_WITH_MPI
#include <mpi.h>
#endif

namespace theta::tools {

#ifdef THETA_WITH_MPI

World::World(int& argc, char**& argv) {
  MPI_Init(&argc, &argv);
  joined_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

World::~World() {
  if (joined_) MPI_Finalize();
}

void World::barrier() const { MPI_Barrier(MPI_COMM_WORLD); }

std::int64_t World::sum_on_root(std::int64_t value) const {
  long long mine = value, total = 0;
  MPI_Reduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
  return rank_ == 0 ? total : value;
}

void World::abort(int status) const {
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);  // MPI_Abort does not return; in case it does
}

#else

World::World(int&, char**&) {}
World::~World() = default;
void World::barrier() const {}
std::int64_t World::sum_on_root(std::int64_t value) const { return value; }
void World::abort(int status) const {
  std::fflush(stderr);
  std::_Exit(status);
}

#endif

}  // namespace theta::tools
