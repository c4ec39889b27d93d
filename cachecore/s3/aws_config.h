// Where S3 credentials, region and endpoint come from: the AWS CLI's rules for
// environment variables and the shared ~/.aws/credentials and ~/.aws/config
// files, plus dscache's explicit anonymous mode for public buckets.
#pragma once

#include <map>
#include <chrono>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "s3/sigv4.h"

namespace dscache {

// An INI file as the AWS CLI reads it: [section] headers, key = value lines,
// '#' and ';' comments, and indented "sub-section" lines under a "key =" line
// (s3 =\n  addressing_style = path), stored as "s3.addressing_style".
class IniFile {
 public:
  using Section = std::map<std::string, std::string, std::less<>>;

  static Result<IniFile> parse(std::string_view text, std::string_view file_name);
  // A missing file is an empty IniFile; an unreadable or malformed one is an error.
  static Result<IniFile> load(const std::string& path);

  const Section* section(std::string_view name) const;

 private:
  std::map<std::string, Section, std::less<>> sections_;
};

enum class AddressingStyle : uint8_t { automatic, path, virtual_hosted };

struct S3Settings {
  // "scheme://host[:port][/base]" without a trailing slash; empty for AWS,
  // whose regional endpoint follows from the region.
  std::string endpoint;
  std::string region = "us-east-1";
  Credentials credentials;
  bool anonymous = false;  // send unsigned requests (public buckets)
  AddressingStyle addressing = AddressingStyle::automatic;
  std::string ca_bundle;  // AWS_CA_BUNDLE or the profile's ca_bundle
  int max_attempts = 5;   // per request, AWS_MAX_ATTEMPTS or the profile's max_attempts
  // Bounds on waiting for the store (README): DSCACHE_CONNECT_TIMEOUT,
  // DSCACHE_STALL_TIMEOUT (no byte for this long: cut, retried),
  // DSCACHE_REQUEST_TIMEOUT (one request's retries without progress).
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds stall_timeout{20'000};
  std::chrono::milliseconds request_timeout{60'000};
  // Where the credentials came from, for messages ("environment", "profile 'x' in
  // /root/.aws/credentials"); never the credentials themselves.
  std::string credentials_source;
};

// Resolves settings in the AWS CLI's order: environment, then the profile
// (AWS_PROFILE, else "default") in the credentials file, then in the config file.
// Every malformed value is an error naming the variable or file.
Result<S3Settings> resolve_s3_settings(const Env& env);

// Checks "scheme://host[:port][/path]" and returns it without a trailing slash.
Result<std::string> normalize_endpoint(std::string_view url, std::string_view source);

}  // namespace dscache
