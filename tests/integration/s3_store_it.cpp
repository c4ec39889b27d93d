// The S3 client against a real, signature-checking S3 server (Ceph radosgw,
// started by scripts/s3-server.sh, data from populate.py). Faults are injected
// by a proxy in front of the real server, so every retried byte still comes
// from radosgw.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "s3/s3_store.h"
#include "store/open_store.h"
#include "support/http_test_server.h"
#include "support/test_data.h"

using namespace dscache;
using dscache::test::first_mismatch;
using dscache::test::HttpTestServer;
using dscache::test::TestRequest;
using dscache::test::TestResponse;

namespace {

const std::vector<std::string> kSpecialKeys = {
    "special/with space.txt",
    "special/plus+equals=percent%tilde~hash#.txt",
    "special/unicode-\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9-\u65e5\u672c.txt",
    "special/double//slash.txt",
    "special/dot/./segment.txt",
    "special/dotdot/../segment.txt",
    "special/question?and&star*.txt",
    "special/quote'paren(bang)!dollar$comma,semi;colon:at@.txt",
    "special/trailing-space .txt",
    "special/ctl\x01" "char.txt",
};

std::string env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) FAIL("the integration tests need " << name << " (run them through ctest)");
  return value;
}

std::string bucket() { return env("DSCACHE_TEST_S3_BUCKET"); }

std::shared_ptr<FetchEngine> engine_for_tests(int max_attempts = 5) {
  FetchEngineOptions options;
  options.retry.max_attempts = max_attempts;
  options.retry.base_delay = std::chrono::milliseconds(5);
  options.retry.max_delay = std::chrono::milliseconds(50);
  return std::make_shared<FetchEngine>(options);
}

S3Settings settings_from_env() {
  auto settings = resolve_s3_settings(Env::process());
  REQUIRE_MESSAGE(settings.ok(), settings.status().message());
  return *settings;
}

std::unique_ptr<S3Store> open_bucket(S3Settings settings, std::shared_ptr<FetchEngine> engine = engine_for_tests(),
                                     S3StoreOptions options = {}, const std::string& prefix = "") {
  auto store = S3Store::open("s3://" + bucket() + "/" + prefix, std::move(settings), std::move(engine), options);
  REQUIRE(store.ok());
  return std::move(*store);
}

// Reads [offset, offset+length) and checks every byte against the generator.
void check_range(ObjectStore& store, const std::string& key, uint64_t offset, uint64_t length, uint64_t expected_length) {
  CAPTURE(key);
  CAPTURE(offset);
  CAPTURE(length);
  std::vector<std::byte> buf(length);
  auto r = store.read(key, offset, buf);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->length == expected_length);
  CHECK(first_mismatch(key, offset, std::span(buf).first(r->length)) == -1);
}

// Collects bytes by offset (for suffix reads, whose start the caller does not know).
class MapSink final : public ByteSink {
 public:
  explicit MapSink(uint64_t size) : bytes(size) {}
  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (offset + data.size() > bytes.size()) return Status::error(EIO, "out of range");
    std::memcpy(bytes.data() + offset, data.data(), data.size());
    return {};
  }
  std::vector<std::byte> bytes;
};

}  // namespace

TEST_CASE("credentials: a wrong secret or an unknown key is refused with a clear error") {
  S3Settings wrong_secret = settings_from_env();
  const std::string secret = "definitely-not-the-secret-" + std::to_string(::getpid());
  wrong_secret.credentials.secret_access_key = secret;
  auto store = open_bucket(wrong_secret);
  auto info = store->head("ranges/r.bin");
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().code() == EACCES);
  std::vector<std::byte> buf(10);
  auto read = store->read("ranges/r.bin", 0, buf);
  REQUIRE_FALSE(read.ok());
  CHECK(read.status().code() == EACCES);
  CHECK(read.status().message().find("SignatureDoesNotMatch") != std::string::npos);
  CHECK(read.status().message().find(wrong_secret.credentials.access_key_id) != std::string::npos);
  CHECK(read.status().message().find(secret) == std::string::npos);
  CHECK(store->engine().stats().retries == 0);

  S3Settings unknown = settings_from_env();
  unknown.credentials.access_key_id = "NOSUCHKEYID";
  auto store2 = open_bucket(unknown);
  auto list = store2->list({});
  REQUIRE_FALSE(list.ok());
  CHECK(list.status().code() == EACCES);
  CHECK(list.status().message().find("NOSUCHKEYID") != std::string::npos);
}

