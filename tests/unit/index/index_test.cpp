#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "index/index_writer.h"

using namespace dscache;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/dscache-index-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string path;
};

SlotSnapshot file_slot(const IndexKey& key, uint64_t size, FileState state, uint32_t generation = 0) {
  SlotSnapshot s;
  s.key = key;
  s.size = size;
  s.mtime_ns = 1234;
  s.etag_hash = 99;
  s.meta = SlotMeta::make(SlotKind::file, state, false, generation);
  return s;
}

std::unique_ptr<IndexWriter> open_index(const std::string& path, uint64_t entries = 1024, IndexOpenResult* r = nullptr) {
  auto w = IndexWriter::open(path, entries, 4 << 20, r);
  REQUIRE_MESSAGE(w.ok(), w.status().message());
  return std::move(*w);
}

}  // namespace

TEST_CASE("slot meta packs kind, state, flag and generation") {
  uint32_t m = SlotMeta::make(SlotKind::file, FileState::partial, true, 0xABCDEF);
  CHECK(SlotMeta::kind(m) == SlotKind::file);
  CHECK(SlotMeta::state(m) == FileState::partial);
  CHECK(SlotMeta::blocks(m));
  CHECK(SlotMeta::generation(m) == 0xABCDEF);
  CHECK(SlotMeta::generation(SlotMeta::make(SlotKind::file, FileState::absent, false, 0x1000000)) == 0);
}

TEST_CASE("keys: stable, distinct per mount and path, never the empty key") {
  IndexKey a = index_key(1, "train/a.jpg"), b = index_key(2, "train/a.jpg"), c = index_key(1, "train/b.jpg");
  CHECK(a == index_key(1, "train/a.jpg"));
  CHECK_FALSE(a == b);
  CHECK_FALSE(a == c);
  CHECK_FALSE(index_key(1, "").empty());
}

TEST_CASE("insert, find, update, remove; slots are dense and stable; a second reader sees it all") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  IndexOpenResult opened;
  auto w = open_index(path, 1024, &opened);
  CHECK(opened.created);
  IndexReader reader;
  REQUIRE(reader.open(path.c_str()) == 0);

  // Keys whose directory probes collide (same low bits) chain.
  std::vector<IndexKey> keys;
  for (uint64_t i = 0; i < 5; ++i) keys.push_back(IndexKey{(i << 20) | 7, (i + 1) << 40});
  std::vector<uint64_t> slots;
  for (auto& k : keys) {
    auto slot = w->upsert(file_slot(k, 100, FileState::absent));
    REQUIRE(slot.ok());
    slots.push_back(*slot);
  }
  CHECK(slots == std::vector<uint64_t>{0, 1, 2, 3, 4});
  SlotSnapshot s;
  uint64_t at = 99;
  REQUIRE(reader.find(keys[3], s, &at) == LookupResult::found);
  CHECK(at == 3);
  CHECK(s.size == 100);
  CHECK(*w->upsert(file_slot(keys[3], 200, FileState::absent)) == 3);  // replaces in place

  w->modify(at, [](SlotSnapshot& v) {
    v.meta = SlotMeta::make(SlotKind::file, FileState::complete, false, v.generation() + 1);
  });
  REQUIRE(reader.find(keys[3], s, nullptr) == LookupResult::found);
  CHECK(s.state() == FileState::complete);
  CHECK(s.generation() == 1);

  w->remove(slots[1]);
  CHECK(reader.find(keys[1], s, nullptr) == LookupResult::not_found);
  CHECK(reader.find(keys[4], s, nullptr) == LookupResult::found);  // past the removed entry
  // A new key reuses the removed slot.
  IndexKey fresh{(9 << 20) | 7, 77};
  auto reused = w->upsert(file_slot(fresh, 5, FileState::absent));
  REQUIRE(reused.ok());
  CHECK(*reused == slots[1]);
  REQUIRE(reader.find(fresh, s, nullptr) == LookupResult::found);
  CHECK(s.size == 5);
  CHECK(w->header().live_entries.load() == 5);
  CHECK(reader.find(IndexKey{123456, 1}, s, nullptr) == LookupResult::not_found);
}

