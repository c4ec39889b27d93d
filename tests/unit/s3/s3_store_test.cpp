// S3Store and FetchEngine against a scripted HTTP server: retries, resumes,
// redirects, parallel parts, version checks and keep-alive, each forced
// deterministically. (The same paths run against a real radosgw in
// tests/integration.)
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "http/fetch_engine.h"
#include "s3/s3_store.h"
#include "support/http_test_server.h"

using namespace dscache;
using dscache::test::HttpTestServer;
using dscache::test::TestRequest;
using dscache::test::TestResponse;

namespace {

std::string pattern(size_t n, int seed = 1) {
  std::string s(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(seed);
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// Answers GET/HEAD for one object the way S3 does: Range (a-b, a-, -n),
// If-Match, 416 past the end.
TestResponse serve_object(const TestRequest& req, const std::string& bytes, const std::string& etag = "etag1",
                          bool hide_size = false) {
  TestResponse r;
  r.headers = {{"ETag", "\"" + etag + "\""},
               {"Last-Modified", "Mon, 12 Oct 2009 17:50:30 GMT"},
               {"x-amz-meta-mtime", "1598025012.5"},
               {"x-amz-request-id", "rid"}};
  std::string if_match = req.header("if-match");
  if (!if_match.empty() && if_match != "\"" + etag + "\"") return TestResponse::s3_error(412, "PreconditionFailed");
  std::string range = req.header("range");
  const uint64_t size = bytes.size();
  if (range.empty()) {
    r.body = bytes;
    return r;
  }
  REQUIRE(range.rfind("bytes=", 0) == 0);
  std::string spec = range.substr(6);
  size_t dash = spec.find('-');
  uint64_t first, last;
  if (dash == 0) {
    uint64_t n = std::stoull(spec.substr(1));
    first = size - std::min(n, size);
    last = size - 1;
  } else {
    first = std::stoull(spec.substr(0, dash));
    last = dash + 1 < spec.size() ? std::stoull(spec.substr(dash + 1)) : size - 1;
  }
  if (first >= size) return TestResponse::s3_error(416, "InvalidRange");
  last = std::min(last, size - 1);
  r.status = 206;
  r.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                             (hide_size ? "*" : std::to_string(size)));
  r.body = bytes.substr(first, last - first + 1);
  return r;
}

struct Fixture {
  explicit Fixture(HttpTestServer::Handler handler, S3StoreOptions options = {}, FetchEngineOptions engine_options = {},
                   std::string url = "s3://bucket/root")
      : server(std::move(handler)) {
    settings.endpoint = server.url();
    settings.credentials = {"AKIDTEST", "SUPERSECRETKEY", "SESSIONTOKENSECRET"};
    settings.credentials_source = "test";
    engine_options.retry.base_delay = std::chrono::milliseconds(1);
    engine_options.retry.max_delay = std::chrono::milliseconds(5);
    engine = std::make_shared<FetchEngine>(engine_options);
    auto opened = S3Store::open(url, settings, engine, options);
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }

  std::string read_all(const std::string& key, uint64_t size, Status* error = nullptr) {
    std::string buf(size, '\0');
    auto r = store->read(key, 0, std::as_writable_bytes(std::span(buf)));
    if (error) *error = r.ok() ? Status() : r.status();
    if (!r.ok()) return {};
    buf.resize(r->length);
    return buf;
  }

  HttpTestServer server;
  S3Settings settings;
  std::shared_ptr<FetchEngine> engine;
  std::unique_ptr<S3Store> store;
};

}  // namespace

TEST_CASE("requests are path-style, signed, and carry the session token") {
  const std::string data = pattern(100);
  Fixture f([&](const TestRequest& req) { return serve_object(req, data); });
  CHECK(f.read_all("dir/a b+c", 100) == data);
  auto reqs = f.server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].target == "/bucket/root/dir/a%20b%2Bc");
  CHECK(reqs[0].header("host") == "127.0.0.1:" + std::to_string(f.server.port()));
  CHECK(reqs[0].header("authorization").rfind("AWS4-HMAC-SHA256 Credential=AKIDTEST/", 0) == 0);
  CHECK(reqs[0].header("x-amz-security-token") == "SESSIONTOKENSECRET");
  CHECK(reqs[0].header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD");
  CHECK(reqs[0].header("range") == "bytes=0-99");
  CHECK(reqs[0].header("accept").empty());
}

