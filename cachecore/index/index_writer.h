// IndexWriter: the daemon's side of the shared index, its only writer.
// Creates or validates the index file, repairs it after a crash, inserts,
// updates and removes slots under their seqlocks, and allocates BlockRecords.
// Mutations are serialised by one mutex; readers never take it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "index/index_reader.h"

namespace dscache {

struct IndexOpenResult {
  bool created = false;  // a new, empty index (first start, or the old one was unusable)
  std::string replaced_reason;  // why an existing file was replaced, if it was
};

class IndexWriter {
 public:
  // Opens `path`, or creates it with `entries` slots (a power of two) when it
  // is missing or unusable (another version, truncated, foreign): a mismatch
  // is rebuilt, never misread; the caller then starts from an empty mirror.
  ~IndexWriter();
  static Result<std::unique_ptr<IndexWriter>> open(const std::string& path, uint64_t entries, uint64_t block_size,
                                                  IndexOpenResult* result);

  // What the previous daemon left behind, and how open() fixed it up.
  struct Recovery {
    bool previous_clean = true;
    bool rebooted = false;          // the bytes' boot differs from this boot
    uint64_t filling_reset = 0;     // fills cut short: back to absent
    uint64_t unverified = 0;        // complete files to be checked before use
    uint64_t partial_reset = 0;     // partial large files cleared (rebooted)
    bool repaired_torn_slot = false;
  };
  // Call once after open(), before serving: resets fills that were in flight,
  // demotes complete files to unverified if the machine rebooted after an
  // unclean shutdown, marks a daemon as running.
  Recovery recover(const char* boot_id);
  // A clean shutdown: the caller has synced the cache's file system.
  void mark_clean();

  const IndexReader& reader() const { return reader_; }
  const IndexHeader& header() const { return reader_.header(); }
  IndexHeader& mutable_header() { return const_cast<IndexHeader&>(reader_.header()); }
  StatsBlock& stats() const { return reader_.stats(); }

  LookupResult find(const IndexKey& key, SlotSnapshot& out, uint64_t* slot_index) const {
    return reader_.find(key, out, slot_index);
  }

  // Inserts or replaces the slot for value.key; returns its index (stable for
  // the entry's life). ENOSPC when DSCACHE_INDEX_ENTRIES entries exist, or
  // when the file system has no room for the index to grow (nothing written).
  Result<uint64_t> upsert(const SlotSnapshot& value);
  // Rewrites an existing slot (its key must match).
  void write(uint64_t slot_index, const SlotSnapshot& value);
  // Applies `change` to a consistent copy of the slot and writes it back.
  void modify(uint64_t slot_index, const std::function<void(SlotSnapshot&)>& change);
  void remove(uint64_t slot_index);

  // A BlockRecord for `blocks` blocks: `reuse` (an offset, or 0) if it has
  // room, else a new one. The bitmap is cleared. 0 when the arena is full or
  // the file system has no room for it to grow (then `why` says which).
  uint64_t allocate_blocks(uint32_t blocks, uint64_t block_size, const std::string& etag, uint64_t reuse,
                           Status* why = nullptr);
  BlockRecord* block_record(uint64_t offset);

  // Visits every file and directory slot.
  void for_each(const std::function<void(uint64_t slot_index, const SlotSnapshot&)>& visit) const;

  uint64_t slot_capacity() const { return reader_.slot_capacity(); }
  int64_t now_access_stamp() const;

 private:
  explicit IndexWriter(std::string path) : path_(std::move(path)) {}
  void write_locked(uint64_t slot_index, const SlotSnapshot& value);
  // Fails (ENOSPC) only when neither region can hold the entries.
  Status rebuild_directory_locked(uint64_t extra);
  // The file is sparse, and a page of a shared mapping first touched on a
  // full file system kills the process with SIGBUS: every page is allocated
  // (posix_fallocate) before it is first written, region by region, as each
  // grows (slots, arena: in chunks; a directory region: whole, when built).
  Status back_locked(uint64_t offset, uint64_t length, const char* what);
  Status back_slots_locked(uint64_t count);
  IndexSlot* slots() const;
  uint64_t* directory(uint64_t region) const;
  // Enters every live slot of the first `used` into the (empty) directory `dir` of mask+1 entries.
  void fill_directory(uint64_t* dir, uint64_t mask, uint64_t used) const;

  std::string path_;
  IndexReader reader_;
  int fd_ = -1;
  std::vector<uint64_t> free_slots_;  // removed slots, reused before the array grows
  uint64_t slots_backed_ = 0;         // file offsets below these are allocated
  uint64_t arena_backed_ = 0;
  mutable std::mutex mutex_;
};

}  // namespace dscache