TEST_CASE("missing buckets and keys are ENOENT naming them") {
  auto settings = settings_from_env();
  auto store = open_bucket(settings);
  std::vector<std::byte> buf(10);
  auto missing = store->read("no/such/key", 0, buf);
  CHECK(missing.status().code() == ENOENT);
  CHECK(missing.status().message().find("s3://" + bucket() + "/no/such/key") != std::string::npos);
  CHECK(store->head("no/such/key").status().code() == ENOENT);

  auto nobucket = S3Store::open("s3://no-such-bucket-dscache", settings, engine_for_tests());
  REQUIRE(nobucket.ok());
  auto r = (*nobucket)->read("k", 0, buf);
  CHECK(r.status().code() == ENOENT);
  CHECK(r.status().message().find("bucket 'no-such-bucket-dscache' does not exist") != std::string::npos);
  auto l = (*nobucket)->list({});
  CHECK(l.status().code() == ENOENT);
}

TEST_CASE("HEAD: size, ETag, Last-Modified and the uploader's mtime") {
  auto store = open_bucket(settings_from_env());
  auto r = store->head("ranges/r.bin");
  REQUIRE(r.ok());
  CHECK(r->size == 1'000'003);
  CHECK(r->etag.size() == 32);
  CHECK(r->last_modified_ns > int64_t{1'600'000'000} * 1'000'000'000);
  CHECK_FALSE(r->meta_mtime_ns);
  auto rclone = store->head("meta/rclone-mtime");
  REQUIRE(rclone.ok());
  CHECK(rclone->mtime_ns() == int64_t{1598025012} * 1'000'000'000 + 123456789);
  auto s3fs = store->head("meta/s3fs-mtime");
  REQUIRE(s3fs.ok());
  CHECK(s3fs->mtime_ns() == int64_t{1598025012} * 1'000'000'000);
  auto big = store->head("big/1g.bin");
  REQUIRE(big.ok());
  CHECK(big->etag.ends_with("-128"));  // multipart upload
}

TEST_CASE("byte-exact ranged reads: first byte, last byte, suffix, past the end") {
  auto store = open_bucket(settings_from_env());
  const std::string key = "ranges/r.bin";
  const uint64_t size = 1'000'003;
  check_range(*store, key, 0, 1, 1);
  check_range(*store, key, size - 1, 1, 1);
  check_range(*store, key, 0, size, size);
  check_range(*store, key, 12345, 77777, 77777);
  check_range(*store, key, size - 10, 100, 10);  // crosses the end
  check_range(*store, key, size, 10, 0);         // at the end
  check_range(*store, key, size + 5000, 10, 0);  // beyond it

  MapSink sink(size);
  GetRequest suffix;
  suffix.range = ByteRange::last(1000);
  auto r = store->get(key, suffix, sink);
  REQUIRE(r.ok());
  CHECK(r->offset == size - 1000);
  CHECK(r->length == 1000);
  CHECK(first_mismatch(key, size - 1000, std::span(sink.bytes).subspan(size - 1000)) == -1);

  MapSink whole(size);
  GetRequest big_suffix;
  big_suffix.range = ByteRange::last(size + 100);
  auto w = store->get(key, big_suffix, whole);
  REQUIRE(w.ok());
  CHECK(w->offset == 0);
  CHECK(w->length == size);
  CHECK(first_mismatch(key, 0, whole.bytes) == -1);

  // An empty object: any read is empty, not an error.
  check_range(*store, "empty", 0, 10, 0);
  MapSink none(0);
  GetRequest empty_suffix;
  empty_suffix.range = ByteRange::last(5);
  auto e = store->get("empty", empty_suffix, none);
  REQUIRE_MESSAGE(e.ok(), e.status().message());
  CHECK(e->length == 0);
}

TEST_CASE("listing 2,500 keys across pages, with and without a delimiter") {
  auto store = open_bucket(settings_from_env(), engine_for_tests(), {}, "list/");
  ListRequest request;
  request.delimiter = "/";
  request.max_keys = 700;
  std::vector<std::string> objects, prefixes;
  int pages = 0;
  do {
    auto page = store->list(request);
    REQUIRE_MESSAGE(page.ok(), page.status().message());
    ++pages;
    for (auto& o : page->objects) {
      CHECK(o.size == 16);
      objects.push_back(o.key);
    }
    for (auto& p : page->common_prefixes) prefixes.push_back(p);
    request.continuation = page->next_continuation;
  } while (!request.continuation.empty());
  CHECK(pages == 3);
  REQUIRE(objects.size() == 2000);
  REQUIRE(prefixes.size() == 50);
  for (int i = 0; i < 2000; ++i) {
    char expected[16];
    std::snprintf(expected, sizeof expected, "f%05d", i);
    CHECK(objects[static_cast<size_t>(i)] == expected);
  }
  CHECK(prefixes.front() == "sub00/");
  CHECK(prefixes.back() == "sub49/");

  ListRequest flat;
  std::set<std::string> all;
  pages = 0;
  do {
    auto page = store->list(flat);
    REQUIRE(page.ok());
    ++pages;
    for (auto& o : page->objects) all.insert(o.key);
    CHECK(page->common_prefixes.empty());
    flat.continuation = page->next_continuation;
  } while (!flat.continuation.empty());
  CHECK(pages == 3);
  CHECK(all.size() == 2500);
  CHECK(all.count("sub17/g3") == 1);

  ListRequest sub;
  sub.prefix = "sub07/";
  sub.delimiter = "/";
  auto page = store->list(sub);
  REQUIRE(page.ok());
  CHECK(page->objects.size() == 10);
  CHECK(page->objects.front().key == "sub07/g0");

  ListRequest after;
  after.start_after = "f01990";
  after.delimiter = "/";
  after.max_keys = 15;
  auto tail = store->list(after);
  REQUIRE(tail.ok());
  CHECK(tail->objects.size() == 9);
  CHECK(tail->objects.front().key == "f01991");
  CHECK(tail->common_prefixes.size() == 6);
}

TEST_CASE("keys with spaces, unicode, + = % ~ #, //, dot segments and control characters") {
  auto store = open_bucket(settings_from_env());
  for (const std::string& key : kSpecialKeys) {
    CAPTURE(key);
    auto info = store->head(key);
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    CHECK(info->size == 1234);
    check_range(*store, key, 0, 1234, 1234);
    check_range(*store, key, 1000, 100, 100);
  }
  ListRequest request;
  request.prefix = "special/";
  std::set<std::string> listed;
  do {
    auto page = store->list(request);
    REQUIRE(page.ok());
    for (auto& o : page->objects) listed.insert(o.key);
    request.continuation = page->next_continuation;
  } while (!request.continuation.empty());
  CHECK(listed == std::set<std::string>(kSpecialKeys.begin(), kSpecialKeys.end()));
}

TEST_CASE("a 1 GiB object fetched in parallel ranges, byte-exact") {
  S3StoreOptions options;
  options.parallelism = 16;
  auto store = open_bucket(settings_from_env(), engine_for_tests(), options);
  const uint64_t size = uint64_t{1} << 30;
  void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mem != MAP_FAILED);
  std::span<std::byte> buf(static_cast<std::byte*>(mem), size);
  auto start = std::chrono::steady_clock::now();
  auto r = store->read("big/1g.bin", 0, buf);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->length == size);
  CHECK(r->info.etag.ends_with("-128"));
  CHECK(first_mismatch("big/1g.bin", 0, buf) == -1);
  auto stats = store->engine().stats();
  CHECK(stats.requests == options.parallelism);  // even parts, one per slot
  CHECK(stats.connections <= options.parallelism);
  MESSAGE("1 GiB in " << seconds << " s = " << (1024 / seconds) << " MiB/s over " << stats.connections
                      << " connections");
  ::munmap(mem, size);
}

TEST_CASE("If-Match: a replaced object is ESTALE with the old ETag, new bytes without it") {
  auto store = open_bucket(settings_from_env());
  const std::string key = "scratch/replaced-" + std::to_string(::getpid());
  const std::string v1 = test::make_content(key, 3000);
  std::string v2 = v1;
  v2[1500] = static_cast<char>(v2[1500] ^ 0xff);
  REQUIRE(store->put(key, v1).ok());
  auto first = store->head(key);
  REQUIRE(first.ok());
  REQUIRE(store->put(key, v2).ok());
  std::vector<std::byte> buf(3000);
  auto stale = store->read(key, 0, buf, first->etag);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.status().code() == ESTALE);
  auto fresh = store->read(key, 0, buf);
  REQUIRE(fresh.ok());
  CHECK(fresh->info.etag != first->etag);
  CHECK(std::memcmp(buf.data(), v2.data(), v2.size()) == 0);
}