TEST_CASE("HEAD gives size, ETag, Last-Modified and x-amz-meta-mtime") {
  Fixture f([&](const TestRequest& req) {
    TestResponse r = serve_object(req, "0123456789");
    if (req.method == "HEAD") r.headers.emplace_back("Content-Length-Ignored", "x");
    return r;
  });
  auto info = f.store->head("k");
  REQUIRE(info.ok());
  CHECK(info->size == 10);
  CHECK(info->etag == "etag1");
  CHECK(info->last_modified_ns == int64_t{1255369830} * 1'000'000'000);
  CHECK(info->meta_mtime_ns == int64_t{1598025012} * 1'000'000'000 + 500'000'000);
  CHECK(f.server.requests().at(0).method == "HEAD");
}

TEST_CASE("anonymous mode sends no credentials at all") {
  Fixture f([&](const TestRequest& req) { return serve_object(req, "x"); });
  S3Settings anonymous = f.settings;
  anonymous.anonymous = true;
  anonymous.credentials = {};
  auto store = S3Store::open("s3://bucket", anonymous, f.engine);
  REQUIRE(store.ok());
  std::string buf(1, '\0');
  REQUIRE((*store)->read("k", 0, std::as_writable_bytes(std::span(buf))).ok());
  auto req = f.server.requests().at(0);
  CHECK(req.header("authorization").empty());
  CHECK(req.header("x-amz-date").empty());
}

TEST_CASE("virtual-hosted addressing puts the bucket in the Host header") {
  Fixture f([&](const TestRequest& req) { return serve_object(req, "abc"); });
  S3Settings settings = f.settings;
  settings.addressing = AddressingStyle::virtual_hosted;
  auto store = S3Store::open("s3://bucket/p", settings, f.engine);
  REQUIRE(store.ok());
  // curl connects to the Host name only if it resolves; ours is a header on a
  // connection to 127.0.0.1, which is what virtual-hosted means on the wire.
  CHECK((*store)->endpoint().path_style() == false);
  auto request = (*store)->endpoint().make_request("GET", "p/k", {}, {}, kUnsignedPayload);
  CHECK(request.url == "http://bucket.127.0.0.1:" + std::to_string(f.server.port()) + "/p/k");
  S3Settings aws = f.settings;
  aws.endpoint.clear();
  aws.region = "eu-west-1";
  S3Endpoint vhost(aws, "my-bucket");
  CHECK(vhost.make_request("GET", "k", {}, {}, kUnsignedPayload).url == "https://my-bucket.s3.eu-west-1.amazonaws.com/k");
  S3Endpoint dotted(aws, "my.bucket");
  CHECK(dotted.make_request("GET", "k", {}, {}, kUnsignedPayload).url ==
        "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
}

TEST_CASE("503 SlowDown bursts are retried to the right bytes") {
  const std::string data = pattern(10000);
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest& req) {
    if (calls++ < 3) return TestResponse::s3_error(503, "SlowDown");
    return serve_object(req, data);
  });
  CHECK(f.read_all("k", data.size()) == data);
  CHECK(calls == 4);
  CHECK(f.engine->stats().retries == 3);
}

TEST_CASE("a connection reset before the response is retried") {
  const std::string data = pattern(1000);
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest& req) {
    if (calls++ == 0) {
      TestResponse r;
      r.fault = TestResponse::Fault::reset_before_response;
      return r;
    }
    return serve_object(req, data);
  });
  CHECK(f.read_all("k", data.size()) == data);
  CHECK(calls == 2);
}