TEST_CASE("a full index is a clear ENOSPC") {
  TempDir dir;
  auto w = open_index(dir.path + "/index", 1024);
  Status last;
  int inserted = 0;
  for (uint64_t i = 1; i < 2000; ++i) {
    auto r = w->upsert(file_slot(IndexKey{i * 2654435761u, i}, 1, FileState::absent));
    if (!r.ok()) {
      last = r.status();
      break;
    }
    ++inserted;
  }
  CHECK(inserted == 1024);
  CHECK(last.code() == ENOSPC);
  CHECK(last.message().find("DSCACHE_INDEX_ENTRIES") != std::string::npos);
}

TEST_CASE("the directory grows as entries arrive; every entry stays findable; bytes per entry stay small") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  auto w = open_index(path, 1 << 20);
  IndexReader reader;
  REQUIRE(reader.open(path.c_str()) == 0);
  const uint64_t n = 200'000;
  for (uint64_t i = 0; i < n; ++i) {
    std::string p = "train/class" + std::to_string(i % 1000) + "/img" + std::to_string(i) + ".jpg";
    REQUIRE(w->upsert(file_slot(index_key(3, p.c_str()), i, FileState::absent)).ok());
    if (i % 50'000 == 0) {
      // Readers find what was there before a directory switch, and after.
      SlotSnapshot s;
      CHECK(reader.find(index_key(3, "train/class0/img0.jpg"), s, nullptr) == LookupResult::found);
    }
  }
  for (uint64_t i = 0; i < n; i += 997) {
    std::string p = "train/class" + std::to_string(i % 1000) + "/img" + std::to_string(i) + ".jpg";
    SlotSnapshot s;
    REQUIRE(reader.find(index_key(3, p.c_str()), s, nullptr) == LookupResult::found);
    CHECK(s.size == i);
  }
  const IndexHeader& h = w->header();
  uint64_t logical = h.slots_used.load() * sizeof(IndexSlot) + (h.directory_mask.load() + 1) * 8;
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  uint64_t physical = static_cast<uint64_t>(st.st_blocks) * 512;
  MESSAGE("200k entries: " << logical / n << " B/entry by layout, " << physical / n << " B/entry on disk");
  CHECK(logical / n <= 128);
  CHECK(physical / n <= 160);  // plus the header, stats and page rounding
}

TEST_CASE("an index of another version or block size is rebuilt, never misread") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  { open_index(path); }
  {
    IndexOpenResult r;
    auto w = IndexWriter::open(path, 1024, 8 << 20, &r);
    REQUIRE(w.ok());
    CHECK(r.created);
    CHECK(r.replaced_reason.find("DSCACHE_BLOCK_SIZE") != std::string::npos);
  }
  int fd = ::open(path.c_str(), O_WRONLY);
  uint32_t bad_version = 999;
  REQUIRE(::pwrite(fd, &bad_version, 4, 8) == 4);
  ::close(fd);
  IndexReader reader;
  CHECK(reader.open(path.c_str()) == -EPROTO);
  IndexOpenResult r;
  auto w = IndexWriter::open(path, 1024, 8 << 20, &r);
  REQUIRE(w.ok());
  CHECK(r.created);
  CHECK(r.replaced_reason.find("version") != std::string::npos);
  CHECK(reader.open(path.c_str()) == 0);
}

