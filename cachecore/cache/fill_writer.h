// FillWriter: writes fetched bytes to cache files through io_uring, off the
// network threads.
//
// One thread owns the ring (bounded queue depth, the request context in
// user_data, short writes and -EAGAIN resubmitted). Where no ring can be made
// (old kernel, seccomp, io_uring_disabled) it writes with pwrite on the same
// thread and says so in the log. Buffers come from a bounded pool: when the
// disk is slower than the network, producers wait instead of growing memory.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/status.h"

namespace dscache {

class FillWriter {
 public:
  struct Options {
    unsigned queue_depth = 64;
    size_t buffer_size = 256 << 10;
    size_t buffer_count = 256;  // at most buffer_size * buffer_count (64 MiB) in flight
    bool use_io_uring = true;  // false: pwrite (tests, or DSCACHE_IO_URING=0)
  };

  // An owned, pool-backed buffer. Returned to the pool when the write completes.
  struct Buffer {
    std::byte* data = nullptr;
    size_t size = 0;      // bytes filled
    size_t capacity = 0;
  };

  explicit FillWriter(Options options);
  ~FillWriter();  // waits for every submitted write
  FillWriter(const FillWriter&) = delete;
  FillWriter& operator=(const FillWriter&) = delete;

  // Blocks while the pool is exhausted.
  Buffer acquire();
  // Writes buffer.data[0, size) at `offset` of `fd`; `done` runs on the writer
  // thread once every byte is written or the write failed. The buffer goes
  // back to the pool either way.
  void write(int fd, uint64_t offset, Buffer buffer, std::function<void(Status)> done);

  // Returns an unused buffer to the pool.
  void discard(Buffer buffer) { release(buffer); }

  bool using_io_uring() const { return ring_ != nullptr; }
  uint64_t bytes_written() const;

 private:
  struct Request;
  struct Ring;

  void run();
  void release(Buffer buffer);
  void finish(Request* request, Status status);
  void write_with_pwrite(Request* request);

  Options options_;
  std::unique_ptr<Ring> ring_;  // null: pwrite fallback
  int event_fd_ = -1;           // wakes the writer thread

  std::mutex mutex_;
  std::condition_variable pool_cv_;
  std::vector<std::byte*> free_buffers_;
  std::vector<std::unique_ptr<std::byte[]>> storage_;
  std::deque<Request*> pending_;
  bool stopping_ = false;
  uint64_t in_flight_ = 0;
  uint64_t bytes_written_ = 0;
  std::thread thread_;
};

}  // namespace dscache