TEST_CASE("a body cut mid-way resumes from the bytes already received") {
  const std::string data = pattern(300000);
  for (auto fault : {TestResponse::Fault::reset_after_body, TestResponse::Fault::close_after_body}) {
    std::atomic<int> calls{0};
    Fixture f([&](const TestRequest& req) {
      TestResponse r = serve_object(req, data);
      if (calls++ < 2) {
        r.fault = fault;
        r.fault_after = 70000;
      }
      return r;
    });
    CHECK(f.read_all("k", data.size()) == data);
    auto reqs = f.server.requests();
    REQUIRE(reqs.size() == 3);
    CHECK(reqs[0].header("range") == "bytes=0-299999");
    CHECK(reqs[1].header("range") == "bytes=70000-299999");
    CHECK(reqs[2].header("range") == "bytes=140000-299999");
    // The resumed requests pin the version the first bytes came from.
    CHECK(reqs[0].header("if-match").empty());
    CHECK(reqs[1].header("if-match") == "\"etag1\"");
  }
}

TEST_CASE("a persistent 500 gives up after max attempts with code and request id") {
  FetchEngineOptions options;
  options.retry.max_attempts = 3;
  std::atomic<int> calls{0};
  Fixture f(
      [&](const TestRequest&) {
        ++calls;
        return TestResponse::s3_error(500, "InternalError");
      },
      {}, options);
  Status error;
  f.read_all("k", 10, &error);
  CHECK(calls == 3);
  CHECK(error.code() == EIO);
  CHECK(error.message().find("InternalError") != std::string::npos);
  CHECK(error.message().find("test-request-id") != std::string::npos);
  CHECK(error.message().find("gave up after 3 attempts") != std::string::npos);
  CHECK(error.message().find("s3://bucket/root/k") != std::string::npos);
}

TEST_CASE("errors that retrying cannot fix are not retried, and map to errno") {
  struct Case {
    int status;
    const char* code;
    int expected_errno;
    const char* expected_text;
  };
  for (Case c : {Case{404, "NoSuchKey", ENOENT, "no such key"},
                 Case{404, "NoSuchBucket", ENOENT, "bucket 'bucket' does not exist"},
                 Case{403, "AccessDenied", EACCES, "access denied for access key id AKIDTEST"},
                 Case{403, "SignatureDoesNotMatch", EACCES, "secret key does not match access key id AKIDTEST"},
                 Case{403, "InvalidAccessKeyId", EACCES, "not known to the store"},
                 Case{400, "ExpiredToken", EACCES, "session token"},
                 Case{412, "PreconditionFailed", ESTALE, "changed in the store"},
                 Case{400, "InvalidArgument", EIO, "InvalidArgument"}}) {
    CAPTURE(c.code);
    std::atomic<int> calls{0};
    Fixture f([&](const TestRequest&) {
      ++calls;
      return TestResponse::s3_error(c.status, c.code);
    });
    Status error;
    f.read_all("k", 10, &error);
    CHECK(calls == 1);
    CHECK(error.code() == c.expected_errno);
    CHECK(error.message().find(c.expected_text) != std::string::npos);
    CHECK(error.message().find("SUPERSECRETKEY") == std::string::npos);
    CHECK(error.message().find("SESSIONTOKENSECRET") == std::string::npos);
  }
}

TEST_CASE("HEAD errors have no body: 404 is ENOENT, 403 EACCES") {
  Fixture f([&](const TestRequest& req) {
    TestResponse r;
    r.status = req.target.find("missing") != std::string::npos ? 404 : 403;
    return r;
  });
  CHECK(f.store->head("missing").status().code() == ENOENT);
  CHECK(f.store->head("private").status().code() == EACCES);
}