TEST_CASE("a replaced index is retired: readers still mapping it stop trusting it") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  auto first = open_index(path);
  SlotSnapshot file;
  file.key = index_key(1, "a.bin", 5);
  file.size = 10;
  file.meta = SlotMeta::make(SlotKind::file, FileState::complete, false, 0);
  REQUIRE(first->upsert(file).ok());
  IndexReader old_reader;
  REQUIRE(old_reader.open(path.c_str()) == 0);
  SlotSnapshot out;
  uint64_t slot = 0;
  REQUIRE(old_reader.find(file.key, out, &slot) == LookupResult::found);
  CHECK_FALSE(old_reader.retired());
  // Another daemon, another block size: a new index replaces the file.
  IndexOpenResult r;
  auto second = IndexWriter::open(path, 1024, 8 << 20, &r);
  REQUIRE(second.ok());
  REQUIRE(r.created);
  CHECK(old_reader.retired());
  CHECK(old_reader.find(file.key, out, nullptr) == LookupResult::busy);
  CHECK(old_reader.read(slot, out) == LookupResult::busy);
  IndexReader new_reader;
  REQUIRE(new_reader.open(path.c_str()) == 0);
  CHECK_FALSE(new_reader.retired());
  CHECK(new_reader.find(file.key, out, nullptr) == LookupResult::not_found);
}

TEST_CASE("recovery: fills cut short become absent; after a reboot without a clean shutdown, bytes are distrusted") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  uint64_t filling, complete, partial;
  {
    auto w = open_index(path);
    w->recover("boot-A");
    filling = *w->upsert(file_slot(index_key(1, "filling"), 10, FileState::filling));
    complete = *w->upsert(file_slot(index_key(1, "complete"), 10, FileState::complete));
    SlotSnapshot p = file_slot(index_key(1, "partial"), 10, FileState::partial);
    p.meta = SlotMeta::make(SlotKind::file, FileState::partial, true, 0);
    p.aux = w->allocate_blocks(100, 4 << 20, "etag-1", 0);
    REQUIRE(p.aux != 0);
    w->block_record(p.aux)->bitmap()[0].store(0xF);
    partial = *w->upsert(p);
    // No mark_clean(): the daemon died.
  }
  SUBCASE("same boot (daemon killed): complete and partial data stay trusted") {
    auto w = open_index(path);
    auto r = w->recover("boot-A");
    CHECK_FALSE(r.previous_clean);
    CHECK_FALSE(r.rebooted);
    CHECK(r.filling_reset == 1);
    CHECK(r.unverified == 0);
    SlotSnapshot s;
    w->reader().read(filling, s);
    CHECK(s.state() == FileState::absent);
    w->reader().read(complete, s);
    CHECK(s.state() == FileState::complete);
    w->reader().read(partial, s);
    CHECK(s.state() == FileState::partial);
  }
  SUBCASE("rebooted after a crash: complete becomes unverified, partial blocks are cleared") {
    auto w = open_index(path);
    auto r = w->recover("boot-B");
    CHECK(r.rebooted);
    CHECK(r.unverified == 1);
    CHECK(r.partial_reset == 1);
    SlotSnapshot s;
    w->reader().read(complete, s);
    CHECK(s.state() == FileState::unverified);
    w->reader().read(partial, s);
    CHECK(s.state() == FileState::absent);
    CHECK(w->block_record(s.aux)->bitmap()[0].load() == 0);
  }
  SUBCASE("rebooted after a clean shutdown: everything stays") {
    {
      auto w = open_index(path);
      w->recover("boot-A");
      w->mark_clean();
    }
    auto w = open_index(path);
    auto r = w->recover("boot-B");
    CHECK(r.previous_clean);
    CHECK(r.unverified == 0);
  }
}

TEST_CASE("block records: presence by range, reuse keeps the offset") {
  TempDir dir;
  auto w = open_index(dir.path + "/index");
  uint64_t off = w->allocate_blocks(130, 4 << 20, "\"etag\"", 0);
  REQUIRE(off != 0);
  BlockRecord* r = w->block_record(off);
  REQUIRE(r != nullptr);
  CHECK(r->block_count == 130);
  CHECK(std::string(r->etag, r->etag_length) == "\"etag\"");
  r->bitmap()[0].store(~uint64_t{0});
  r->bitmap()[1].store(0x3);
  CHECK(IndexReader::blocks_present(*r, 0, 63));
  CHECK(IndexReader::blocks_present(*r, 10, 65));
  CHECK_FALSE(IndexReader::blocks_present(*r, 10, 66));
  CHECK_FALSE(IndexReader::blocks_present(*r, 129, 130));
  CHECK(w->allocate_blocks(100, 4 << 20, "e2", off) == off);
  CHECK_FALSE(IndexReader::blocks_present(*w->block_record(off), 0, 0));
  CHECK(w->allocate_blocks(200, 4 << 20, "e3", off) != off);
}

