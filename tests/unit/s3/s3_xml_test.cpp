#include <doctest/doctest.h>

#include "s3/s3_xml.h"

using namespace dscache;

namespace {

constexpr const char* kPage = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>data%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>
  <Delimiter>%2F</Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents><Key>data%2Fa+b%2Bc.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>data%2F%C3%BC%23%25</Key><LastModified>2020-01-01T00:00:00Z</LastModified>
    <ETag>"0123-2"</ETag><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>data%2Fsub%2F</Prefix></CommonPrefixes>
</ListBucketResult>)";

}  // namespace

TEST_CASE("a ListObjectsV2 page with url encoding, entities and a continuation token") {
  auto page = parse_list_objects_v2(kPage, "data/");
  REQUIRE(page.ok());
  CHECK(page->truncated);
  CHECK(page->next_continuation == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  REQUIRE(page->objects.size() == 2);
  CHECK(page->objects[0].key == "a b+c.jpg");
  CHECK(page->objects[0].size == 434234);
  CHECK(page->objects[0].etag == "fba9dede5f27731c9771645a39863328");
  CHECK(page->objects[0].last_modified_ns == int64_t{1255369830} * 1'000'000'000);
  CHECK_FALSE(page->objects[0].meta_mtime_ns);
  CHECK(page->objects[1].key == "\xc3\xbc#%");
  CHECK(page->objects[1].etag == "0123-2");
  REQUIRE(page->common_prefixes.size() == 1);
  CHECK(page->common_prefixes[0] == "sub/");
}

TEST_CASE("without EncodingType keys are taken literally") {
  auto page = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a+b%20c</Key>"
      "<LastModified>2020-01-01T00:00:00Z</LastModified><ETag>x</ETag><Size>1</Size></Contents></ListBucketResult>",
      "");
  REQUIRE(page.ok());
  CHECK(page->objects.at(0).key == "a+b%20c");
  CHECK_FALSE(page->truncated);
  CHECK(page->next_continuation.empty());
}

TEST_CASE("an empty listing") {
  auto page = parse_list_objects_v2("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>", "x/");
  REQUIRE(page.ok());
  CHECK(page->objects.empty());
  CHECK(page->common_prefixes.empty());
}

TEST_CASE("malformed listings are errors, not guesses") {
  const char* bad[] = {
      "",
      "not xml at all",
      "<ListBucketResult><IsTruncated>false</IsTruncated>",  // truncated document
      "<Other/>",
      "<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>",  // no IsTruncated
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",    // no token
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key><Size>-1</Size>"
      "<LastModified>2020-01-01T00:00:00Z</LastModified></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key><Size>1</Size>"
      "<LastModified>yesterday</LastModified></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>false</IsTruncated><EncodingType>url</EncodingType><Contents><Key>%zz</Key>"
      "<Size>1</Size><LastModified>2020-01-01T00:00:00Z</LastModified></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
      // A LastModified beyond int64 nanoseconds (fuzz_s3_xml: a signed overflow before).
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key><Size>1</Size>"
      "<LastModified>1012-03-11T09:12:44.000Z</LastModified></Contents></ListBucketResult>",
  };
  for (const char* body : bad) {
    auto page = parse_list_objects_v2(body, "");
    CHECK_MESSAGE(!page.ok(), body);
    if (!page.ok()) {
      CHECK(page.status().code() == EIO);
      CHECK(page.status().message().find("malformed ListObjectsV2 response") != std::string::npos);
    }
  }
}

TEST_CASE("keys outside the requested prefix are refused") {
  auto page = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>other/a</Key><Size>1</Size>"
      "<LastModified>2020-01-01T00:00:00Z</LastModified></Contents></ListBucketResult>",
      "data/");
  CHECK_FALSE(page.ok());
}

TEST_CASE("S3 error documents") {
  auto e = parse_s3_error(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The bucket does not exist</Message>"
      "<BucketName>nob</BucketName><RequestId>RID</RequestId></Error>");
  REQUIRE(e);
  CHECK(e->code == "NoSuchBucket");
  CHECK(e->bucket_name == "nob");
  CHECK(e->request_id == "RID");
  auto redirect = parse_s3_error(
      "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>");
  REQUIRE(redirect);
  CHECK(redirect->region == "eu-west-1");
  CHECK_FALSE(parse_s3_error(""));
  CHECK_FALSE(parse_s3_error("<html><body>502 Bad Gateway</body></html>"));
  CHECK_FALSE(parse_s3_error("<Error><Code>Trunc"));
}
