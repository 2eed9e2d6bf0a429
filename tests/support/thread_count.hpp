#pragma once
// Sets theta's thread count for one scope and restores the previous one however the scope ends.

#include "tensor/parallel.hpp"

namespace theta::test {

class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(get_num_threads()) { set_num_threads(threads); }
  ~ThreadCount() { set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace theta::test
