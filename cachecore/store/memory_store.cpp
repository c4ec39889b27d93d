#include "store/memory_store.h"

#include <chrono>

namespace dscache {

void MemoryStore::put(std::string key, std::string_view bytes, std::optional<int64_t> meta_mtime_ns) {
  std::lock_guard lock(mutex_);
  Object& object = objects_[key];
  object.bytes.assign(bytes);
  object.info.key = std::move(key);
  object.info.size = bytes.size();
  object.info.etag = "mem-" + std::to_string(++version_);
  object.info.last_modified_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  object.info.meta_mtime_ns = meta_mtime_ns;
}

void MemoryStore::remove(std::string_view key) {
  std::lock_guard lock(mutex_);
  if (auto it = objects_.find(key); it != objects_.end()) objects_.erase(it);
}

uint64_t MemoryStore::get_calls() const {
  std::lock_guard lock(mutex_);
  return get_calls_;
}

Result<ObjectInfo> MemoryStore::head_impl(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return Status::error(ENOENT, describe(key) + ": no such key");
  return it->second.info;
}

Result<ListPage> MemoryStore::list_impl(const ListRequest& request) {
  std::vector<ObjectInfo> sorted;
  {
    std::lock_guard lock(mutex_);
    sorted.reserve(objects_.size());
    for (const auto& [key, object] : objects_) {
      ObjectInfo info = object.info;
      info.meta_mtime_ns.reset();  // as S3: listings carry no user metadata
      sorted.push_back(std::move(info));
    }
  }
  return list_sorted(sorted, request);
}

Result<GetResult> MemoryStore::get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) {
  std::string bytes;
  GetResult result;
  {
    std::lock_guard lock(mutex_);
    ++get_calls_;
    auto it = objects_.find(key);
    if (it == objects_.end()) return Status::error(ENOENT, describe(key) + ": no such key");
    if (!request.if_match.empty() && request.if_match != it->second.info.etag) {
      return Status::error(ESTALE, describe(key) + ": object changed in the store (ETag no longer matches)");
    }
    result.info = it->second.info;
    auto [offset, length] = resolve_range(request.range, it->second.bytes.size());
    result.offset = offset;
    result.length = length;
    if (length > 0) bytes = it->second.bytes.substr(offset, length);
  }
  if (!bytes.empty()) {
    Status s = sink.write_at(result.offset, std::as_bytes(std::span(bytes)));
    if (!s.ok()) return s;
  }
  return result;
}

}  // namespace dscache
