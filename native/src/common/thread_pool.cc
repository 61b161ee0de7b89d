#include "common/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace quip {
namespace {

thread_local bool t_inside_pool = false;

// Workers spin this long for the next task before they sleep on the condition variable, and the
// caller spins this long for the workers to finish before it sleeps: a decode step runs one short
// parallel_for after another (every matvec of every block), and a futex wake-up per call would cost
// more than the small ones themselves. Bounded, so idle threads do not steal a shared machine.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until pred() or kSpin has passed; returns pred().
template <typename Pred>
bool spin_until(Pred pred) {
  if (pred()) return true;
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return pred();
  }
}

struct Task {
  const std::function<void(size_t, size_t)>* fn = nullptr;
  size_t n = 0, grain = 1;
  std::atomic<size_t> next{0};
  std::atomic<int> active{0};
  std::exception_ptr error;
  std::mutex error_mu;

  void run_chunks() {
    for (;;) {
      size_t b = next.fetch_add(grain);
      if (b >= n) break;
      size_t e = std::min(n, b + grain);
      try {
        (*fn)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(n);  // stop handing out work
      }
    }
  }
};

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop_workers(); }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    threads = std::max(1, threads);
    if (threads == this->threads() && !workers_.empty()) return;
    stop_workers();
    stopping_ = false;
    stopping_flag_ = false;
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    std::lock_guard<std::mutex> one_at_a_time(run_mu_);
    auto task = std::make_shared<Task>();
    task->fn = &fn;
    task->n = n;
    task->grain = std::max<size_t>(1, grain);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = task;
      generation_.fetch_add(1, std::memory_order_release);
      wake = sleepers_ > 0;  // spinning workers see the new generation without a wake-up
    }
    if (wake) cv_.notify_all();
    t_inside_pool = true;
    task->run_chunks();
    t_inside_pool = false;
    spin_until([&] { return task->active.load(std::memory_order_acquire) == 0; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [&] { return task->active.load() == 0; });
      task_.reset();
    }
    if (task->error) std::rethrow_exception(task->error);
  }

 private:
  void worker_loop() {
    t_inside_pool = true;
    unsigned long seen = 0;
    for (;;) {
      std::shared_ptr<Task> task;
      spin_until([&] { return stopping_flag_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!stopping_ && !task_ && generation_.load() != seen) {
          seen = generation_.load();  // that task has already finished: spin for the next one
          continue;
        }
        if (!stopping_ && !(task_ && generation_.load() != seen)) {
          ++sleepers_;
          cv_.wait(lock, [&] { return stopping_ || (task_ && generation_.load() != seen); });
          --sleepers_;
        }
        if (stopping_) return;
        seen = generation_.load();
        task = task_;
        task->active.fetch_add(1);
      }
      task->run_chunks();
      {
        std::lock_guard<std::mutex> lock(mu_);
        task->active.fetch_sub(1, std::memory_order_release);
      }
      done_cv_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      stopping_flag_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  std::shared_ptr<Task> task_;
  std::atomic<unsigned long> generation_{0};
  int sleepers_ = 0;  // workers waiting on cv_ (guarded by mu_)
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // stopping_, readable while spinning
};

int default_threads() {
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

void set_threads(int n) { pool().resize(n <= 0 ? default_threads() : n); }
int num_threads() { return pool().threads(); }

void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  if (t_inside_pool || n <= grain || num_threads() == 1) {
    for (size_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace quip
