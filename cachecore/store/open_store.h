// Opens the store a mount URL names: s3://bucket[/prefix] or file:///dir.
#pragma once

#include <memory>
#include <string_view>

#include "common/env.h"
#include "http/fetch_engine.h"
#include "s3/aws_config.h"
#include "store/object_store.h"

namespace dscache {

// The fetch engine settings that follow from the S3 settings (retries, CA file).
FetchEngineOptions fetch_engine_options(const S3Settings& settings);

// `engine` serves s3:// URLs; it may be null for file:// URLs. S3 settings
// (credentials, region, endpoint) are resolved from `env`.
Result<std::shared_ptr<ObjectStore>> open_store(std::string_view url, const Env& env,
                                                std::shared_ptr<FetchEngine> engine);

}  // namespace dscache
