// S3Store: ObjectStore over S3 and S3-compatible stores (Ceph RGW, MinIO,
// OSS, GCS interoperability), on the shared FetchEngine.
//
// Reads larger than one part are split into parallel ranged GETs that write
// straight into the caller's sink; every part carries If-Match once the ETag
// is known, and all parts of one read must agree on it, so bytes of two
// versions are never mixed. A part cut mid-body resumes from its last byte.
#pragma once

#include <map>
#include <memory>

#include "http/fetch_engine.h"
#include "s3/aws_config.h"
#include "s3/s3_endpoint.h"
#include "store/object_store.h"

namespace dscache {

struct S3StoreOptions {
  uint64_t part_size = 8 << 20;  // bytes per ranged GET of a large read
  uint32_t parallelism = 16;     // parts of one read in flight at once
};

class S3Store final : public ObjectStore {
 public:
  struct Context;

  // `url` is s3://bucket[/prefix]. Asynchronous gets must complete before the
  // store is destroyed.
  static Result<std::unique_ptr<S3Store>> open(std::string_view url, S3Settings settings,
                                               std::shared_ptr<FetchEngine> engine, S3StoreOptions options = {});
  ~S3Store() override;

  // Uploads one object in a single PUT (tests and tools; dscache serves reads).
  // `metadata` becomes x-amz-meta-<name> headers.
  Status put(std::string_view key, std::string_view bytes, const std::map<std::string, std::string>& metadata = {});

  const S3Endpoint& endpoint() const;
  FetchEngine& engine() const;
  bool reads_on_caller_thread() const override { return false; }

 private:
  S3Store(std::shared_ptr<Context> context, std::shared_ptr<FetchEngine> engine);

  Result<ObjectInfo> head_impl(std::string_view key) override;
  std::vector<Result<ObjectInfo>> head_many_impl(const std::vector<std::string>& keys, size_t in_flight) override;
  Result<ListPage> list_impl(const ListRequest& request) override;
  void get_async_impl(std::string_view key, const GetRequest& request, ByteSink& sink, Priority priority,
                      GetCallback done) override;

  std::shared_ptr<Context> context_;
  std::shared_ptr<FetchEngine> engine_;
};

}  // namespace dscache
