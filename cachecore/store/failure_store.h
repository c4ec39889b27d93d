// FailureStore: wraps a store and fails chosen calls, for tests of what sits
// above ObjectStore (retries, error propagation, never-wrong-bytes).
#pragma once

#include <memory>
#include <mutex>
#include <random>

#include "store/object_store.h"

namespace dscache {

enum class StoreOp : uint8_t { head, list, get };

class FailureStore final : public ObjectStore {
 public:
  explicit FailureStore(std::shared_ptr<ObjectStore> inner);

  // The next `count` calls of `op` fail with `code`.
  void fail_next(StoreOp op, int count, int code = EIO);
  // From now on each call of `op` fails with probability `p` (seeded: repeatable).
  void fail_randomly(StoreOp op, double p, uint64_t seed, int code = EIO);
  // Reads deliver only the first `bytes` bytes after the requested offset, then
  // fail with EIO (a connection cut mid-body). Not meant for suffix ranges.
  void truncate_gets(uint64_t bytes);
  void clear();
  uint64_t injected() const;

 private:
  struct Rule {
    int remaining = 0;
    double probability = 0;
    int code = EIO;
  };

  Result<ObjectInfo> head_impl(std::string_view key) override;
  Result<ListPage> list_impl(const ListRequest& request) override;
  Result<GetResult> get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) override;

  Status maybe_fail(StoreOp op, std::string_view key);

  std::shared_ptr<ObjectStore> inner_;
  mutable std::mutex mutex_;
  Rule rules_[3];
  std::mt19937_64 rng_;
  std::optional<uint64_t> truncate_at_;
  uint64_t injected_ = 0;
};

}  // namespace dscache
