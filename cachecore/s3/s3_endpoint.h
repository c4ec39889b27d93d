// S3Endpoint: how requests for one bucket are addressed and signed: the
// endpoint, path-style or virtual-hosted addressing, the signing region (which
// a redirect may correct) and the clock (which a skew error may correct).
#pragma once

#include <atomic>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "http/fetch_engine.h"
#include "s3/aws_config.h"
#include "s3/sigv4.h"

namespace dscache {

// s3://bucket/prefix: prefix is empty or ends with '/'.
struct S3Location {
  std::string bucket;
  std::string prefix;
};

Result<S3Location> parse_s3_url(std::string_view url);

class S3Endpoint {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  S3Endpoint(S3Settings settings, std::string bucket);

  // A signed request for `key` (a full key in the bucket; empty for the bucket
  // itself). `payload_hash` is the hex SHA-256 of the body, or UNSIGNED-PAYLOAD.
  // `signed_region` and `signed_time`, if given, receive the region and the
  // clock the request was signed with.
  HttpRequest make_request(std::string_view method, std::string_view key, const std::vector<QueryParam>& query,
                           const Headers& extra_headers, std::string_view payload_hash,
                           std::string* signed_region = nullptr, std::time_t* signed_time = nullptr) const;

  const S3Settings& settings() const { return settings_; }
  const std::string& bucket() const { return bucket_; }
  bool path_style() const { return path_style_; }
  std::string region() const;
  // "http://127.0.0.1:7480" or "https://s3.eu-west-1.amazonaws.com", for messages.
  std::string endpoint_url() const;

  // Switches to the region the store says the bucket lives in (logged once).
  void adopt_region(std::string_view region) const;
  // Corrects the signing clock by the server's Date after a skew error.
  void adopt_server_time(std::time_t server_now) const;

 private:
  std::string base_url_locked() const;

  const S3Settings settings_;
  const std::string bucket_;
  const bool path_style_;
  mutable std::mutex mutex_;
  mutable std::string region_;  // learnt state: const callers may correct it
  mutable std::atomic<int64_t> clock_offset_{0};
};

}  // namespace dscache
