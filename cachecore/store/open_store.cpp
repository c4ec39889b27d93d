#include "store/open_store.h"

#include "s3/s3_store.h"
#include "store/file_store.h"

namespace dscache {

FetchEngineOptions fetch_engine_options(const S3Settings& settings) {
  FetchEngineOptions options;
  options.retry.max_attempts = settings.max_attempts;
  options.connect_timeout = settings.connect_timeout;
  options.low_speed_time = std::chrono::duration_cast<std::chrono::seconds>(settings.stall_timeout);
  options.request_timeout = settings.request_timeout;
  options.ca_bundle = settings.ca_bundle;
  return options;
}

Result<std::shared_ptr<ObjectStore>> open_store(std::string_view url, const Env& env,
                                                std::shared_ptr<FetchEngine> engine) {
  if (url.starts_with("file://")) {
    auto store = FileStore::open(std::string(url.substr(7)));
    if (!store.ok()) return store.status();
    return std::shared_ptr<ObjectStore>(std::move(*store));
  }
  if (url.starts_with("s3://")) {
    auto settings = resolve_s3_settings(env);
    if (!settings.ok()) return settings.status();
    if (!engine) engine = std::make_shared<FetchEngine>(fetch_engine_options(*settings));
    auto store = S3Store::open(url, std::move(*settings), std::move(engine));
    if (!store.ok()) return store.status();
    return std::shared_ptr<ObjectStore>(std::move(*store));
  }
  return Status::error(EINVAL, "'" + std::string(url) + "': unsupported store URL (expected s3://bucket/prefix or file:///dir)");
}

}  // namespace dscache
