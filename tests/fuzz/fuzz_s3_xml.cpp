// libFuzzer target: the S3 XML parsers (s3/s3_xml.h), which read bytes an
// object store (or a proxy in front of it) sends.
//
// Input: the first line is the root prefix the listing was requested under,
// the rest is the response body (a ListBucketResult or an Error document).
// Both parsers see the body; parse_s3_error also sees the whole input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "s3/s3_xml.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view root_prefix = newline == std::string_view::npos ? std::string_view{} : input.substr(0, newline);
  // A copy of exactly the body's size: ASan sees any read past its end.
  const std::string body(newline == std::string_view::npos ? input : input.substr(newline + 1));

  auto page = dscache::parse_list_objects_v2(body, root_prefix);
  if (page.ok()) {
    // A truncated page always names where the next one starts.
    check(!page->truncated || !page->next_continuation.empty());
    for (const auto& object : page->objects) {
      check(object.etag.size() < 2 || object.etag.front() != '"' || object.etag.back() != '"');
      check(!object.meta_mtime_ns.has_value());
    }
  } else {
    check(page.status().code() != 0);
  }

  if (auto error = dscache::parse_s3_error(body)) {
    check(!body.empty());
  }
  (void)dscache::parse_s3_error(input);
  return 0;
}