TEST_CASE("a wrong region is corrected once, from x-amz-bucket-region, and remembered") {
  const std::string data = pattern(50);
  std::atomic<int> redirects{0};
  Fixture f([&](const TestRequest& req) {
    if (req.signing_region() != "eu-test-1") {
      ++redirects;
      TestResponse r = TestResponse::s3_error(301, "PermanentRedirect");
      r.headers.emplace_back("x-amz-bucket-region", "eu-test-1");
      return r;
    }
    return serve_object(req, data);
  });
  CHECK(f.read_all("k", data.size()) == data);
  CHECK(f.read_all("k2", data.size()) == data);
  CHECK(f.store->head("k3").ok());
  CHECK(redirects == 1);
  CHECK(f.store->endpoint().region() == "eu-test-1");
}

TEST_CASE("parallel parts signed before a region correction all follow it") {
  const std::string data = pattern(1 << 20);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  options.parallelism = 8;
  std::atomic<int> redirects{0};
  Fixture f(
      [&](const TestRequest& req) {
        if (req.signing_region() != "eu-test-1") {
          ++redirects;
          TestResponse r = TestResponse::s3_error(301, "PermanentRedirect");
          r.headers.emplace_back("x-amz-bucket-region", "eu-test-1");
          return r;
        }
        return serve_object(req, data);
      },
      options);
  CHECK(f.read_all("k", data.size()) == data);
  CHECK(redirects >= 1);
  CHECK(redirects <= 8);
}

TEST_CASE("a redirect to a region we already use is an error, not a loop") {
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest&) {
    ++calls;
    TestResponse r = TestResponse::s3_error(301, "PermanentRedirect");
    r.headers.emplace_back("x-amz-bucket-region", "us-east-1");
    return r;
  });
  Status error;
  f.read_all("k", 10, &error);
  CHECK(calls == 1);
  CHECK(error.code() == EIO);
  CHECK(error.message().find("not served by") != std::string::npos);
}

TEST_CASE("clock skew is corrected from the server's Date") {
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest& req) {
    if (calls++ == 0) {
      TestResponse r = TestResponse::s3_error(403, "RequestTimeTooSkewed");
      r.headers.emplace_back("Date", "Wed, 01 Jan 2031 00:00:00 GMT");
      return r;
    }
    return serve_object(req, "abc");
  });
  CHECK(f.read_all("k", 3) == "abc");
  auto reqs = f.server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].header("x-amz-date").rfind("2031010", 0) == 0);
}

TEST_CASE("large reads run as parallel ranged parts, all pinned to one version") {
  const std::string data = pattern(5 * 1024 * 1024 + 123);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  options.parallelism = 8;
  std::atomic<int> in_flight{0}, most{0};
  Fixture f(
      [&](const TestRequest& req) {
        int now = ++in_flight;
        for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        TestResponse r = serve_object(req, data);
        --in_flight;
        return r;
      },
      options);
  // A bounded read goes out at once, split evenly over the parallel slots;
  // the parts' ETags must agree.
  CHECK(f.read_all("big", data.size() + 1000) == data);
  auto reqs = f.server.requests();
  CHECK(reqs.size() == 8);
  CHECK(most > 1);
  CHECK(most <= 8);
  for (const auto& r : reqs) CHECK(r.header("if-match").empty());

  // A read to the end sends its first part alone to learn the size and ETag;
  // the rest follows split evenly, every part pinned to that ETag.
  f.server.clear_requests();
  std::string whole(data.size(), '\0');
  BufferSink sink(std::as_writable_bytes(std::span(whole)), 0);
  auto r = f.store->get("big", {}, sink);
  REQUIRE(r.ok());
  CHECK(r->length == data.size());
  CHECK(r->info.size == data.size());
  CHECK(whole == data);
  reqs = f.server.requests();
  REQUIRE(reqs.size() == 9);
  CHECK(reqs[0].header("range") == "bytes=0-65535");
  CHECK(reqs[0].header("if-match").empty());
  for (size_t i = 1; i < reqs.size(); ++i) CHECK(reqs[i].header("if-match") == "\"etag1\"");

  // However high the parallelism, parts are never smaller than the part size.
  S3StoreOptions tiny = options;
  tiny.parallelism = 1000;
  f.server.clear_requests();
  auto many = S3Store::open("s3://bucket/root", f.settings, f.engine, tiny);
  REQUIRE(many.ok());
  std::string again(data.size(), '\0');
  REQUIRE((*many)->read("big", 0, std::as_writable_bytes(std::span(again))).ok());
  CHECK(again == data);
  CHECK(f.server.requests().size() == (data.size() + options.part_size - 1) / options.part_size);
}