TEST_CASE("many small objects at once share a few kept-alive connections") {
  auto engine = engine_for_tests();
  auto store = open_bucket(settings_from_env(), engine);
  constexpr int kObjects = 300;
  std::vector<std::vector<std::byte>> buffers(kObjects, std::vector<std::byte>(130000));
  std::vector<std::unique_ptr<BufferSink>> sinks;
  std::atomic<int> done{0}, ok{0};
  std::vector<uint64_t> lengths(kObjects);
  for (int i = 0; i < kObjects; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "small/obj-%04d.bin", i);
    sinks.push_back(std::make_unique<BufferSink>(buffers[static_cast<size_t>(i)], 0));
    GetRequest request;
    request.range = ByteRange::at(0, 130000);
    store->get_async(key, request, *sinks.back(), Priority::demand, [&, i](Result<GetResult> r) {
      if (r.ok()) {
        lengths[static_cast<size_t>(i)] = r->length;
        ++ok;
      }
      ++done;
    });
  }
  while (done < kObjects) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(ok == kObjects);
  for (int i = 0; i < kObjects; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "small/obj-%04d.bin", i);
    uint64_t expected = 1000 + (static_cast<uint64_t>(i) * 7919) % 120000;
    CHECK(lengths[static_cast<size_t>(i)] == expected);
    CHECK(first_mismatch(key, 0, std::span(buffers[static_cast<size_t>(i)]).first(expected)) == -1);
  }
  auto stats = engine->stats();
  CHECK(stats.requests == kObjects);
  CHECK(stats.connections <= 64);
  MESSAGE(kObjects << " objects over " << stats.connections << " connections");
}

