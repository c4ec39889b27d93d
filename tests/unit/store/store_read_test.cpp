// Read semantics every ObjectStore shares, run against the in-memory store and
// the file store: ranges, suffixes, reads past the end, If-Match.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "store/failure_store.h"
#include "store/file_store.h"
#include "store/memory_store.h"

using namespace dscache;

namespace {

std::string content(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/dscache-filestore-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  void write(const std::string& rel, const std::string& bytes) const {
    std::string full = path + "/" + rel;
    std::system(("mkdir -p \"$(dirname '" + full + "')\"").c_str());
    std::ofstream(full, std::ios::binary) << bytes;
  }
  std::string path;
};

// Collects delivered bytes by offset.
class RecordingSink final : public ByteSink {
 public:
  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size(), '?');
    std::memcpy(bytes.data() + offset, data.data(), data.size());
    return {};
  }
  std::string bytes;
};

void check_reads(ObjectStore& store, const std::string& key, const std::string& expected) {
  const uint64_t size = expected.size();
  SUBCASE("whole object") {
    std::string buf(size, '\0');
    auto r = store.read(key, 0, std::as_writable_bytes(std::span(buf)));
    REQUIRE(r.ok());
    CHECK(r->length == size);
    CHECK(r->info.size == size);
    CHECK(buf == expected);
  }
  SUBCASE("first byte, last byte, middle") {
    std::string one(1, '\0');
    REQUIRE(store.read(key, 0, std::as_writable_bytes(std::span(one))).ok());
    CHECK(one[0] == expected[0]);
    REQUIRE(store.read(key, size - 1, std::as_writable_bytes(std::span(one))).ok());
    CHECK(one[0] == expected[size - 1]);
    std::string mid(100, '\0');
    auto r = store.read(key, 1000, std::as_writable_bytes(std::span(mid)));
    REQUIRE(r.ok());
    CHECK(r->offset == 1000);
    CHECK(mid == expected.substr(1000, 100));
  }
  SUBCASE("a range crossing the end is cut at the end") {
    std::string buf(100, '\0');
    auto r = store.read(key, size - 10, std::as_writable_bytes(std::span(buf)));
    REQUIRE(r.ok());
    CHECK(r->length == 10);
    CHECK(buf.substr(0, 10) == expected.substr(size - 10));
  }
  SUBCASE("a read at or past the end reads nothing") {
    std::string buf(10, '\0');
    auto at_end = store.read(key, size, std::as_writable_bytes(std::span(buf)));
    REQUIRE(at_end.ok());
    CHECK(at_end->length == 0);
    auto beyond = store.read(key, size + 12345, std::as_writable_bytes(std::span(buf)));
    REQUIRE(beyond.ok());
    CHECK(beyond->length == 0);
  }
  SUBCASE("suffix ranges") {
    RecordingSink sink;
    GetRequest last10;
    last10.range = ByteRange::last(10);
    auto r = store.get(key, last10, sink);
    REQUIRE(r.ok());
    CHECK(r->offset == size - 10);
    CHECK(r->length == 10);
    CHECK(sink.bytes.substr(size - 10) == expected.substr(size - 10));
    RecordingSink all;
    GetRequest more_than_all;
    more_than_all.range = ByteRange::last(size * 2);
    auto whole = store.get(key, more_than_all, all);
    REQUIRE(whole.ok());
    CHECK(whole->offset == 0);
    CHECK(all.bytes == expected);
  }
  SUBCASE("If-Match: the right ETag reads, another is ESTALE") {
    auto head = store.head(key);
    REQUIRE(head.ok());
    std::string buf(10, '\0');
    CHECK(store.read(key, 0, std::as_writable_bytes(std::span(buf)), head->etag).ok());
    auto stale = store.read(key, 0, std::as_writable_bytes(std::span(buf)), "not-the-etag");
    REQUIRE_FALSE(stale.ok());
    CHECK(stale.status().code() == ESTALE);
  }
  SUBCASE("missing keys are ENOENT naming the key") {
    std::string buf(1, '\0');
    auto r = store.read("no/such/key", 0, std::as_writable_bytes(std::span(buf)));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ENOENT);
    CHECK(r.status().message().find("no/such/key") != std::string::npos);
    CHECK(store.head("no/such/key").status().code() == ENOENT);
  }
}

}  // namespace

TEST_CASE("MemoryStore reads") {
  MemoryStore store;
  std::string data = content(5000);
  store.put("dir/object", data);
  check_reads(store, "dir/object", data);
}

TEST_CASE("FileStore reads") {
  TempDir dir;
  std::string data = content(5000);
  dir.write("dir/object", data);
  auto store = FileStore::open(dir.path);
  REQUIRE(store.ok());
  check_reads(**store, "dir/object", data);
}

