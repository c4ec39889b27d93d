// ObjectStore: the one interface through which dscache reads a dataset's
// backing store (S3 and compatibles, or a shared file system directory).
//
// A store is rooted at a mount's URL (s3://bucket/prefix, file:///dir): keys
// passed in and returned are relative to that root. Public calls are
// non-virtual and check their arguments; implementations override the *_impl
// hooks (the CacheLib Device pattern), so every implementation and every test
// wrapper gets the same checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dscache {

// What identifies one version of an object. A change in any field means the
// cached bytes belong to another object.
struct ObjectInfo {
  std::string key;            // relative to the store root
  uint64_t size = 0;
  std::string etag;           // without quotes
  int64_t last_modified_ns = 0;
  // x-amz-meta-mtime (rclone, s3fs) when the store reported it; listings never do.
  std::optional<int64_t> meta_mtime_ns;

  // The mtime a file should show: the uploader's original mtime when known.
  int64_t mtime_ns() const { return meta_mtime_ns.value_or(last_modified_ns); }
};

struct ListRequest {
  std::string prefix;        // relative to the store root
  std::string delimiter;     // "/" for one directory level, empty for a flat listing
  std::string continuation;  // from the previous page's next_continuation
  std::string start_after;
  uint32_t max_keys = 1000;
};

struct ListPage {
  std::vector<ObjectInfo> objects;          // sorted by key (byte order)
  std::vector<std::string> common_prefixes;  // "dir/" entries when a delimiter was given
  std::string next_continuation;            // empty on the last page
  bool truncated = false;
};

// Bytes of an object to read. A length past the end reads to the end; an
// offset at or past the end reads nothing (not an error).
struct ByteRange {
  static constexpr uint64_t kToEnd = std::numeric_limits<uint64_t>::max();
  uint64_t offset = 0;
  uint64_t length = kToEnd;
  bool suffix = false;  // the last `length` bytes ("bytes=-N")

  static ByteRange all() { return {}; }
  static ByteRange at(uint64_t offset, uint64_t length) { return {offset, length, false}; }
  static ByteRange last(uint64_t length) { return {0, length, true}; }
};

struct GetRequest {
  ByteRange range;
  // Read only if the object still has this ETag; otherwise ESTALE. Empty: any
  // version, but all bytes of one call always come from one version.
  std::string if_match;
  // How many ranged GETs of one call may be in flight at once (large reads are
  // split into parts of the store's part size). 0: the store's default.
  uint32_t parallelism = 0;
};

struct GetResult {
  ObjectInfo info;      // identity of the version the bytes came from
  uint64_t offset = 0;  // where the delivered bytes start in the object
  uint64_t length = 0;  // how many bytes were delivered
};

// Where fetched bytes go. write_at may be called from several threads at once
// for disjoint ranges, in any order; a failure aborts the read with that status.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status write_at(uint64_t offset, std::span<const std::byte> data) = 0;
};

// A caller's buffer that holds object bytes [base, base + size).
class BufferSink final : public ByteSink {
 public:
  BufferSink(std::span<std::byte> buffer, uint64_t base) : buffer_(buffer), base_(base) {}
  Status write_at(uint64_t offset, std::span<const std::byte> data) override;

 private:
  std::span<std::byte> buffer_;
  uint64_t base_;
};

// A file descriptor: object byte N lands at file offset N - base (pwrite).
class FdSink final : public ByteSink {
 public:
  FdSink(int fd, uint64_t base) : fd_(fd), base_(base) {}
  Status write_at(uint64_t offset, std::span<const std::byte> data) override;

 private:
  int fd_;
  uint64_t base_;
};

enum class Priority : uint8_t { demand = 0, background = 1 };

class ObjectStore {
 public:
  using GetCallback = std::function<void(Result<GetResult>)>;

  virtual ~ObjectStore() = default;

  // "s3://bucket/prefix/" or "file:///dir/": for messages.
  const std::string& url() const { return url_; }
  // Whether get_async() does its work on the caller's thread (true for the
  // default implementation): callers that must not block then use a worker.
  virtual bool reads_on_caller_thread() const { return true; }

  Result<ObjectInfo> head(std::string_view key);
  // HEADs of many keys, results in the same order; the S3 store keeps up to
  // `in_flight` of them on the wire at once (DSCACHE_MTIME=metadata's listing).
  std::vector<Result<ObjectInfo>> head_many(const std::vector<std::string>& keys, size_t in_flight = 32);
  Result<ListPage> list(const ListRequest& request);
  Result<GetResult> get(std::string_view key, const GetRequest& request, ByteSink& sink,
                        Priority priority = Priority::demand);
  // Completes `done` exactly once, possibly on another thread, possibly before
  // get_async returns. `sink` must stay valid until then.
  void get_async(std::string_view key, const GetRequest& request, ByteSink& sink, Priority priority,
                 GetCallback done);

  // Reads into a buffer: a short count only at the end of the object.
  Result<GetResult> read(std::string_view key, uint64_t offset, std::span<std::byte> buffer,
                         std::string_view if_match = {});

 protected:
  explicit ObjectStore(std::string url) : url_(std::move(url)) {}

  virtual Result<ObjectInfo> head_impl(std::string_view key) = 0;
  // Default: one after another.
  virtual std::vector<Result<ObjectInfo>> head_many_impl(const std::vector<std::string>& keys, size_t in_flight);
  virtual Result<ListPage> list_impl(const ListRequest& request) = 0;
  // Default: runs get_sync_impl on the calling thread.
  virtual void get_async_impl(std::string_view key, const GetRequest& request, ByteSink& sink,
                              Priority priority, GetCallback done);
  virtual Result<GetResult> get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink);

  // "s3://bucket/prefix/key" for messages.
  std::string describe(std::string_view key) const { return url_ + std::string(key); }

 private:
  std::string url_;
};

// Keys name objects: non-empty, no NUL.
Status validate_key(std::string_view key);

// One row of a listing before it is cut into pages: an object or a common prefix.
struct ListEntry {
  std::string key;  // for a prefix: the prefix, ending in the delimiter
  bool is_prefix = false;
  ObjectInfo info;  // objects only
};

// Applies S3 listing semantics (prefix, delimiter, start-after, continuation,
// max-keys) to `sorted`, every object of a store sorted by key. The in-memory
// store and the file store list through these two.
ListPage list_sorted(const std::vector<ObjectInfo>& sorted, const ListRequest& request);
// Cuts already collapsed, sorted, prefix-filtered entries into the requested page.
ListPage paginate(std::vector<ListEntry> entries, const ListRequest& request);

// Clamps a range to an object of `size` bytes: {offset, length} actually readable.
std::pair<uint64_t, uint64_t> resolve_range(const ByteRange& range, uint64_t size);

}  // namespace dscache
