#include "cache/fill_sink.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace dscache {

FillSink::FillSink(FillWriter& writer, int fd, uint64_t base, uint64_t segment, uint64_t start)
    : writer_(writer),
      fd_(fd),
      base_(base),
      hash_state_(XXH3_createState()),
      next_in_order_(std::max(base, start)),
      segment_(segment) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(hash_state_));
  if (segment_ > 0) {
    segment_state_ = XXH3_createState();
    XXH3_64bits_reset(static_cast<XXH3_state_t*>(segment_state_));
  }
}

FillSink::~FillSink() {
  // finish() normally ran; if not, still wait: writes reference our fd.
  (void)finish();
  XXH3_freeState(static_cast<XXH3_state_t*>(hash_state_));
  if (segment_state_ != nullptr) XXH3_freeState(static_cast<XXH3_state_t*>(segment_state_));
}

std::vector<uint64_t> FillSink::segment_checksums() const {
  std::vector<uint64_t> sums = segment_sums_;
  if (segment_ > 0 && next_in_order_ % segment_ != 0) {
    sums.push_back(XXH3_64bits_digest(static_cast<const XXH3_state_t*>(segment_state_)));
  }
  return sums;
}

uint64_t FillSink::checksum() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(hash_state_)); }

void FillSink::submit_locked(Run run) {
  ++outstanding_;
  writer_.write(fd_, run.start - base_, run.buffer, [this](Status status) {
    std::function<void(Status)> drained;
    Status result;
    {
      std::lock_guard lock(mutex_);
      --outstanding_;
      if (!status.ok() && error_.ok()) error_ = std::move(status);
      if (outstanding_ == 0 && on_drained_) {
        drained = std::move(on_drained_);
        on_drained_ = nullptr;
        result = error_;
      }
      cv_.notify_all();
    }
    if (drained) drained(result);  // may destroy this sink: nothing of it is used after
  });
}

Status FillSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  if (offset < base_) return Status::error(EIO, "internal error: bytes before the fill's start");
  std::unique_lock lock(mutex_);
  if (!error_.ok()) return error_;
  if (offset == next_in_order_ && in_order_) {
    XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_state_), data.data(), data.size());
    for (std::span<const std::byte> rest = data; segment_ > 0 && !rest.empty();) {
      auto* state = static_cast<XXH3_state_t*>(segment_state_);
      uint64_t room = segment_ - next_in_order_ % segment_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(room, rest.size()));
      XXH3_64bits_update(state, rest.data(), n);
      rest = rest.subspan(n);
      next_in_order_ += n;
      if (next_in_order_ % segment_ == 0) {
        segment_sums_.push_back(XXH3_64bits_digest(state));
        XXH3_64bits_reset(state);
      }
    }
    if (segment_ == 0) next_in_order_ += data.size();
  } else {
    in_order_ = false;
  }
  bytes_ += data.size();
  while (!data.empty()) {
    auto it = std::find_if(runs_.begin(), runs_.end(), [&](const Run& r) {
      return r.start + r.buffer.size == offset && r.buffer.size < r.buffer.capacity;
    });
    if (it == runs_.end()) {
      lock.unlock();
      FillWriter::Buffer buffer = writer_.acquire();  // may wait for the disk
      lock.lock();
      runs_.push_back(Run{offset, buffer});
      it = runs_.end() - 1;
    }
    size_t n = std::min(data.size(), it->buffer.capacity - it->buffer.size);
    std::memcpy(it->buffer.data + it->buffer.size, data.data(), n);
    it->buffer.size += n;
    offset += n;
    data = data.subspan(n);
    if (it->buffer.size == it->buffer.capacity) {
      Run full = *it;
      runs_.erase(it);
      submit_locked(full);
    }
  }
  return {};
}

void FillSink::finish_async(std::function<void(Status)> done) {
  std::unique_lock lock(mutex_);
  for (Run& run : runs_) {
    if (run.buffer.size > 0) {
      submit_locked(run);
    } else {
      writer_.discard(run.buffer);
    }
  }
  runs_.clear();
  if (outstanding_ > 0) {
    on_drained_ = std::move(done);
    return;
  }
  Status result = error_;
  lock.unlock();
  done(result);
}

Status FillSink::finish() {
  std::unique_lock lock(mutex_);
  for (Run& run : runs_) {
    if (run.buffer.size > 0) {
      submit_locked(run);
    } else {
      writer_.discard(run.buffer);
    }
  }
  runs_.clear();
  cv_.wait(lock, [this] { return outstanding_ == 0; });
  return error_;
}

Result<uint64_t> checksum_range(int fd, uint64_t offset, uint64_t length) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<std::byte> buffer(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(length, 1), 1 << 20)));
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), length - done));
    ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      XXH3_freeState(state);
      int err = n < 0 ? errno : EIO;
      return Status::error(err, std::string("reading back a cache file: ") + (n < 0 ? errno_name(err) : "short file"));
    }
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

Result<uint64_t> checksum_file(int fd, uint64_t size) { return checksum_range(fd, 0, size); }

}  // namespace dscache