TEST_CASE("an object replaced during a parallel read is ESTALE, never mixed") {
  const std::string v1 = pattern(1 << 20, 1), v2 = pattern(1 << 20, 2);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  std::atomic<int> calls{0};
  Fixture f(
      [&](const TestRequest& req) {
        // The first part sees v1; then the object is replaced.
        return calls++ == 0 ? serve_object(req, v1, "v1") : serve_object(req, v2, "v2");
      },
      options);
  Status error;
  f.read_all("k", v1.size(), &error);
  CHECK(error.code() == ESTALE);
}

TEST_CASE("an object replaced by a shorter one during a parallel read is ESTALE, not a short read") {
  const std::string v1 = pattern(1 << 20, 1);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  options.parallelism = 4;
  Fixture f(
      [&](const TestRequest& req) {
        // Parts that start past 300,000 find the object already replaced by a
        // 300,000-byte version: 416, with no size given (as radosgw answers).
        std::string range = req.header("range");
        if (std::stoull(range.substr(6, range.find('-') - 6)) >= 300000) {
          return TestResponse::s3_error(416, "InvalidRange");
        }
        return serve_object(req, v1, "v1");
      },
      options);
  Status error;
  f.read_all("k", v1.size(), &error);
  CHECK(error.code() == ESTALE);
}

TEST_CASE("a store that ignores Range still yields the right bytes") {
  const std::string data = pattern(200000);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  Fixture f(
      [&](const TestRequest& req) {
        TestRequest no_range = req;
        no_range.headers.clear();
        return serve_object(no_range, data);
      },
      options);
  std::string buf(50000, '\0');
  auto r = f.store->read("k", 100000, std::as_writable_bytes(std::span(buf)));
  REQUIRE(r.ok());
  CHECK(r->length == 50000);
  CHECK(buf == data.substr(100000, 50000));
}

TEST_CASE("a 200 short of its Content-Length is resumed, not accepted") {
  const std::string data = pattern(100000);
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest& req) {
    TestResponse r = serve_object(req, data);
    if (calls++ == 0) {
      r.fault = TestResponse::Fault::close_after_body;
      r.fault_after = 1000;
    }
    return r;
  });
  CHECK(f.read_all("k", data.size()) == data);
}

TEST_CASE("connections are kept alive and reused") {
  const std::string data = pattern(1000);
  Fixture f([&](const TestRequest& req) { return serve_object(req, data); });
  for (int i = 0; i < 50; ++i) CHECK(f.read_all("k" + std::to_string(i), data.size()) == data);
  CHECK(f.server.connections() == 1);
  CHECK(f.engine->stats().connections == 1);
  CHECK(f.engine->stats().requests == 50);
}

TEST_CASE("demand requests overtake queued background requests") {
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  FetchEngineOptions options;
  options.max_in_flight = 1;
  Fixture f(
      [&](const TestRequest& req) {
        if (req.target.find("blocker") != std::string::npos) {
          std::unique_lock lock(mutex);
          cv.wait(lock, [&] { return release; });
        }
        return serve_object(req, "x");
      },
      {}, options);
  struct Sink final : ByteSink {
    Status write_at(uint64_t, std::span<const std::byte>) override { return {}; }
  } sink;
  std::atomic<int> done{0};
  auto count = [&](Result<GetResult> r) {
    CHECK(r.ok());
    ++done;
  };
  f.store->get_async("blocker", {}, sink, Priority::demand, count);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < 3; ++i) f.store->get_async("bg" + std::to_string(i), {}, sink, Priority::background, count);
  f.store->get_async("urgent", {}, sink, Priority::demand, count);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  while (done < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto reqs = f.server.requests();
  REQUIRE(reqs.size() == 5);
  CHECK(reqs[1].path() == "/bucket/root/urgent");
}

