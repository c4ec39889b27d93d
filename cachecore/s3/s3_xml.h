// The S3 XML documents dscache reads: ListObjectsV2 results and error bodies.
// Parsed with pugixml; anything malformed is an error, never a guess.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/object_store.h"

namespace dscache {

struct S3Error {
  std::string code;        // "NoSuchKey"
  std::string message;
  std::string request_id;
  std::string bucket_name;
  std::string region;      // AuthorizationHeaderMalformed / PermanentRedirect hints
  std::string endpoint;    // PermanentRedirect
};

// nullopt when `body` is not an <Error> document (empty, HTML from a proxy, ...).
std::optional<S3Error> parse_s3_error(std::string_view body);

// A ListBucketResult page. Keys must start with `root_prefix`, which is
// removed; with <EncodingType>url</EncodingType> keys and prefixes are decoded.
Result<ListPage> parse_list_objects_v2(std::string_view body, std::string_view root_prefix);

}  // namespace dscache
