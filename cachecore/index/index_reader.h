// IndexReader: lock-free reads of the shared index, libc only (the shim uses
// it on every open of a mapped path). A read copies one slot under its
// seqlock; a slot the daemon is writing at the moment is retried a bounded
// number of times, then reported busy (the caller asks the daemon instead),
// so a daemon killed mid-write can never make a reader spin forever.
#pragma once

#include <cstdint>

#include "index/index_key.h"
#include "index/index_layout.h"

namespace dscache {

// A consistent copy of one slot.
struct SlotSnapshot {
  IndexKey key;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t etag_hash = 0;
  uint64_t aux = 0;
  uint32_t meta = 0;

  SlotKind kind() const { return SlotMeta::kind(meta); }
  FileState state() const { return SlotMeta::state(meta); }
  bool blocks() const { return SlotMeta::blocks(meta); }
  bool evicted() const { return SlotMeta::evicted(meta); }
  uint32_t generation() const { return SlotMeta::generation(meta); }
};

enum class LookupResult : uint8_t { found, not_found, busy };

class IndexReader {
 public:
  IndexReader() = default;
  ~IndexReader();
  IndexReader(const IndexReader&) = delete;
  IndexReader& operator=(const IndexReader&) = delete;

  // Maps the index file. 0, or -errno (-EPROTO: not an index of this version).
  int open(const char* path);
  void close();
  bool is_open() const { return base_ != nullptr; }
  // Mapped read-only (a system daemon's index, for another user): stats()
  // must not be written and touch() does nothing.
  bool read_only() const { return read_only_; }
  // A daemon replaced this index: nothing in it may be trusted any more.
  bool retired() const {
    return base_ != nullptr && __atomic_load_n(&header().magic, __ATOMIC_ACQUIRE) != kIndexMagic;
  }

  LookupResult find(const IndexKey& key, SlotSnapshot& out, uint64_t* slot_index) const;
  LookupResult read(uint64_t slot_index, SlotSnapshot& out) const;
  // Records an access for LRU (a relaxed store; no read-modify-write).
  void touch(uint64_t slot_index, int64_t now_s) const;

  // The BlockRecord at `offset` in the arena, or null if the offset is bad.
  const BlockRecord* block_record(uint64_t offset) const;
  // True if every block of [first, last] is present.
  static bool blocks_present(const BlockRecord& record, uint64_t first, uint64_t last);

  const IndexHeader& header() const { return *reinterpret_cast<const IndexHeader*>(base_); }
  StatsBlock& stats() const { return *reinterpret_cast<StatsBlock*>(base_ + header().stats_offset); }
  uint64_t slot_capacity() const { return slot_capacity_; }
  // The directory fingerprint of a key (top bit set, so never 0 or 1).
  static uint32_t fingerprint(const IndexKey& key) { return static_cast<uint32_t>(key.hi >> 32) | 0x80000000u; }

  // Copies a slot under its seqlock (used by the writer as well).
  static bool read_slot(const IndexSlot& slot, SlotSnapshot& out);

 private:
  IndexSlot* slots() const { return reinterpret_cast<IndexSlot*>(base_ + header().slots_offset); }
  const uint64_t* directory(uint64_t region) const {
    return reinterpret_cast<const uint64_t*>(base_ + header().directory_offset[region & 1]);
  }

  char* base_ = nullptr;
  bool read_only_ = false;
  uint64_t size_ = 0;
  uint64_t slot_capacity_ = 0;
};

}  // namespace dscache
