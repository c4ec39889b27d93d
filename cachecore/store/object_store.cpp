#include "store/object_store.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

namespace dscache {

Status BufferSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  if (offset < base_ || offset - base_ > buffer_.size() || data.size() > buffer_.size() - (offset - base_)) {
    return Status::error(EIO, "internal error: store delivered bytes outside the requested range");
  }
  std::memcpy(buffer_.data() + (offset - base_), data.data(), data.size());
  return {};
}

Status FdSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  if (offset < base_) return Status::error(EIO, "internal error: store delivered bytes before the sink's base");
  uint64_t pos = offset - base_;
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(errno, std::string("writing fetched bytes: ") + errno_name(errno));
    }
    data = data.subspan(static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  return {};
}

Status validate_key(std::string_view key) {
  if (key.empty()) return Status::error(EINVAL, "empty object key");
  if (key.find('\0') != std::string_view::npos) return Status::error(EINVAL, "object key contains a NUL byte");
  return {};
}

std::pair<uint64_t, uint64_t> resolve_range(const ByteRange& range, uint64_t size) {
  if (range.suffix) {
    uint64_t length = std::min(range.length, size);
    return {size - length, length};
  }
  if (range.offset >= size) return {range.offset, 0};
  return {range.offset, std::min(range.length, size - range.offset)};
}

Result<ObjectInfo> ObjectStore::head(std::string_view key) {
  if (Status s = validate_key(key); !s.ok()) return s.with_context(describe(key));
  return head_impl(key);
}

std::vector<Result<ObjectInfo>> ObjectStore::head_many(const std::vector<std::string>& keys, size_t in_flight) {
  return head_many_impl(keys, in_flight == 0 ? 1 : in_flight);
}

std::vector<Result<ObjectInfo>> ObjectStore::head_many_impl(const std::vector<std::string>& keys, size_t) {
  std::vector<Result<ObjectInfo>> out;
  out.reserve(keys.size());
  for (const std::string& k : keys) out.push_back(head(k));
  return out;
}

Result<ListPage> ObjectStore::list(const ListRequest& request) {
  if (request.max_keys == 0) return Status::error(EINVAL, "list: max_keys must be at least 1");
  return list_impl(request);
}

namespace {

// Waits for a get_async callback on the calling thread.
struct GetWaiter {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<GetResult>> result;

  ObjectStore::GetCallback callback() {
    return [this](Result<GetResult> r) {
      std::lock_guard lock(mutex);
      result.emplace(std::move(r));
      cv.notify_all();
    };
  }
  Result<GetResult> wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [this] { return result.has_value(); });
    return std::move(*result);
  }
};

}  // namespace

Result<GetResult> ObjectStore::get(std::string_view key, const GetRequest& request, ByteSink& sink,
                                   Priority priority) {
  GetWaiter waiter;
  get_async(key, request, sink, priority, waiter.callback());
  return waiter.wait();
}

void ObjectStore::get_async(std::string_view key, const GetRequest& request, ByteSink& sink, Priority priority,
                            GetCallback done) {
  if (Status s = validate_key(key); !s.ok()) return done(s.with_context(describe(key)));
  if (request.range.suffix && request.range.length == 0) {
    return done(Status::error(EINVAL, describe(key) + ": a suffix range needs at least one byte"));
  }
  get_async_impl(key, request, sink, priority, std::move(done));
}

Result<GetResult> ObjectStore::read(std::string_view key, uint64_t offset, std::span<std::byte> buffer,
                                    std::string_view if_match) {
  BufferSink sink(buffer, offset);
  GetRequest request;
  request.range = ByteRange::at(offset, buffer.size());
  request.if_match = std::string(if_match);
  if (buffer.empty()) request.range.length = 0;
  return get(key, request, sink);
}

void ObjectStore::get_async_impl(std::string_view key, const GetRequest& request, ByteSink& sink, Priority,
                                 GetCallback done) {
  done(get_sync_impl(key, request, sink));
}

Result<GetResult> ObjectStore::get_sync_impl(std::string_view key, const GetRequest&, ByteSink&) {
  return Status::error(ENOSYS, describe(key) + ": this store implements no read");
}

ListPage list_sorted(const std::vector<ObjectInfo>& sorted, const ListRequest& request) {
  std::vector<ListEntry> entries;
  auto first = std::lower_bound(sorted.begin(), sorted.end(), request.prefix,
                                [](const ObjectInfo& o, const std::string& p) { return o.key < p; });
  for (auto it = first; it != sorted.end() && it->key.starts_with(request.prefix); ++it) {
    if (!request.delimiter.empty()) {
      size_t cut = it->key.find(request.delimiter, request.prefix.size());
      if (cut != std::string::npos) {
        std::string prefix = it->key.substr(0, cut + request.delimiter.size());
        if (entries.empty() || entries.back().key != prefix) entries.push_back({std::move(prefix), true, {}});
        continue;
      }
    }
    entries.push_back({it->key, false, *it});
  }
  return paginate(std::move(entries), request);
}

ListPage paginate(std::vector<ListEntry> entries, const ListRequest& request) {
  // S3 resumes after the last key or prefix of the previous page; start-after
  // applies on the first page. Both are exclusive bounds.
  const std::string& after = !request.continuation.empty() ? request.continuation : request.start_after;
  ListPage page;
  for (auto& entry : entries) {
    if (!after.empty() && entry.key <= after) continue;
    if (page.objects.size() + page.common_prefixes.size() == request.max_keys) {
      page.truncated = true;
      break;
    }
    page.next_continuation = entry.key;
    if (entry.is_prefix) {
      page.common_prefixes.push_back(std::move(entry.key));
    } else {
      page.objects.push_back(std::move(entry.info));
    }
  }
  if (!page.truncated) page.next_continuation.clear();
  return page;
}

}  // namespace dscache
