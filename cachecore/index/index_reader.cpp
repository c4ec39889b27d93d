// libc only: this file is also compiled into libdscache.so.
#include "index/index_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace dscache {
namespace {

constexpr int kReadAttempts = 2000;

template <class T>
T load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

IndexReader::~IndexReader() { close(); }

int IndexReader::open(const char* path) {
  close();
  // A system daemon's users may read its index, not write it: then no
  // access times and no counters are kept for their reads.
  bool read_only = false;
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    read_only = true;
    fd = ::open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return -errno;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  if (static_cast<uint64_t>(st.st_size) < kIndexHeaderSize) {
    ::close(fd);
    return -EPROTO;
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), read_only ? PROT_READ : PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return -err;
  const auto* h = static_cast<const IndexHeader*>(map);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  bool valid = h->magic == kIndexMagic && h->version == kIndexVersion && h->header_size == kIndexHeaderSize &&
               h->file_size == size && h->slot_capacity != 0 && h->slot_capacity < (uint64_t{1} << 32) &&
               h->stats_offset + sizeof(StatsBlock) <= h->slots_offset &&
               h->slots_offset + h->slot_capacity * sizeof(IndexSlot) <= size && h->directory_capacity != 0 &&
               (h->directory_capacity & (h->directory_capacity - 1)) == 0 &&
               h->directory_offset[0] + h->directory_capacity * 8 <= size &&
               h->directory_offset[1] + h->directory_capacity * 8 <= size && h->arena_offset + h->arena_size <= size;
  if (!valid) {
    ::munmap(map, static_cast<size_t>(st.st_size));
    return -EPROTO;
  }
  base_ = static_cast<char*>(map);
  read_only_ = read_only;
  size_ = size;
  slot_capacity_ = h->slot_capacity;
  return 0;
}

void IndexReader::close() {
  if (base_ != nullptr) ::munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  slot_capacity_ = 0;
}

bool IndexReader::read_slot(const IndexSlot& slot, SlotSnapshot& out) {
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    uint64_t before = slot.seq.load(std::memory_order_acquire);
    if ((before & 1) != 0) {
      cpu_relax();
      continue;
    }
    out.key.lo = load(&slot.key_lo);
    out.key.hi = load(&slot.key_hi);
    out.size = load(&slot.size);
    out.mtime_ns = load(&slot.mtime_ns);
    out.etag_hash = load(&slot.etag_hash);
    out.aux = load(&slot.aux);
    out.meta = load(&slot.meta);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) == before) return true;
  }
  return false;
}

LookupResult IndexReader::find(const IndexKey& key, SlotSnapshot& out, uint64_t* slot_index) const {
  if (base_ == nullptr || retired()) return LookupResult::busy;
  const IndexHeader& h = header();
  const uint64_t want = IndexReader::fingerprint(key);
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    const uint64_t seq = h.directory_seq.load(std::memory_order_acquire);
    if ((seq & 1) != 0) {
      cpu_relax();
      continue;  // the daemon is switching directories
    }
    const uint64_t* dir = directory(h.directory_region.load(std::memory_order_relaxed));
    const uint64_t mask = h.directory_mask.load(std::memory_order_relaxed);
    LookupResult result = LookupResult::not_found;
    for (uint64_t probe = 0, i = key.lo & mask; probe <= mask; ++probe, i = (i + 1) & mask) {
      const uint64_t entry = __atomic_load_n(&dir[i], __ATOMIC_ACQUIRE);
      if (entry == kDirectoryEmpty) break;
      if (entry == kDirectoryRemoved || (entry >> 32) != want) continue;
      const uint64_t index = (entry & 0xFFFFFFFFu) - 1;
      if (index >= slot_capacity_) continue;
      SlotSnapshot s;
      if (!read_slot(slots()[index], s)) return LookupResult::busy;
      // The slot has the last word: a stale or damaged directory entry
      // can only fail to match, never match the wrong file.
      if (s.key == key && (s.kind() == SlotKind::file || s.kind() == SlotKind::directory)) {
        out = s;
        if (slot_index != nullptr) *slot_index = index;
        result = LookupResult::found;
        break;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (h.directory_seq.load(std::memory_order_relaxed) == seq) return result;
  }
  return LookupResult::busy;
}

LookupResult IndexReader::read(uint64_t slot_index, SlotSnapshot& out) const {
  if (base_ == nullptr || slot_index >= slot_capacity_ || retired()) return LookupResult::busy;
  return read_slot(slots()[slot_index], out) ? LookupResult::found : LookupResult::busy;
}

void IndexReader::touch(uint64_t slot_index, int64_t now_s) const {
  if (base_ == nullptr || read_only_ || slot_index >= slot_capacity_) return;
  int64_t rel = now_s - header().epoch_s;
  uint32_t value = rel <= 0 ? 1u : rel >= 0xFFFFFFFF ? 0xFFFFFFFFu : static_cast<uint32_t>(rel);
  std::atomic<uint32_t>& last = slots()[slot_index].last_access;
  // Skip the store when nothing changes: no cache-line traffic for hot files.
  if (last.load(std::memory_order_relaxed) != value) last.store(value, std::memory_order_relaxed);
}

const BlockRecord* IndexReader::block_record(uint64_t offset) const {
  if (base_ == nullptr) return nullptr;
  const IndexHeader& h = header();
  if (offset < h.arena_offset || offset % 64 != 0 || offset + sizeof(BlockRecord) > h.arena_offset + h.arena_size) {
    return nullptr;
  }
  const auto* record = reinterpret_cast<const BlockRecord*>(base_ + offset);
  if (record->magic != BlockRecord::kMagic ||
      offset + BlockRecord::bytes_for(record->block_capacity) > h.arena_offset + h.arena_size ||
      record->block_count > record->block_capacity) {
    return nullptr;
  }
  return record;
}

bool IndexReader::blocks_present(const BlockRecord& record, uint64_t first, uint64_t last) {
  if (last >= record.block_count || first > last) return false;
  const std::atomic<uint64_t>* bitmap = record.bitmap();
  for (uint64_t b = first; b <= last;) {
    uint64_t word = bitmap[b / 64].load(std::memory_order_acquire);
    uint64_t bit = b % 64;
    uint64_t end_bit = (last / 64 == b / 64) ? last % 64 : 63;
    uint64_t want = (end_bit == 63 ? ~uint64_t{0} : ((uint64_t{1} << (end_bit + 1)) - 1)) & ~((uint64_t{1} << bit) - 1);
    if ((word & want) != want) return false;
    b = (b / 64 + 1) * 64;
  }
  return true;
}

}  // namespace dscache
