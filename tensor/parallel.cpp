#include "tensor/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "tensor/blas_runtime.hpp"
#include "tensor/cpu_limit.hpp"
#include "tensor/error.hpp"

namespace theta {

namespace {
thread_local bool inside_parallel_region = false;
}  // namespace

namespace {

// A fixed set of workers that run the ranges of one parallel_for at a time.
class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Runs task(i) for i in [0, count); the caller runs index 0 itself.
  void run(int count, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> lock(run_mutex_, std::defer_lock);
    lock.lock();  // one parallel region at a time
    {
      std::lock_guard<std::mutex> guard(mutex_);
      task_ = &task;
      next_ = 1;
      count_ = count;
      pending_.store(count - 1, std::memory_order_relaxed);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_one(task, 0);
    spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> guard(mutex_);
    done_.wait(guard, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Note [Spinning before sleeping]
  // A thread asleep on a condition variable takes 5-20 us to wake on the machines measured (a
  // futex round trip through the scheduler), as long as a small element-wise pass itself, and a
  // training step runs hundreds of parallel regions a few microseconds apart. So both sides of a
  // hand-off first poll the atomic they wait for, for up to kSpin: workers the generation of the
  // next region, the caller the count of unfinished indices. Each poll yields the core, so a
  // runnable thread (OpenBLAS's workers during a threaded gemm) takes it at once; spinning on
  // `pause` instead held the core against them and slowed the MLP benchmarks by 5-12%. Past kSpin
  // the thread sleeps as before, so an idle pool costs no CPU.
  static constexpr std::chrono::microseconds kSpin{50};

  template <class Ready>
  static void spin_until(Ready&& ready) {
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    while (!ready()) {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) return;
    }
  }

  void run_one(const std::function<void(int)>& task, int index) {
    inside_parallel_region = true;
    try {
      task(index);
    } catch (...) {
      std::lock_guard<std::mutex> guard(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    inside_parallel_region = false;
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        const std::uint64_t generation = generation_.load(std::memory_order_relaxed);
        if (generation != seen && next_ >= count_) seen = generation;  // the others took every index
        return stopping_ || (generation != seen && next_ < count_);
      });
      if (stopping_) return;
      const int index = next_++;
      if (next_ >= count_) seen = generation_.load(std::memory_order_relaxed);
      const auto* task = task_;
      lock.unlock();
      run_one(*task, index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> guard(mutex_);  // the caller checks pending_ under mutex_
        done_.notify_all();
      }
    }
  }

  std::vector<std::thread> threads_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int next_ = 0, count_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<std::uint64_t> generation_{0};
  bool stopping_ = false;
  std::exception_ptr error_;
};

struct ThreadState {
  std::mutex mutex;
  int threads = 0;
  std::unique_ptr<ThreadPool> pool;
};

// Bumped by set_num_threads so get_num_threads can cache the setting per thread.
std::atomic<int> thread_setting_generation{0};

ThreadState& state() {
  static ThreadState s;
  return s;
}

ThreadPool* pool_for(int threads) {
  ThreadState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.pool || s.pool->workers() != threads - 1) s.pool = std::make_unique<ThreadPool>(threads - 1);
  return s.pool.get();
}

}  // namespace

void set_num_threads(int threads) {
  THETA_CHECK(threads >= 1, std::invalid_argument, "set_num_threads: need at least 1 thread, got ",
              threads);
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().threads = threads;
  }
  thread_setting_generation.fetch_add(1, std::memory_order_acq_rel);
  detail::set_blas_threads(threads);
}

int get_num_threads() {
  static thread_local int cached_generation = -1;
  static thread_local int cached_threads = 1;
  const int generation = thread_setting_generation.load(std::memory_order_acquire);
  if (generation == cached_generation) return cached_threads;
  ThreadState& s = state();
  bool first = false;
  int threads;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.threads == 0) {
      s.threads = detail::default_num_threads();
      first = true;
    }
    threads = s.threads;
  }
  if (first) detail::set_blas_threads(threads);
  cached_generation = generation;
  cached_threads = threads;
  return threads;
}

namespace detail {

bool in_parallel_region() { return inside_parallel_region; }

void parallel_for_threads(std::int64_t n, std::int64_t grain, int threads,
                          const std::function<void(std::int64_t, std::int64_t)>& body) {
  const std::int64_t max_chunks = std::max<std::int64_t>(1, n / std::max<std::int64_t>(grain, 1));
  const int chunks = static_cast<int>(std::min<std::int64_t>(threads, max_chunks));
  if (chunks <= 1) {
    body(0, n);
    return;
  }
  const std::int64_t per = (n + chunks - 1) / chunks;
  pool_for(threads)->run(chunks, [&](int i) {
    const std::int64_t begin = i * per;
    const std::int64_t end = std::min(n, begin + per);
    if (begin < end) body(begin, end);
  });
}

}  // namespace detail

}  // namespace theta