namespace {

// Writer rewrites slots with fields that must agree (size = n, mtime = 2n,
// etag = 3n, aux = 5n); readers check every snapshot they get.
bool consistent(const SlotSnapshot& s) {
  uint64_t n = s.size;
  return static_cast<uint64_t>(s.mtime_ns) == 2 * n && s.etag_hash == 3 * n && s.aux == 5 * n;
}

SlotSnapshot numbered(const IndexKey& key, uint64_t n) {
  SlotSnapshot s = file_slot(key, n, FileState::complete, static_cast<uint32_t>(n));
  s.mtime_ns = static_cast<int64_t>(2 * n);
  s.etag_hash = 3 * n;
  s.aux = 5 * n;
  return s;
}

}  // namespace

TEST_CASE("readers racing the writer never see a torn slot: threads and processes") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  auto w = open_index(path, 4096);
  std::vector<IndexKey> keys;
  std::vector<uint64_t> slots;
  for (uint64_t i = 0; i < 16; ++i) {
    keys.push_back(index_key(7, ("k" + std::to_string(i)).c_str()));
    slots.push_back(*w->upsert(numbered(keys.back(), 1)));
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t n = 2; !stop.load(); ++n) w->write(slots[n % slots.size()], numbered(keys[n % keys.size()], n));
  });

  // Reader processes map the file themselves, as the shim does.
  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    pid_t pid = ::fork();
    if (pid == 0) {
      IndexReader reader;
      if (reader.open(path.c_str()) != 0) ::_exit(2);
      for (int i = 0; i < 300000; ++i) {
        SlotSnapshot s;
        LookupResult r = reader.find(keys[static_cast<size_t>(i) % keys.size()], s, nullptr);
        if (r == LookupResult::found && !consistent(s)) ::_exit(1);
        if (r == LookupResult::not_found) ::_exit(3);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  std::atomic<int> torn{0}, found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      IndexReader reader;
      REQUIRE(reader.open(path.c_str()) == 0);
      for (int i = 0; i < 300000; ++i) {
        SlotSnapshot s;
        if (reader.find(keys[static_cast<size_t>(i) % keys.size()], s, nullptr) == LookupResult::found) {
          ++found;
          if (!consistent(s)) ++torn;
        }
      }
    });
  }
  for (auto& t : readers) t.join();
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  stop = true;
  writer.join();
  CHECK(torn == 0);
  CHECK(found > 800000);  // busy results are allowed, but rare
}

TEST_CASE("a slot left odd by a killed writer: readers give up (busy), recovery repairs it") {
  TempDir dir;
  const std::string path = dir.path + "/index";
  uint64_t slot;
  IndexKey key = index_key(1, "victim");
  {
    auto w = open_index(path);
    slot = *w->upsert(file_slot(key, 1, FileState::complete));
    // Simulate a writer killed mid-write: odd sequence, writing_slot recorded.
    IndexHeader& h = w->mutable_header();
    h.writing_slot.store(slot);
    auto* slots = reinterpret_cast<IndexSlot*>(reinterpret_cast<char*>(&h) + h.slots_offset);
    slots[slot].seq.fetch_add(1);
  }
  IndexReader reader;
  REQUIRE(reader.open(path.c_str()) == 0);
  SlotSnapshot s;
  CHECK(reader.find(key, s, nullptr) == LookupResult::busy);
  auto w = open_index(path);
  auto r = w->recover("boot");
  CHECK(r.repaired_torn_slot);
  CHECK(reader.find(key, s, nullptr) == LookupResult::not_found);
}
