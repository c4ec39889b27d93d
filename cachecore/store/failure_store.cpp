#include "store/failure_store.h"

namespace dscache {
namespace {

// Passes the first `limit` bytes through, then refuses.
class TruncatingSink final : public ByteSink {
 public:
  TruncatingSink(ByteSink& inner, uint64_t start, uint64_t limit) : inner_(inner), end_(start + limit) {}
  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (offset >= end_) return Status::error(EIO, "injected failure: connection cut mid-body");
    uint64_t room = end_ - offset;
    if (data.size() > room) {
      Status s = inner_.write_at(offset, data.first(static_cast<size_t>(room)));
      return s.ok() ? Status::error(EIO, "injected failure: connection cut mid-body") : s;
    }
    return inner_.write_at(offset, data);
  }

 private:
  ByteSink& inner_;
  uint64_t end_;
};

}  // namespace

FailureStore::FailureStore(std::shared_ptr<ObjectStore> inner)
    : ObjectStore(inner->url()), inner_(std::move(inner)) {}

void FailureStore::fail_next(StoreOp op, int count, int code) {
  std::lock_guard lock(mutex_);
  rules_[static_cast<int>(op)].remaining = count;
  rules_[static_cast<int>(op)].code = code;
}

void FailureStore::fail_randomly(StoreOp op, double p, uint64_t seed, int code) {
  std::lock_guard lock(mutex_);
  rules_[static_cast<int>(op)].probability = p;
  rules_[static_cast<int>(op)].code = code;
  rng_.seed(seed);
}

void FailureStore::truncate_gets(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  truncate_at_ = bytes;
}

void FailureStore::clear() {
  std::lock_guard lock(mutex_);
  for (Rule& rule : rules_) rule = Rule{};
  truncate_at_.reset();
}

uint64_t FailureStore::injected() const {
  std::lock_guard lock(mutex_);
  return injected_;
}

Status FailureStore::maybe_fail(StoreOp op, std::string_view key) {
  std::lock_guard lock(mutex_);
  Rule& rule = rules_[static_cast<int>(op)];
  bool fail = false;
  if (rule.remaining > 0) {
    --rule.remaining;
    fail = true;
  } else if (rule.probability > 0) {
    fail = std::uniform_real_distribution<double>(0, 1)(rng_) < rule.probability;
  }
  if (!fail) return {};
  ++injected_;
  return Status::error(rule.code, describe(key) + ": injected failure (" + errno_name(rule.code) + ")");
}

Result<ObjectInfo> FailureStore::head_impl(std::string_view key) {
  if (Status s = maybe_fail(StoreOp::head, key); !s.ok()) return s;
  return inner_->head(key);
}

Result<ListPage> FailureStore::list_impl(const ListRequest& request) {
  if (Status s = maybe_fail(StoreOp::list, request.prefix); !s.ok()) return s;
  return inner_->list(request);
}

Result<GetResult> FailureStore::get_sync_impl(std::string_view key, const GetRequest& request, ByteSink& sink) {
  if (Status s = maybe_fail(StoreOp::get, key); !s.ok()) return s;
  std::optional<uint64_t> truncate_at;
  {
    std::lock_guard lock(mutex_);
    truncate_at = truncate_at_;
  }
  if (!truncate_at) return inner_->get(key, request, sink);
  TruncatingSink truncating(sink, request.range.offset, *truncate_at);
  return inner_->get(key, request, truncating);
}

}  // namespace dscache
