// MemoryStore: an in-memory object store with S3 semantics, for unit tests of
// everything that sits above ObjectStore.
#pragma once

#include <map>
#include <mutex>

#include "store/object_store.h"

namespace dscache {

class MemoryStore final : public ObjectStore {
 public:
  MemoryStore() : ObjectStore("mem://") {}

  // Creates or replaces an object; every put gets a new ETag.
  void put(std::string key, std::string_view bytes, std::optional<int64_t> meta_mtime_ns = std::nullopt);
  void remove(std::string_view key);
  uint64_t get_calls() const;

 private:
  struct Object {
    std::string bytes;
    ObjectInfo info;
  };

  Result<ObjectInfo> head_impl(std::string_view key) override;
  Result<ListPage> list_impl(const ListRequest& request) override;
  Result<GetResult> get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) override;

  mutable std::mutex mutex_;
  std::map<std::string, Object, std::less<>> objects_;
  uint64_t version_ = 0;
  uint64_t get_calls_ = 0;
};

}  // namespace dscache