TEST_CASE("anonymous mode: public objects read, private ones are EACCES") {
  S3Settings anonymous = settings_from_env();
  anonymous.anonymous = true;
  anonymous.credentials = {};
  auto store = open_bucket(anonymous);
  check_range(*store, "public/readable.bin", 0, 4096, 4096);
  std::vector<std::byte> buf(16);
  auto denied = store->read("private/secret.bin", 0, buf);
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.status().code() == EACCES);
  CHECK(denied.status().message().find("anonymous") != std::string::npos);
}

TEST_CASE("a profile in ~/.aws files works end to end, endpoint included") {
  char tmpl[] = "/tmp/dscache-it-aws-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::ofstream(dir + "/credentials") << "[ci]\naws_access_key_id = " << env("AWS_ACCESS_KEY_ID")
                                      << "\naws_secret_access_key = " << env("AWS_SECRET_ACCESS_KEY") << "\n";
  std::ofstream(dir + "/config") << "[profile ci]\nregion = us-east-1\nendpoint_url = " << env("AWS_ENDPOINT_URL")
                                 << "\ns3 =\n  addressing_style = path\n";
  auto settings = resolve_s3_settings(Env::from_map({{"AWS_PROFILE", "ci"},
                                                     {"AWS_SHARED_CREDENTIALS_FILE", dir + "/credentials"},
                                                     {"AWS_CONFIG_FILE", dir + "/config"}}));
  std::system(("rm -rf '" + dir + "'").c_str());
  REQUIRE_MESSAGE(settings.ok(), settings.status().message());
  CHECK(settings->endpoint == env("AWS_ENDPOINT_URL"));
  auto store = open_bucket(*settings);
  check_range(*store, "ranges/r.bin", 500, 500, 500);
}

