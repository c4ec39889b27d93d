// FillSink: the ByteSink fetches write into: it gathers bytes into the
// FillWriter's pool buffers (one run per contiguous range, so parallel parts
// stay apart) and writes each full buffer with io_uring. finish() flushes,
// waits for every write, and gives the first error. When the bytes arrived
// in order it also has their XXH3-64 checksum, computed on the way through.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "cache/fill_writer.h"
#include "store/object_store.h"

namespace dscache {

class FillSink final : public ByteSink {
 public:
  // Object byte N goes to file offset N - base; the bytes are expected from
  // object offset `start` on (for the in-order checksums). With a segment
  // size, the sink also checksums each aligned segment of that size (the
  // blocks of a large file) as the bytes pass, when they arrive in order.
  FillSink(FillWriter& writer, int fd, uint64_t base, uint64_t segment = 0, uint64_t start = 0);
  ~FillSink() override;

  Status write_at(uint64_t offset, std::span<const std::byte> data) override;
  Status finish();
  // Flushes and calls `done` with the first error once every write has
  // completed: on the writer's thread, or on this one if nothing is pending.
  // `done` must not wait for the FillWriter.
  void finish_async(std::function<void(Status)> done);

  bool in_order() const { return in_order_; }
  uint64_t checksum() const;  // valid when in_order()
  // XXH3-64 of each whole segment seen, in order from the first byte's
  // segment (and of the last, partial one). Valid when in_order().
  std::vector<uint64_t> segment_checksums() const;
  uint64_t bytes() const { return bytes_; }

 private:
  struct Run {
    uint64_t start = 0;  // object offset of buffer.data[0]
    FillWriter::Buffer buffer;
  };
  void submit_locked(Run run);

  FillWriter& writer_;
  const int fd_;
  const uint64_t base_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Run> runs_;
  uint64_t outstanding_ = 0;
  Status error_;
  std::function<void(Status)> on_drained_;
  void* hash_state_;  // XXH3_state_t
  uint64_t next_in_order_;
  bool in_order_ = true;
  const uint64_t segment_;
  void* segment_state_ = nullptr;  // XXH3_state_t of the current segment
  std::vector<uint64_t> segment_sums_;
  uint64_t bytes_ = 0;
};

// XXH3-64 of a file's first `size` bytes, read back (for bytes that arrived
// out of order, and for verification). EIO-style status on a short read.
Result<uint64_t> checksum_file(int fd, uint64_t size);
// XXH3-64 of bytes [offset, offset + length) of a file (a block's checksum is its low 32 bits).
Result<uint64_t> checksum_range(int fd, uint64_t offset, uint64_t length);

}  // namespace dscache