TEST_CASE("listing: query parameters, pagination token, root prefix stripped") {
  Fixture f([&](const TestRequest& req) {
    TestResponse r;
    r.body =
        "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>tok/1=</NextContinuationToken>"
        "<EncodingType>url</EncodingType><Contents><Key>root%2Fdir%2Fa%20b</Key><Size>3</Size>"
        "<LastModified>2020-01-01T00:00:00Z</LastModified><ETag>&quot;e&quot;</ETag></Contents>"
        "<CommonPrefixes><Prefix>root%2Fdir%2Fsub%2F</Prefix></CommonPrefixes></ListBucketResult>";
    (void)req;
    return r;
  });
  ListRequest request;
  request.prefix = "dir/";
  request.delimiter = "/";
  request.continuation = "prev+token=";
  auto page = f.store->list(request);
  REQUIRE(page.ok());
  CHECK(page->objects.at(0).key == "dir/a b");
  CHECK(page->common_prefixes.at(0) == "dir/sub/");
  CHECK(page->next_continuation == "tok/1=");
  auto req = f.server.requests().at(0);
  CHECK(req.target ==
        "/bucket?continuation-token=prev%2Btoken%3D&delimiter=%2F&encoding-type=url&list-type=2&max-keys=1000&prefix="
        "root%2Fdir%2F");
}

TEST_CASE("malformed listing responses are clean errors") {
  Fixture f([&](const TestRequest&) {
    TestResponse r;
    r.body = "<ListBucketResult><IsTruncated>tru";
    return r;
  });
  auto page = f.store->list({});
  REQUIRE_FALSE(page.ok());
  CHECK(page.status().code() == EIO);
  CHECK(page.status().message().find("malformed") != std::string::npos);
}

TEST_CASE("an unreachable endpoint is a clear EIO after retries") {
  FetchEngineOptions options;
  options.retry.max_attempts = 2;
  Fixture f([&](const TestRequest& req) { return serve_object(req, "x"); }, {}, options);
  S3Settings dead = f.settings;
  dead.endpoint = "http://127.0.0.1:1";
  auto store = S3Store::open("s3://bucket", dead, f.engine);
  REQUIRE(store.ok());
  auto info = (*store)->head("k");
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().code() == EIO);
  CHECK(info.status().message().find("cannot talk to http://127.0.0.1:1") != std::string::npos);
}

TEST_CASE("a sink failure (disk full) aborts the read with the sink's error") {
  const std::string data = pattern(100000);
  Fixture f([&](const TestRequest& req) { return serve_object(req, data); });
  struct FullDisk final : ByteSink {
    Status write_at(uint64_t, std::span<const std::byte>) override {
      return Status::error(ENOSPC, "writing fetched bytes: ENOSPC");
    }
  } sink;
  auto r = f.store->get("k", {}, sink);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ENOSPC);
  CHECK(f.server.requests().size() == 1);
}

TEST_CASE("PUT signs its payload") {
  std::string received;
  Fixture f([&](const TestRequest& req) {
    received = req.body;
    TestResponse r;
    CHECK(req.header("x-amz-content-sha256") != "UNSIGNED-PAYLOAD");
    CHECK(req.header("x-amz-meta-mtime") == "123");
    return r;
  });
  CHECK(f.store->put("k", "payload bytes", {{"mtime", "123"}}).ok());
  CHECK(received == "payload bytes");
}

