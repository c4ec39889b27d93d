// The shared-memory index: the on-disk, mmapped layout every process on the
// node reads and the daemon alone writes.
//
// Plain data only: fixed sizes, offsets instead of pointers, a magic and a
// version (a mismatch rebuilds, never misreads), static_asserts on every
// size. Slots are read with a per-slot seqlock, so no reader ever takes a
// lock a dying process could leave held.
//
//   [0, 4 KiB)                  IndexHeader
//   [4 KiB, slots_offset)       StatsBlock (counters for `dscache stats`)
//   [slots_offset, ...)         IndexSlot[slot_capacity]: dense, in allocation
//                               order; a slot's index never changes
//   [directory_offset[0], ...)  two regions for the directory, a hash table of
//   [directory_offset[1], ...)  8-byte entries (key fingerprint, slot index)
//   [arena_offset, ...)         BlockRecords of large files (bitmap, checksums)
//
// Why a dense array plus a directory: a hash table of 64-byte slots in a
// sparse file touches one 4 KiB page per entry until it is nearly full
// (1 GiB for a million entries in 16M slots). Dense slots cost 64 bytes an
// entry at any size; the directory is kept between a quarter and a half
// full and is rebuilt, bigger, in the other region when it fills (readers
// notice through a sequence number and retry). Each lookup confirms the full
// 128-bit key in the slot, so no directory state can make a wrong match.
//
// The file is sparse; the daemon allocates each region's pages before it
// first writes them (IndexWriter::back_locked): a page of a shared mapping
// first touched on a full file system is SIGBUS, not ENOSPC.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config/config.h"

namespace dscache {

inline constexpr uint64_t kIndexMagic = 0x3130584449435344ull;  // "DSCIDX01"
// Written over the magic of an index a daemon replaces (another version or
// block size): processes that still map it stop trusting it, whatever their
// version, and open the new one.
inline constexpr uint64_t kIndexRetiredMagic = 0x4452524944435344ull;  // "DSCIDRRD"
inline constexpr uint32_t kIndexVersion = 3;
// IndexHeader::flags: the daemon guards partial files in the kernel
// (fanotify pre-content): reads no hook sees (stdio's) find no hole there,
// so a file opened with fopen need not be completed first.
inline constexpr uint64_t kIndexFlagKernelGuard = 1;
inline constexpr size_t kIndexHeaderSize = 4096;

enum class SlotKind : uint8_t {
  empty = 0,      // free (never used, or removed and awaiting reuse)
  tombstone = 1,  // unused since version 2
  file = 2,
  directory = 3,
};

// Directory entries: 0 empty, 1 removed (probing continues), otherwise
// (fingerprint << 32) | (slot index + 1), the fingerprint's top bit set.
inline constexpr uint64_t kDirectoryEmpty = 0;
inline constexpr uint64_t kDirectoryRemoved = 1;

enum class FileState : uint8_t {
  absent = 0,      // a placeholder of the right size; no data
  filling = 1,     // the daemon is fetching it whole
  complete = 2,    // every byte is present and was checked
  partial = 3,     // a large file: the BlockRecord's bitmap says which blocks are present
  unverified = 4,  // bytes present from before an unclean shutdown; checked before use
};

// meta: kind (3 bits) | state (3 bits) | blocks flag (1 bit) | evicted flag (1 bit) | generation (24 bits)
// The evicted flag marks a file whose data this cache dropped: a miss on it
// is a re-reference, which tells the evictor it is thrashing.
struct SlotMeta {
  static constexpr uint32_t kBlocksFlag = 1u << 6;
  static constexpr uint32_t kEvictedFlag = 1u << 7;
  static constexpr uint32_t kGenerationShift = 8;
  static constexpr uint32_t kGenerationMask = 0xFFFFFFu;

  static uint32_t make(SlotKind kind, FileState state, bool blocks, uint32_t generation, bool evicted = false) {
    return static_cast<uint32_t>(kind) | (static_cast<uint32_t>(state) << 3) | (blocks ? kBlocksFlag : 0u) |
           (evicted ? kEvictedFlag : 0u) | ((generation & kGenerationMask) << kGenerationShift);
  }
  static SlotKind kind(uint32_t meta) { return static_cast<SlotKind>(meta & 7u); }
  static FileState state(uint32_t meta) { return static_cast<FileState>((meta >> 3) & 7u); }
  static bool blocks(uint32_t meta) { return (meta & kBlocksFlag) != 0; }
  static bool evicted(uint32_t meta) { return (meta & kEvictedFlag) != 0; }
  static uint32_t generation(uint32_t meta) { return (meta >> kGenerationShift) & kGenerationMask; }
};

// One file or directory. 64 bytes, one cache line.
struct alignas(64) IndexSlot {
  std::atomic<uint64_t> seq;  // even: stable; odd: the daemon is writing this slot
  uint64_t key_lo;            // 128-bit hash of (mount id, path): see index_key.h
  uint64_t key_hi;
  uint64_t size;              // file: the object's size
  int64_t mtime_ns;           // file: the object's mtime; directory: when it was listed (0: never)
  uint64_t etag_hash;         // file: hash of the object's ETag (identity)
  uint64_t aux;               // file, whole: checksum of the bytes; file, blocks: BlockRecord offset
  uint32_t meta;              // SlotMeta
  std::atomic<uint32_t> last_access;  // seconds since IndexHeader::epoch_s; readers store it (relaxed)
};
static_assert(sizeof(IndexSlot) == 64);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);

