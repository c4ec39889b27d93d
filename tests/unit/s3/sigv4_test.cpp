// Signing vectors: AWS's worked examples from "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk (AWS Signature
// Version 4)" in the Amazon S3 API reference.
#include <doctest/doctest.h>

#include "s3/crypto.h"
#include "s3/sigv4.h"

using namespace dscache;

namespace {

const Credentials kExampleCredentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr std::time_t k20130524 = 1369353600;

}  // namespace

TEST_CASE("AWS example: GET object with Range") {
  SigningInput in;
  in.method = "GET";
  in.canonical_uri = "/test.txt";
  in.canonical_query = "";
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Range", "bytes=0-9"},
                {"x-amz-content-sha256", std::string(kEmptyPayloadHash)},
                {"x-amz-date", "20130524T000000Z"}};
  in.payload_hash = kEmptyPayloadHash;
  in.time = k20130524;
  in.region = "us-east-1";
  SigningOutput out = sign_v4(kExampleCredentials, in);
  CHECK(out.canonical_request ==
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(out.string_to_sign ==
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK(out.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  CHECK(out.authorization ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("AWS example: PUT object (signed payload, '$' in the key, Date header)") {
  const std::string payload = "Welcome to Amazon S3.";
  const std::string payload_hash = to_hex(sha256(payload));
  CHECK(payload_hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigningInput in;
  in.method = "PUT";
  std::string uri = "/" + uri_encode("test$file.text", false);
  CHECK(uri == "/test%24file.text");
  in.canonical_uri = uri;
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                {"x-amz-content-sha256", payload_hash}};
  in.payload_hash = payload_hash;
  in.time = k20130524;
  in.region = "us-east-1";
  SigningOutput out = sign_v4(kExampleCredentials, in);
  CHECK(out.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST_CASE("AWS example: GET bucket lifecycle (query without a value)") {
  SigningInput in;
  in.method = "GET";
  in.canonical_uri = "/";
  std::string query = canonical_query_string({{"lifecycle", ""}});
  CHECK(query == "lifecycle=");
  in.canonical_query = query;
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-content-sha256", std::string(kEmptyPayloadHash)}};
  in.payload_hash = kEmptyPayloadHash;
  in.time = k20130524;
  in.region = "us-east-1";
  CHECK(sign_v4(kExampleCredentials, in).signature ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("AWS example: list objects (sorted query)") {
  SigningInput in;
  in.method = "GET";
  in.canonical_uri = "/";
  std::string query = canonical_query_string({{"prefix", "J"}, {"max-keys", "2"}});
  CHECK(query == "max-keys=2&prefix=J");
  in.canonical_query = query;
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"x-amz-date", "20130524T000000Z"},
                {"x-amz-content-sha256", std::string(kEmptyPayloadHash)}};
  in.payload_hash = kEmptyPayloadHash;
  in.time = k20130524;
  in.region = "us-east-1";
  CHECK(sign_v4(kExampleCredentials, in).signature ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("header values are trimmed, runs of spaces collapse, names sort case-insensitively") {
  SigningInput a, b;
  for (SigningInput* in : {&a, &b}) {
    in->method = "GET";
    in->canonical_uri = "/k";
    in->payload_hash = kUnsignedPayload;
    in->time = k20130524;
    in->region = "eu-west-1";
  }
  a.headers = {{"Host", "h"}, {"X-Amz-Meta-A", "  one   two  "}};
  b.headers = {{"x-amz-meta-a", "one two"}, {"host", "h"}};
  SigningOutput sa = sign_v4(kExampleCredentials, a), sb = sign_v4(kExampleCredentials, b);
  CHECK(sa.canonical_request == sb.canonical_request);
  CHECK(sa.signature == sb.signature);
  CHECK(sa.canonical_request.find("x-amz-meta-a:one two\n") != std::string::npos);
  CHECK(sa.authorization.find("/eu-west-1/s3/aws4_request") != std::string::npos);
}

TEST_CASE("session tokens are signed like any header and never leak into the Authorization value") {
  SigningInput in;
  in.method = "GET";
  in.canonical_uri = "/k";
  in.payload_hash = kUnsignedPayload;
  in.time = k20130524;
  in.region = "us-east-1";
  in.headers = {{"host", "h"}, {"x-amz-security-token", "TOKEN"}};
  SigningOutput out = sign_v4(Credentials{"AKID", "SECRET", "TOKEN"}, in);
  CHECK(out.authorization.find("SignedHeaders=host;x-amz-security-token,") != std::string::npos);
  CHECK(out.authorization.find("SECRET") == std::string::npos);
  CHECK(out.authorization.find("TOKEN") == std::string::npos);
}

TEST_CASE("URI encoding of keys: one pass per segment, no normalisation") {
  CHECK(uri_encode("a b", false) == "a%20b");
  CHECK(uri_encode("a+b=c%d~e#f", false) == "a%2Bb%3Dc%25d~e%23f");
  CHECK(uri_encode("dir//x", false) == "dir//x");
  CHECK(uri_encode("dir/./x/../y", false) == "dir/./x/../y");
  CHECK(uri_encode("a/b", true) == "a%2Fb");
  CHECK(uri_encode("\xc3\xbc/\xc3\xb1.txt", false) == "%C3%BC/%C3%B1.txt");
  CHECK(uri_encode("-._~AZaz09", true) == "-._~AZaz09");
  CHECK(uri_encode("*'()!$&,;:@?", false) == "%2A%27%28%29%21%24%26%2C%3B%3A%40%3F");
  CHECK(uri_encode(std::string("\x01\x7f\xff", 3), false) == "%01%7F%FF");
}

TEST_CASE("query strings encode '/' and sort by encoded name") {
  CHECK(canonical_query_string({{"prefix", "a b/c"}, {"delimiter", "/"}, {"list-type", "2"}}) ==
        "delimiter=%2F&list-type=2&prefix=a%20b%2Fc");
  CHECK(canonical_query_string({{"continuation-token", "1+x/y=="}}) == "continuation-token=1%2Bx%2Fy%3D%3D");
  CHECK(canonical_query_string({}).empty());
}

TEST_CASE("URL decoding of listing keys") {
  CHECK(uri_decode("a%20b%2Bc", true) == std::optional<std::string>("a b+c"));
  CHECK(uri_decode("a+b", true) == std::optional<std::string>("a b"));
  CHECK(uri_decode("a+b", false) == std::optional<std::string>("a+b"));
  CHECK(uri_decode("%C3%BC", true) == std::optional<std::string>("\xc3\xbc"));
  CHECK(uri_decode("%c3%bc", true) == std::optional<std::string>("\xc3\xbc"));
  CHECK_FALSE(uri_decode("%", true));
  CHECK_FALSE(uri_decode("%2", true));
  CHECK_FALSE(uri_decode("%zz", true));
  CHECK(uri_decode(uri_encode("x/y z+%#\x01", true), true) == std::optional<std::string>("x/y z+%#\x01"));
}
