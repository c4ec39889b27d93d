// ThreadPool: a fixed set of threads for blocking work (file system calls,
// synchronous store calls) so that network and event-loop threads never wait
// on a disk. Tasks run in submission order per priority; demand first.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dscache {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();  // runs what is queued, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void post(std::function<void()> task, bool background = false);
  size_t queued() const;

 private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> demand_, background_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace dscache
