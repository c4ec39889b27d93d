// Timestamps as object stores write them, converted to nanoseconds since the
// Unix epoch (the unit of st_mtim).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace dscache {

// "2009-10-12T17:50:30.000Z" (ListObjectsV2 LastModified). Fraction optional.
std::optional<int64_t> parse_iso8601_ns(std::string_view text);
// "Wed, 12 Oct 2009 17:50:00 GMT" (the Last-Modified header, RFC 7231 IMF-fixdate).
std::optional<int64_t> parse_http_date_ns(std::string_view text);
// x-amz-meta-mtime as rclone ("1598025012.123456789") and s3fs ("1598025012") write it.
std::optional<int64_t> parse_epoch_seconds_ns(std::string_view text);

// "20130524T000000Z" and "20130524", the forms SigV4 signs.
std::string format_amz_date(std::time_t t);
std::string format_amz_day(std::time_t t);

}  // namespace dscache
