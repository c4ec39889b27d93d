#include <doctest/doctest.h>

#include "common/time_format.h"

using namespace dscache;

TEST_CASE("ISO 8601 timestamps from ListObjectsV2") {
  CHECK(parse_iso8601_ns("2009-10-12T17:50:30.000Z") == int64_t{1255369830} * 1'000'000'000);
  CHECK(parse_iso8601_ns("2009-10-12T17:50:30Z") == int64_t{1255369830} * 1'000'000'000);
  CHECK(parse_iso8601_ns("2009-10-12T17:50:30.5Z") == int64_t{1255369830} * 1'000'000'000 + 500'000'000);
  CHECK(parse_iso8601_ns("2009-10-12T17:50:30.123456789Z") == int64_t{1255369830} * 1'000'000'000 + 123'456'789);
  CHECK_FALSE(parse_iso8601_ns(""));
  CHECK_FALSE(parse_iso8601_ns("2009-10-12 17:50:30Z"));
  CHECK_FALSE(parse_iso8601_ns("2009-13-12T17:50:30Z"));
  CHECK_FALSE(parse_iso8601_ns("2009-10-12T17:50:30.Z"));
  CHECK_FALSE(parse_iso8601_ns("2009-10-12T17:50:30+01:00"));
}

TEST_CASE("timestamps beyond what int64 nanoseconds hold are refused, not overflowed (found by fuzz_s3_xml)") {
  CHECK(parse_iso8601_ns("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_iso8601_ns("1969-12-31T23:59:59.5Z") == -500'000'000);
  CHECK(parse_iso8601_ns("1678-01-01T00:00:00Z") == int64_t{-9214560000} * 1'000'000'000);
  CHECK(parse_iso8601_ns("2262-04-11T00:00:00Z") == int64_t{9223286400} * 1'000'000'000);
  CHECK_FALSE(parse_iso8601_ns("1012-03-11T09:12:44.000Z"));
  CHECK_FALSE(parse_iso8601_ns("0001-01-01T00:00:00Z"));
  CHECK_FALSE(parse_iso8601_ns("2263-01-01T00:00:00Z"));
  CHECK_FALSE(parse_iso8601_ns("9999-12-31T23:59:59.999999999Z"));
  CHECK_FALSE(parse_iso8601_ns("-999-01-01T00:00:00Z"));
  CHECK_FALSE(parse_http_date_ns("Fri, 31 Dec 9999 23:59:59 GMT"));
  CHECK_FALSE(parse_http_date_ns("Mon, 01 Jan 0001 00:00:00 GMT"));
}

TEST_CASE("HTTP dates from Last-Modified") {
  CHECK(parse_http_date_ns("Mon, 12 Oct 2009 17:50:30 GMT") == int64_t{1255369830} * 1'000'000'000);
  CHECK(parse_http_date_ns("Sun, 06 Nov 1994 08:49:37 GMT") == int64_t{784111777} * 1'000'000'000);
  CHECK_FALSE(parse_http_date_ns("Sun, 06 Foo 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date_ns("Sunday, 06-Nov-94 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date_ns(""));
}

TEST_CASE("x-amz-meta-mtime as rclone and s3fs write it") {
  CHECK(parse_epoch_seconds_ns("1598025012") == int64_t{1598025012} * 1'000'000'000);
  CHECK(parse_epoch_seconds_ns("1598025012.5") == int64_t{1598025012} * 1'000'000'000 + 500'000'000);
  CHECK(parse_epoch_seconds_ns("1598025012.123456789") == int64_t{1598025012} * 1'000'000'000 + 123'456'789);
  CHECK_FALSE(parse_epoch_seconds_ns("-5"));
  CHECK_FALSE(parse_epoch_seconds_ns("12ab"));
  CHECK_FALSE(parse_epoch_seconds_ns("1598025012."));
  CHECK_FALSE(parse_epoch_seconds_ns(""));
  CHECK_FALSE(parse_epoch_seconds_ns("99999999999999"));
}

TEST_CASE("SigV4 dates") {
  CHECK(format_amz_date(1369353600) == "20130524T000000Z");
  CHECK(format_amz_day(1369353600) == "20130524");
}
