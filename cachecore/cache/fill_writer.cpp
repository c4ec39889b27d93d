#include "cache/fill_writer.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"

namespace dscache {

struct FillWriter::Ring {
  io_uring ring{};
};

struct FillWriter::Request {
  int fd = -1;
  uint64_t offset = 0;
  Buffer buffer;
  size_t done = 0;  // bytes written so far
  std::function<void(Status)> callback;
};

namespace {
// user_data of the poll request on the wake-up eventfd.
constexpr uint64_t kWakeTag = 1;
}  // namespace

FillWriter::FillWriter(Options options) : options_(options) {
  for (size_t i = 0; i < options_.buffer_count; ++i) {
    storage_.push_back(std::make_unique<std::byte[]>(options_.buffer_size));
    free_buffers_.push_back(storage_.back().get());
  }
  if (options_.use_io_uring) {
    auto ring = std::make_unique<Ring>();
    int rc = io_uring_queue_init(options_.queue_depth + 1, &ring->ring, 0);
    if (rc == 0) {
      event_fd_ = ::eventfd(0, EFD_CLOEXEC);
      ring_ = std::move(ring);
    } else {
      DSCACHE_LOG(warn, "io_uring unavailable (%s): cache files are written with pwrite", std::strerror(-rc));
    }
  } else {
    DSCACHE_LOG(info, "io_uring disabled: cache files are written with pwrite");
  }
  thread_ = std::thread([this] { run(); });
}

FillWriter::~FillWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  pool_cv_.notify_all();
  if (event_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
  thread_.join();
  if (ring_) io_uring_queue_exit(&ring_->ring);
  if (event_fd_ >= 0) ::close(event_fd_);
}

FillWriter::Buffer FillWriter::acquire() {
  std::unique_lock lock(mutex_);
  pool_cv_.wait(lock, [this] { return !free_buffers_.empty(); });
  Buffer b;
  b.data = free_buffers_.back();
  free_buffers_.pop_back();
  b.capacity = options_.buffer_size;
  return b;
}

void FillWriter::release(Buffer buffer) {
  {
    std::lock_guard lock(mutex_);
    free_buffers_.push_back(buffer.data);
  }
  pool_cv_.notify_one();
}

uint64_t FillWriter::bytes_written() const {
  std::lock_guard lock(const_cast<std::mutex&>(mutex_));
  return bytes_written_;
}

void FillWriter::write(int fd, uint64_t offset, Buffer buffer, std::function<void(Status)> done) {
  auto* request = new Request{fd, offset, buffer, 0, std::move(done)};
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    // The writer takes what is pending before it sleeps (or has writes in
    // the ring, whose completions wake it): only an empty queue needs a wake-up.
    wake = pending_.empty();
    pending_.push_back(request);
    ++in_flight_;
  }
  if (ring_ && wake) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
  } else if (!ring_) {
    pool_cv_.notify_all();
  }
}

void FillWriter::finish(Request* request, Status status) {
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    bytes_written_ += request->done;
  }
  release(request->buffer);
  if (request->callback) request->callback(std::move(status));
  delete request;
}

void FillWriter::write_with_pwrite(Request* request) {
  while (request->done < request->buffer.size) {
    ssize_t n = ::pwrite(request->fd, request->buffer.data + request->done, request->buffer.size - request->done,
                         static_cast<off_t>(request->offset + request->done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      return finish(request, Status::error(err, std::string("writing to the cache: ") + errno_name(err)));
    }
    request->done += static_cast<size_t>(n);
  }
  finish(request, {});
}

void FillWriter::run() {
  if (!ring_) {
    while (true) {
      Request* request = nullptr;
      {
        std::unique_lock lock(mutex_);
        pool_cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;  // stopping, nothing left
        request = pending_.front();
        pending_.pop_front();
      }
      write_with_pwrite(request);
    }
  }

  io_uring& ring = ring_->ring;
  unsigned submitted = 0;  // writes in the ring
  bool wake_armed = false;
  uint64_t wake_value = 0;
  while (true) {
    if (!wake_armed) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_read(sqe, event_fd_, &wake_value, sizeof wake_value, 0);
      io_uring_sqe_set_data64(sqe, kWakeTag);
      wake_armed = true;
    }
    std::deque<Request*> batch;
    bool stop_now = false;
    {
      std::lock_guard lock(mutex_);
      while (!pending_.empty() && submitted + batch.size() < options_.queue_depth) {
        batch.push_back(pending_.front());
        pending_.pop_front();
      }
      stop_now = stopping_ && pending_.empty() && batch.empty() && submitted == 0;
    }
    if (stop_now) return;
    for (Request* request : batch) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_write(sqe, request->fd, request->buffer.data + request->done,
                          static_cast<unsigned>(request->buffer.size - request->done), request->offset + request->done);
      io_uring_sqe_set_data(sqe, request);
      ++submitted;
    }
    io_uring_submit(&ring);

    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {
      DSCACHE_LOG(error, "io_uring_wait_cqe failed: %s", std::strerror(-rc));
      continue;
    }
    unsigned head = 0, seen = 0;
    std::deque<Request*> again;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      if (io_uring_cqe_get_data64(cqe) == kWakeTag) {
        wake_armed = false;
        continue;
      }
      auto* request = static_cast<Request*>(io_uring_cqe_get_data(cqe));
      --submitted;
      int res = cqe->res;
      if (res == -EAGAIN || res == -EINTR) {
        again.push_back(request);
      } else if (res < 0) {
        finish(request, Status::error(-res, std::string("writing to the cache: ") + errno_name(-res)));
      } else if (res == 0) {
        finish(request, Status::error(EIO, "writing to the cache: no progress"));
      } else {
        request->done += static_cast<size_t>(res);
        if (request->done < request->buffer.size) {
          again.push_back(request);  // short write: the rest goes again
        } else {
          finish(request, {});
        }
      }
    }
    io_uring_cq_advance(&ring, seen);
    if (!again.empty()) {
      std::lock_guard lock(mutex_);
      for (auto it = again.rbegin(); it != again.rend(); ++it) pending_.push_front(*it);
    }
  }
}

}  // namespace dscache