TEST_CASE("a read to the end from a store that never says the size goes part by part and stops at the end") {
  const std::string data = pattern(200000);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  Fixture f([&](const TestRequest& req) { return serve_object(req, data, "etag1", true); }, options);
  std::string whole(300000, '\0');
  BufferSink sink(std::as_writable_bytes(std::span(whole)), 0);
  auto r = f.store->get("k", {}, sink);
  REQUIRE(r.ok());
  CHECK(r->length == data.size());
  CHECK(r->info.size == data.size());
  CHECK(whole.substr(0, data.size()) == data);
  CHECK(f.server.requests().size() == 4);  // 3 full parts and one the server clipped
}

TEST_CASE("a read past the end reports the object's real identity") {
  const std::string data = pattern(5000);
  Fixture f([&](const TestRequest& req) {
    if (req.method == "HEAD") {
      TestResponse r = serve_object(req, data);
      r.body = data;  // a HEAD sends the length, not the body
      return r;
    }
    return serve_object(req, data);
  });
  std::string buf(10, '\0');
  auto r = f.store->read("k", 9000, std::as_writable_bytes(std::span(buf)));
  REQUIRE(r.ok());
  CHECK(r->length == 0);
  CHECK(r->offset == 9000);
  CHECK(r->info.size == data.size());
  CHECK(r->info.etag == "etag1");
  auto stale = f.store->read("k", 9000, std::as_writable_bytes(std::span(buf)), "other-etag");
  CHECK(stale.status().code() == ESTALE);
}

TEST_CASE("the last owner of a store may let go inside a completion callback") {
  const std::string data = pattern(1000);
  HttpTestServer server([&](const TestRequest& req) { return serve_object(req, data); });
  S3Settings settings;
  settings.endpoint = server.url();
  settings.credentials = {"AKID", "SECRET", ""};
  std::shared_ptr<ObjectStore> store;
  {
    auto opened = S3Store::open("s3://bucket", settings, std::make_shared<FetchEngine>());
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }
  std::string buf(1000, '\0');
  BufferSink sink(std::as_writable_bytes(std::span(buf)), 0);
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  GetRequest request;
  request.range = ByteRange::at(0, 1000);
  store->get_async("k", request, sink, Priority::demand, [&](Result<GetResult> r) {
    CHECK(r.ok());
    store.reset();  // the engine's own worker thread destroys the store and its engine
    std::lock_guard lock(mutex);
    done = true;
    cv.notify_all();
  });
  std::unique_lock lock(mutex);
  CHECK(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
  CHECK(buf == data);
}

namespace {

// A bare transfer for engine tests: GET `url`; on finish, count cancellations
// and optionally submit one more transfer to the same engine.
struct CountingTransfer final : HttpTransfer {
  CountingTransfer(std::string u, FetchEngine* e, std::atomic<int>* c, std::atomic<int>* again)
      : url(std::move(u)), engine(e), cancelled(c), resubmitted_cancelled(again) {}
  Status prepare(HttpRequest& request, int) override {
    request.url = url;
    return {};
  }
  bool on_head(const HttpResponseHead&) override { return true; }
  bool on_body(std::span<const std::byte>) override { return true; }
  Verdict classify(const AttemptOutcome&, Status& status, FailureKind&) override {
    status = {};
    return Verdict::done;
  }
  void finish(Status status) override {
    if (status.code() == ECANCELED) ++*cancelled;
    if (resubmitted_cancelled != nullptr) {
      engine->submit(std::make_shared<CountingTransfer>(url, engine, resubmitted_cancelled, nullptr));
    }
  }
  std::string url;
  FetchEngine* engine;
  std::atomic<int>* cancelled;
  std::atomic<int>* resubmitted_cancelled;
};

}  // namespace

TEST_CASE("shutting the engine down with work in flight: every transfer finishes with ECANCELED, nothing hangs") {
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false;
  HttpTestServer server([&](const TestRequest& req) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return release; });
    return serve_object(req, "x");
  });
  std::atomic<int> cancelled{0}, resubmitted_cancelled{0};
  for (int threads : {1, 3}) {
    CAPTURE(threads);
    cancelled = 0;
    resubmitted_cancelled = 0;
    FetchEngineOptions options;
    options.threads = threads;
    options.max_in_flight = 4;
    auto engine = std::make_unique<FetchEngine>(options);
    // 4 run (held by the server), 4 wait in the queue; each one's finish()
    // submits another transfer while the engine shuts down.
    for (int i = 0; i < 8; ++i) {
      engine->submit(
          std::make_shared<CountingTransfer>(server.url() + "/k", engine.get(), &cancelled, &resubmitted_cancelled));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    engine.reset();
    CHECK(cancelled == 8);
    CHECK(resubmitted_cancelled == 8);
  }
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
}