TEST_CASE("open_store: the mount URL forms") {
  auto s3 = open_store("s3://" + bucket() + "/list", Env::process(), engine_for_tests());
  REQUIRE(s3.ok());
  CHECK((*s3)->url() == "s3://" + bucket() + "/list/");
  auto head = (*s3)->head("f00001");
  REQUIRE(head.ok());
  CHECK(head->size == 16);
  CHECK(open_store("gs://bucket", Env::process(), nullptr).status().code() == EINVAL);
  CHECK(open_store("s3://", Env::process(), nullptr).status().code() == EINVAL);
  CHECK(open_store("s3://bad bucket/x", Env::process(), nullptr).status().code() == EINVAL);
}

// ---- Faults injected by a proxy in front of radosgw ----------------------

namespace {

struct Proxied {
  explicit Proxied(HttpTestServer::Handler handler, int max_attempts = 5, S3StoreOptions options = {})
      : proxy(std::move(handler), "127.0.0.1", upstream_port()) {
    settings = settings_from_env();
    settings.endpoint = proxy.url();
    engine = engine_for_tests(max_attempts);
    store = open_bucket(settings, engine, options);
  }
  static int upstream_port() {
    std::string url = env("AWS_ENDPOINT_URL");
    return std::stoi(url.substr(url.rfind(':') + 1));
  }
  HttpTestServer proxy;
  S3Settings settings;
  std::shared_ptr<FetchEngine> engine;
  std::unique_ptr<S3Store> store;
};

}  // namespace

namespace {

// The first byte a ranged request asks for.
uint64_t range_start(const TestRequest& req) {
  std::string range = req.header("range");
  REQUIRE(range.rfind("bytes=", 0) == 0);
  return std::stoull(range.substr(6, range.find('-') - 6));
}

constexpr uint64_t kPart = 8 << 20;  // S3StoreOptions' default part size

}  // namespace

TEST_CASE("injected 503 SlowDown bursts are retried to the right bytes") {
  std::mutex mutex;
  std::map<uint64_t, int> seen;  // per part: a burst of three 503s, then the real answer
  Proxied p([&](const TestRequest& req) {
    std::lock_guard lock(mutex);
    if (seen[range_start(req)]++ < 3) return TestResponse::s3_error(503, "SlowDown");
    return TestResponse::forwarded();
  });
  check_range(*p.store, "medium/24m.bin", 0, 24 << 20, 24 << 20);
  CHECK(p.engine->stats().retries == 9);  // three parts, three 503s each
  CHECK(p.proxy.requests().size() == 12);
}