TEST_CASE("FileStore lists a directory tree with S3 semantics") {
  TempDir dir;
  dir.write("a/1.jpg", "1");
  dir.write("a/2.jpg", "22");
  dir.write("a/sub/3.jpg", "333");
  dir.write("b.txt", "b");
  std::system(("mkdir -p '" + dir.path + "/empty'").c_str());
  auto store = FileStore::open(dir.path + "/");
  REQUIRE(store.ok());
  CHECK((*store)->url() == "file://" + dir.path + "/");

  ListRequest top;
  top.delimiter = "/";
  auto page = (*store)->list(top);
  REQUIRE(page.ok());
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].key == "b.txt");
  CHECK(page->common_prefixes == std::vector<std::string>{"a/", "empty/"});

  ListRequest a;
  a.prefix = "a/";
  a.delimiter = "/";
  a.max_keys = 2;
  auto first = (*store)->list(a);
  REQUIRE(first.ok());
  CHECK(first->truncated);
  CHECK(first->objects.size() == 2);
  a.continuation = first->next_continuation;
  auto second = (*store)->list(a);
  REQUIRE(second.ok());
  CHECK_FALSE(second->truncated);
  CHECK(second->common_prefixes == std::vector<std::string>{"a/sub/"});

  ListRequest flat;
  flat.prefix = "a/";
  auto all = (*store)->list(flat);
  REQUIRE(all.ok());
  REQUIRE(all->objects.size() == 3);
  CHECK(all->objects[2].key == "a/sub/3.jpg");
  CHECK(all->objects[2].size == 3);
}

TEST_CASE("FileStore: keys cannot leave the root, directories are not objects") {
  TempDir dir;
  dir.write("inside", "x");
  auto store = FileStore::open(dir.path);
  REQUIRE(store.ok());
  CHECK((*store)->head("../etc/passwd").status().code() == EINVAL);
  CHECK((*store)->head("a/./b").status().code() == EINVAL);
  std::system(("mkdir -p '" + dir.path + "/d'").c_str());
  CHECK((*store)->head("d").status().code() == ENOENT);
  CHECK(FileStore::open("/nonexistent/dir").status().code() == ENOENT);
  CHECK(FileStore::open("relative/dir").status().code() == EINVAL);
  CHECK(FileStore::open(dir.path + "/inside").status().code() == ENOTDIR);
}

TEST_CASE("FileStore: a file rewritten in place gets a new ETag") {
  TempDir dir;
  dir.write("f", "version one");
  auto store = FileStore::open(dir.path);
  REQUIRE(store.ok());
  auto before = (*store)->head("f");
  REQUIRE(before.ok());
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  dir.write("f", "version two!");
  ::utimensat(AT_FDCWD, (dir.path + "/f").c_str(), times, 0);
  auto after = (*store)->head("f");
  REQUIRE(after.ok());
  CHECK(after->etag != before->etag);
  std::string buf(5, '\0');
  CHECK((*store)->read("f", 0, std::as_writable_bytes(std::span(buf)), before->etag).status().code() == ESTALE);
}

TEST_CASE("FailureStore injects failures and cuts reads") {
  auto inner = std::make_shared<MemoryStore>();
  inner->put("k", content(1000));
  FailureStore store(inner);
  store.fail_next(StoreOp::get, 2, EIO);
  std::string buf(1000, '\0');
  CHECK(store.read("k", 0, std::as_writable_bytes(std::span(buf))).status().code() == EIO);
  CHECK(store.read("k", 0, std::as_writable_bytes(std::span(buf))).status().code() == EIO);
  CHECK(store.read("k", 0, std::as_writable_bytes(std::span(buf))).ok());
  CHECK(store.injected() == 2);

  store.fail_next(StoreOp::head, 1, EACCES);
  CHECK(store.head("k").status().code() == EACCES);
  CHECK(store.head("k").ok());

  store.truncate_gets(100);
  RecordingSink sink;
  GetRequest all;
  auto cut = store.get("k", all, sink);
  REQUIRE_FALSE(cut.ok());
  CHECK(sink.bytes.size() == 100);
  store.clear();

  store.fail_randomly(StoreOp::list, 0.5, 7);
  int failures = 0;
  for (int i = 0; i < 200; ++i) failures += store.list({}).ok() ? 0 : 1;
  CHECK(failures > 60);
  CHECK(failures < 140);
}

TEST_CASE("FileStore: an empty directory lists as its marker object, as S3 shows a \"dir/\" marker") {
  TempDir dir;
  dir.write("d/x", "x");
  REQUIRE(::mkdir((dir.path + "/d/empty").c_str(), 0755) == 0);
  auto store = FileStore::open(dir.path);
  REQUIRE(store.ok());
  ListRequest one;
  one.prefix = "d/empty/";
  one.delimiter = "/";
  auto page = (*store)->list(one);
  REQUIRE_MESSAGE(page.ok(), page.status().message());
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].key == "d/empty/");
  CHECK(page->objects[0].size == 0);
  ListRequest flat;  // a recursive listing has no markers
  auto all = (*store)->list(flat);
  REQUIRE(all.ok());
  REQUIRE(all->objects.size() == 1);
  CHECK(all->objects[0].key == "d/x");
}

TEST_CASE("FileStore: dangling links are skipped, symlink loops listed once") {
  TempDir dir;
  dir.write("d/real.txt", "real");
  REQUIRE(::symlink("/nonexistent/target", (dir.path + "/d/dangling").c_str()) == 0);
  REQUIRE(::symlink(".", (dir.path + "/d/loop").c_str()) == 0);
  auto store = FileStore::open(dir.path);
  REQUIRE(store.ok());
  ListRequest one;
  one.prefix = "d/";
  one.delimiter = "/";
  auto page = (*store)->list(one);
  REQUIRE_MESSAGE(page.ok(), page.status().message());
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].key == "d/real.txt");
  CHECK(page->common_prefixes == std::vector<std::string>{"d/loop/"});
  ListRequest flat;
  auto all = (*store)->list(flat);
  REQUIRE_MESSAGE(all.ok(), all.status().message());
  REQUIRE(all->objects.size() == 1);
  CHECK(all->objects[0].key == "d/real.txt");
}