TEST_CASE("a listing cut short every time gives up after max attempts, not after the whole budget") {
  FetchEngineOptions options;
  options.retry.max_attempts = 3;
  Fixture f(
      [&](const TestRequest&) {
        TestResponse r;
        r.body = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        r.fault = TestResponse::Fault::close_after_body;
        r.fault_after = 10;
        return r;
      },
      {}, options);
  auto page = f.store->list({});
  CHECK_FALSE(page.ok());
  CHECK(f.server.requests().size() == 3);
}

TEST_CASE("a failed read does not wait out its other parts' backoff") {
  const std::string data = pattern(1 << 20);
  S3StoreOptions options;
  options.part_size = 64 * 1024;
  options.parallelism = 4;
  HttpTestServer server([&](const TestRequest& req) {
    std::string range = req.header("range");
    // The first part is refused for good; the others meet a 503 and back off.
    if (range.rfind("bytes=0-", 0) == 0) return TestResponse::s3_error(403, "AccessDenied");
    return TestResponse::s3_error(503, "SlowDown");
  });
  S3Settings settings;
  settings.endpoint = server.url();
  settings.credentials = {"AKID", "SECRET", ""};
  FetchEngineOptions engine_options;
  engine_options.retry.base_delay = std::chrono::milliseconds(30'000);
  engine_options.retry.max_delay = std::chrono::milliseconds(30'000);
  auto store = S3Store::open("s3://bucket", settings, std::make_shared<FetchEngine>(engine_options), options);
  REQUIRE(store.ok());
  std::string buf(data.size(), '\0');
  auto start = std::chrono::steady_clock::now();
  auto r = (*store)->read("k", 0, std::as_writable_bytes(std::span(buf)));
  auto waited = std::chrono::steady_clock::now() - start;
  CHECK(r.status().code() == EACCES);
  // Backoff is up to 30 s here; the cancelled parts must not wait for it.
  CHECK(waited < std::chrono::seconds(10));
}

TEST_CASE("a HEAD refused because of clock skew corrects the clock from Date") {
  std::atomic<int> calls{0};
  Fixture f([&](const TestRequest& req) {
    if (calls++ == 0) {
      TestResponse r;
      r.status = 403;
      r.headers.emplace_back("Date", "Wed, 01 Jan 2031 00:00:00 GMT");
      return r;
    }
    return serve_object(req, "abc");
  });
  auto info = f.store->head("k");
  REQUIRE(info.ok());
  CHECK(calls == 2);
  // A 403 whose Date agrees with our clock is a real refusal: not retried.
  Fixture denied([&](const TestRequest&) {
    TestResponse r;
    r.status = 403;
    char date[64];
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    r.headers.emplace_back("Date", date);
    return r;
  });
  CHECK(denied.store->head("k").status().code() == EACCES);
  CHECK(denied.server.requests().size() == 1);
}

TEST_CASE("metadata with an empty value is sent (and signed) empty") {
  Fixture f([&](const TestRequest& req) {
    bool found = false;
    for (const auto& [name, value] : req.headers) found = found || (name == "x-amz-meta-empty" && value.empty());
    CHECK(found);
    return TestResponse{};
  });
  CHECK(f.store->put("k", "bytes", {{"empty", ""}}).ok());
}