TEST_CASE("connection resets and early closes mid-body are resumed from the received bytes") {
  constexpr uint64_t kCut = 3 << 20;
  for (auto fault : {TestResponse::Fault::reset_after_body, TestResponse::Fault::close_after_body}) {
    const bool reset = fault == TestResponse::Fault::reset_after_body;
    CAPTURE(reset);
    std::mutex mutex;
    std::map<uint64_t, int> attempts;  // per part: the first two are cut after 3 MiB of body
    Proxied p([&](const TestRequest& req) {
      TestResponse r = TestResponse::forwarded();
      std::lock_guard lock(mutex);
      if (attempts[range_start(req) / kPart]++ < 2) {
        r.fault = fault;
        r.fault_after = kCut;
      }
      return r;
    });
    check_range(*p.store, "medium/24m.bin", 0, 24 << 20, 24 << 20);
    std::map<uint64_t, std::vector<uint64_t>> starts;  // part -> range starts in order
    for (const auto& req : p.proxy.requests()) {
      uint64_t start = range_start(req);
      starts[start / kPart].push_back(start % kPart);
      if (start % kPart != 0) CHECK(req.header("if-match").size() > 2);  // resumes pin the version
    }
    REQUIRE(starts.size() == 3);
    for (const auto& [part, offsets] : starts) {
      CAPTURE(part);
      REQUIRE(offsets.size() == 3);
      CHECK(offsets[0] == 0);
      if (reset) {
        // A reset may discard bytes still in flight: resumes start no later
        // than the cut, and always after the previous start.
        CHECK(offsets[1] > 0);
        CHECK(offsets[1] <= kCut);
        CHECK(offsets[2] > offsets[1]);
        CHECK(offsets[2] <= offsets[1] + kCut);
      } else {
        CHECK(offsets[1] == kCut);
        CHECK(offsets[2] == 2 * kCut);
      }
    }
  }
}

TEST_CASE("resets before any response and 500s are retried; a dead store is a clear EIO") {
  std::atomic<int> calls{0};
  Proxied flaky([&](const TestRequest&) {
    int n = calls++;
    if (n == 0) {
      TestResponse r;
      r.fault = TestResponse::Fault::reset_before_response;
      return r;
    }
    if (n == 1) return TestResponse::s3_error(500, "InternalError");
    return TestResponse::forwarded();
  });
  check_range(*flaky.store, "ranges/r.bin", 0, 1000, 1000);

  Proxied dead(
      [&](const TestRequest&) {
        TestResponse r;
        r.fault = TestResponse::Fault::reset_before_response;
        return r;
      },
      3);
  std::vector<std::byte> buf(10);
  auto r = dead.store->read("ranges/r.bin", 0, buf);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EIO);
  CHECK(r.status().message().find("gave up after 3 attempts") != std::string::npos);
  CHECK(dead.proxy.requests().size() == 3);
}

TEST_CASE("a wrong region is followed once using x-amz-bucket-region") {
  std::atomic<int> redirects{0};
  Proxied p([&](const TestRequest& req) {
    if (req.signing_region() != "eu-dscache-1") {
      ++redirects;
      TestResponse r = TestResponse::s3_error(301, "PermanentRedirect");
      r.headers.emplace_back("x-amz-bucket-region", "eu-dscache-1");
      return r;
    }
    return TestResponse::forwarded();
  });
  check_range(*p.store, "ranges/r.bin", 0, 100, 100);
  CHECK(p.store->head("ranges/r.bin").ok());
  CHECK(p.store->list({}).ok());
  CHECK(redirects == 1);
}

TEST_CASE("HTTPS: a CA bundle makes the store trusted; an untrusted certificate is a clear, unretried error") {
  S3Settings settings = settings_from_env();
  settings.endpoint = env("DSCACHE_TEST_S3_HTTPS_ENDPOINT");
  FetchEngineOptions options;
  options.ca_bundle = env("DSCACHE_TEST_S3_CA_FILE");
  auto engine = std::make_shared<FetchEngine>(options);
  auto store = open_bucket(settings, engine);
  check_range(*store, "ranges/r.bin", 0, 1'000'003, 1'000'003);
  for (int i = 0; i < 20; ++i) {
    char key[64];
    std::snprintf(key, sizeof key, "small/obj-%04d.bin", i);
    check_range(*store, key, 0, 1000, 1000);
  }
  CHECK(engine->stats().connections == 1);  // one TLS handshake, then keep-alive

  auto untrusting = std::make_shared<FetchEngine>(FetchEngineOptions{});
  auto store2 = open_bucket(settings, untrusting);
  auto r = store2->head("ranges/r.bin");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EIO);
  CHECK(r.status().message().find("TLS failure") != std::string::npos);
  CHECK(r.status().message().find("AWS_CA_BUNDLE") != std::string::npos);
  CHECK(untrusting->stats().retries == 0);
}