struct IndexHeaderFields {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;
  uint64_t file_size;
  uint64_t slot_capacity;       // slots the file has room for (DSCACHE_INDEX_ENTRIES)
  uint64_t slots_offset;
  uint64_t directory_offset[2];
  uint64_t directory_capacity;  // entries a directory region has room for (a power of two)
  uint64_t stats_offset;
  uint64_t arena_offset;
  uint64_t arena_size;
  uint64_t block_size;
  int64_t created_ns;
  int64_t epoch_s;           // base of IndexSlot::last_access
  char boot_id[40];          // /proc/sys/kernel/random/boot_id when the bytes were last vouched for
  std::atomic<uint32_t> clean;       // 1: the last daemon shut down cleanly (bytes synced)
  std::atomic<uint32_t> daemon_pid;  // 0 when none runs
  std::atomic<uint64_t> writing_slot;  // slot being written, or ~0: repaired after a crash
  std::atomic<uint64_t> arena_used;
  std::atomic<uint64_t> slots_used;    // the dense array's high-water mark
  std::atomic<uint64_t> live_entries;  // files + directories
  // The directory in use, under its own seqlock (odd while it is switched).
  std::atomic<uint64_t> directory_seq;
  std::atomic<uint64_t> directory_region;  // 0 or 1
  std::atomic<uint64_t> directory_mask;    // entries - 1
  std::atomic<uint64_t> directory_used;    // entries that are not empty (live + removed)
  // CLOCK_REALTIME ns of the daemon's last event-loop turn (at least one a
  // second); 0 before a daemon that writes it ran. Clients waiting on a reply
  // tell a hung daemon from a slow one by it. (Was reserved, zero: no version change.)
  std::atomic<int64_t> heartbeat_ns;
  // kIndexFlag* bits the running daemon sets.
  std::atomic<uint64_t> flags;
};

struct IndexHeader : IndexHeaderFields {
  uint8_t reserved[kIndexHeaderSize - sizeof(IndexHeaderFields)];
};
static_assert(sizeof(IndexHeaderFields) == 240);
static_assert(sizeof(IndexHeader) == kIndexHeaderSize);

// Counters for one mount (or the whole node, in StatsBlock::total). Written
// with relaxed atomic adds by the daemon and the shim.
struct alignas(64) MountStats {
  static constexpr int kLatencyBuckets = 20;  // fetch latency: bucket i counts [2^i, 2^(i+1)) ms, last: more

  std::atomic<uint64_t> mount_id;  // 0: unused
  std::atomic<uint64_t> hits;          // opens served from complete cached files, without waiting
  std::atomic<uint64_t> misses;        // opens that had to wait for a fetch
  std::atomic<uint64_t> bytes_served;  // sizes of the files opened from the cache, and bytes read from partial ones
  std::atomic<uint64_t> bytes_fetched;
  std::atomic<uint64_t> objects_fetched;
  std::atomic<uint64_t> fetches_in_flight;
  std::atomic<uint64_t> evictions;
  std::atomic<uint64_t> bytes_evicted;
  std::atomic<uint64_t> errors;
  std::atomic<uint64_t> listings;
  std::atomic<uint64_t> bytes_cached;  // total only: bytes of data held (the daemon publishes it each second)
  std::atomic<uint64_t> fetch_latency[kLatencyBuckets];
  std::atomic<uint64_t> wait_ns;         // time programs spent waiting on the daemon (the shim adds it)
  std::atomic<uint64_t> capacity_bytes;  // total only: the cache's capacity (0: bounded by free space)
  // Served through: files fetched for a reader and evicted first, to keep
  // the resident set (DSCACHE_EVICTION=auto, while thrashing), and blocks a
  // file larger than the cache's room recycled. A cache smaller than what
  // is read shows here. (Were reserved, zero.)
  std::atomic<uint64_t> through_files;
  std::atomic<uint64_t> through_bytes;
  // HEADs made while listing, for DSCACHE_MTIME=metadata. (Was reserved, zero.)
  std::atomic<uint64_t> heads;
};
static_assert(sizeof(MountStats) == 320);

struct StatsBlock {
  MountStats total;
  MountStats mounts[kMaxMounts];
};
static_assert(sizeof(StatsBlock) % 64 == 0);

// A large file's block state, in the arena. Followed in memory by
// bitmap_words atomic words (bit b: block b present) and block_capacity
// 32-bit block checksums.
struct BlockRecord {
  static constexpr uint32_t kMagic = 0x4B4C4244;  // "DBLK"
  uint32_t magic;
  uint32_t block_capacity;  // blocks this record has room for (kept when reused)
  uint32_t block_count;     // blocks of the current object
  uint32_t etag_length;
  uint64_t block_size;
  // Bumped by the daemon each time it drops blocks it had filled (a file
  // larger than the cache's room recycles its own blocks) *after* clearing
  // their bits and *before* punching them out. A reader that read a range
  // under one value and sees another after the read may have read a punched
  // hole, and reads again (a seqlock; see shim/partial_files.cpp).
  std::atomic<uint64_t> recycles;
  char etag[88];  // the full ETag, for If-Match on ranged fills
  std::atomic<uint64_t>* bitmap() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }
  const std::atomic<uint64_t>* bitmap() const { return reinterpret_cast<const std::atomic<uint64_t>*>(this + 1); }
  uint32_t* checksums() { return reinterpret_cast<uint32_t*>(bitmap() + words(block_capacity)); }
  static uint64_t words(uint32_t blocks) { return (blocks + 63) / 64; }
  static uint64_t bytes_for(uint32_t blocks) {
    return (sizeof(BlockRecord) + words(blocks) * 8 + uint64_t{blocks} * 4 + 63) / 64 * 64;
  }
};
static_assert(sizeof(BlockRecord) == 120);
static_assert(alignof(BlockRecord) <= 8);

}  // namespace dscache
