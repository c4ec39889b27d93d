#include "s3/s3_endpoint.h"

#include <cctype>

#include "common/log.h"
#include "common/time_format.h"

namespace dscache {
namespace {

// Bucket names that can be a DNS label without breaking a TLS wildcard:
// lower-case letters, digits and '-', no dots.
bool dns_compatible(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
      return false;
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

bool choose_path_style(const S3Settings& settings, std::string_view bucket) {
  switch (settings.addressing) {
    case AddressingStyle::path: return true;
    case AddressingStyle::virtual_hosted: return false;
    case AddressingStyle::automatic: break;
  }
  // Custom endpoints (MinIO, Ceph RGW, on-prem appliances) rarely have
  // wildcard DNS for buckets; AWS wants virtual-hosted where the name allows.
  return !settings.endpoint.empty() || !dns_compatible(bucket);
}

}  // namespace

Result<S3Location> parse_s3_url(std::string_view url) {
  if (!url.starts_with("s3://")) return Status::error(EINVAL, "'" + std::string(url) + "': expected s3://bucket[/prefix]");
  std::string_view rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Location location;
  location.bucket = std::string(rest.substr(0, slash));
  if (location.bucket.empty()) return Status::error(EINVAL, "'" + std::string(url) + "': no bucket name");
  for (char c : location.bucket) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return Status::error(EINVAL, "'" + std::string(url) + "': bucket name '" + location.bucket +
                                       "' has characters S3 does not allow");
    }
  }
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash + 1);
    while (prefix.starts_with('/')) prefix.remove_prefix(1);
    location.prefix = std::string(prefix);
    if (!location.prefix.empty() && location.prefix.back() != '/') location.prefix.push_back('/');
  }
  return location;
}

S3Endpoint::S3Endpoint(S3Settings settings, std::string bucket)
    : settings_(std::move(settings)),
      bucket_(std::move(bucket)),
      path_style_(choose_path_style(settings_, bucket_)),
      region_(settings_.region) {}

std::string S3Endpoint::region() const {
  std::lock_guard lock(mutex_);
  return region_;
}

std::string S3Endpoint::base_url_locked() const {
  if (!settings_.endpoint.empty()) return settings_.endpoint;
  std::string domain = region_.starts_with("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return "https://s3." + region_ + "." + domain;
}

std::string S3Endpoint::endpoint_url() const {
  std::lock_guard lock(mutex_);
  return base_url_locked();
}

void S3Endpoint::adopt_region(std::string_view region) const {
  std::lock_guard lock(mutex_);
  if (region.empty() || region == region_) return;
  DSCACHE_LOG(warn, "bucket '%s' is in region %.*s, not %s: using %.*s from now on", bucket_.c_str(),
              static_cast<int>(region.size()), region.data(), region_.c_str(), static_cast<int>(region.size()),
              region.data());
  region_ = std::string(region);
}

void S3Endpoint::adopt_server_time(std::time_t server_now) const {
  int64_t offset = static_cast<int64_t>(server_now) - static_cast<int64_t>(std::time(nullptr));
  if (clock_offset_.exchange(offset) == offset) return;
  DSCACHE_LOG(warn, "this machine's clock is %lld s off the store's: signing with the store's time",
              static_cast<long long>(offset));
}

HttpRequest S3Endpoint::make_request(std::string_view method, std::string_view key,
                                     const std::vector<QueryParam>& query, const Headers& extra_headers,
                                     std::string_view payload_hash, std::string* signed_region,
                                     std::time_t* signed_time) const {
  std::string base, region;
  {
    std::lock_guard lock(mutex_);
    base = base_url_locked();
    region = region_;
  }
  if (signed_region != nullptr) *signed_region = region;
  size_t scheme_end = base.find("://") + 3;
  size_t path_start = base.find('/', scheme_end);
  std::string scheme = base.substr(0, scheme_end);
  std::string authority = base.substr(scheme_end, path_start == std::string::npos ? std::string::npos : path_start - scheme_end);
  std::string base_path = path_start == std::string::npos ? "" : base.substr(path_start);

  std::string path = base_path;
  std::string host = authority;
  if (path_style_) {
    path += "/" + uri_encode(bucket_, true);
    if (!key.empty()) path += "/" + uri_encode(key, false);
  } else {
    host = bucket_ + "." + authority;
    path += "/" + uri_encode(key, false);
  }
  std::string query_string = canonical_query_string(query);

  HttpRequest request;
  request.method = std::string(method);
  request.url = scheme + host + path + (query_string.empty() ? "" : "?" + query_string);

  Headers headers = extra_headers;
  headers.emplace_back("Host", host);
  const std::time_t now = std::time(nullptr) + clock_offset_.load(std::memory_order_relaxed);
  if (signed_time != nullptr) *signed_time = now;
  if (!settings_.anonymous) {
    headers.emplace_back("x-amz-date", format_amz_date(now));
    headers.emplace_back("x-amz-content-sha256", std::string(payload_hash));
    if (!settings_.credentials.session_token.empty()) {
      headers.emplace_back("x-amz-security-token", settings_.credentials.session_token);
    }
    SigningInput input;
    input.method = method;
    input.canonical_uri = path;
    input.canonical_query = query_string;
    input.headers = headers;
    input.payload_hash = payload_hash;
    input.time = now;
    input.region = region;
    headers.emplace_back("Authorization", sign_v4(settings_.credentials, input).authorization);
  }
  for (const auto& [name, value] : headers) {
    // curl drops "Name: " with an empty value; "Name;" sends it empty.
    request.headers.push_back(value.empty() ? name + ";" : name + ": " + value);
  }
  // curl adds "Accept: */*" and, for uploads, "Expect: 100-continue": neither is wanted.
  request.headers.emplace_back("Accept:");
  request.headers.emplace_back("Expect:");
  return request;
}

}  // namespace dscache
