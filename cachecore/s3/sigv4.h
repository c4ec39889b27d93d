// AWS Signature Version 4 for S3, as AWS specifies it: one URI encoding pass
// per path segment with no normalisation, a sorted and encoded query, and
// lower-case sorted signed headers.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dscache {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only
};

// RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) stay; every other byte
// becomes %XX with upper-case hex. '/' stays unless encode_slash.
std::string uri_encode(std::string_view text, bool encode_slash);
// The inverse. With plus_is_space, '+' decodes to ' ' (S3's encoding-type=url
// output, which always writes a literal '+' as %2B). nullopt on a bad escape.
std::optional<std::string> uri_decode(std::string_view text, bool plus_is_space);

struct QueryParam {
  std::string name;
  std::string value;
};
// "a=1&b=x%2Fy": names and values encoded (including '/'), sorted by name then
// value. The same string is the canonical query and the query on the wire.
std::string canonical_query_string(std::vector<QueryParam> params);

struct SigningInput {
  std::string_view method;
  std::string_view canonical_uri;    // the encoded path, exactly as sent
  std::string_view canonical_query;  // exactly as sent
  // Every header to sign (host, x-amz-date, x-amz-content-sha256 included); any case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::time_t time = 0;
  std::string_view region;
  std::string_view service = "s3";
};

struct SigningOutput {
  std::string authorization;  // the Authorization header's value
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
};

SigningOutput sign_v4(const Credentials& credentials, const SigningInput& input);

// The hex SHA-256 of an empty body.
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

}  // namespace dscache
