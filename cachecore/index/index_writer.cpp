#include "index/index_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/log.h"

namespace dscache {
namespace {

constexpr uint64_t kNoSlot = ~uint64_t{0};
constexpr uint64_t kPage = 4096;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class T>
void store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

Status create_index(const std::string& path, uint64_t entries, uint64_t block_size) {
  const uint64_t stats_offset = kIndexHeaderSize;
  const uint64_t slots_offset = round_up(stats_offset + sizeof(StatsBlock), kPage);
  const uint64_t arena_offset = round_up(slots_offset + entries * sizeof(IndexSlot), kPage);
  const uint64_t arena_size = std::max<uint64_t>(256ull << 20, entries * 16);
  const uint64_t file_size = arena_offset + arena_size;

  std::string tmp = path + ".new." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::error(errno, tmp + ": cannot create the index: " + errno_name(errno));
  // Sparse: pages are allocated only when slots on them are used.
  if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::error(err, tmp + ": cannot size the index: " + errno_name(err));
  }
  IndexHeader header{};
  header.magic = kIndexMagic;
  header.version = kIndexVersion;
  header.header_size = kIndexHeaderSize;
  header.file_size = file_size;
  header.slot_count = entries;
  header.slots_offset = slots_offset;
  header.stats_offset = stats_offset;
  header.arena_offset = arena_offset;
  header.arena_size = arena_size;
  header.block_size = block_size;
  header.created_ns = now_ns();
  header.epoch_s = header.created_ns / 1'000'000'000 - 1;
  header.clean.store(1);
  header.writing_slot.store(kNoSlot);
  header.arena_used.store(0);
  ssize_t n = ::pwrite(fd, &header, sizeof header, 0);
  int err = errno;
  if (n != static_cast<ssize_t>(sizeof header) || ::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::error(n < 0 ? err : EIO, tmp + ": cannot write the index header");
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return Status::error(err, path + ": cannot install the index: " + errno_name(err));
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<IndexWriter>> IndexWriter::open(const std::string& path, uint64_t entries, uint64_t block_size,
                                                      IndexOpenResult* result) {
  std::unique_ptr<IndexWriter> writer(new IndexWriter(path));
  IndexOpenResult local;
  IndexOpenResult& r = result != nullptr ? *result : local;
  int rc = writer->reader_.open(path.c_str());
  if (rc == 0 && writer->reader_.header().block_size != block_size) {
    r.replaced_reason = "it was made for another DSCACHE_BLOCK_SIZE";
    writer->reader_.close();
    rc = -EPROTO;
  } else if (rc == -EPROTO) {
    r.replaced_reason = "it is not an index of this dscache version";
  } else if (rc != 0 && rc != -ENOENT) {
    return Status::error(-rc, path + ": cannot open the index: " + errno_name(-rc));
  }
  if (rc != 0) {
    if (Status s = create_index(path, entries, block_size); !s.ok()) return s;
    r.created = true;
    rc = writer->reader_.open(path.c_str());
    if (rc != 0) return Status::error(-rc, path + ": cannot map the new index: " + errno_name(-rc));
  }
  writer->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (writer->fd_ < 0) return Status::error(errno, path + ": cannot open the index: " + errno_name(errno));
  if (!r.created && writer->reader_.slot_count() != entries) {
    DSCACHE_LOG(info, "%s keeps its %llu slots (DSCACHE_INDEX_ENTRIES applies to a new index: dscache clear)",
                path.c_str(), static_cast<unsigned long long>(writer->reader_.slot_count()));
  }
  return writer;
}

IndexWriter::~IndexWriter() {
  if (fd_ >= 0) ::close(fd_);
}

IndexSlot* IndexWriter::slots() const {
  return reinterpret_cast<IndexSlot*>(const_cast<char*>(reinterpret_cast<const char*>(&reader_.header())) +
                                      reader_.header().slots_offset);
}

int64_t IndexWriter::now_access_stamp() const { return now_ns() / 1'000'000'000; }

IndexWriter::Recovery IndexWriter::recover(const char* boot_id) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  Recovery r;
  r.previous_clean = h.clean.load() == 1;
  r.rebooted = std::strncmp(h.boot_id, boot_id, sizeof h.boot_id) != 0;

  // A daemon killed while writing one slot leaves that slot torn: drop it.
  uint64_t torn = h.writing_slot.load();
  if (torn != kNoSlot && torn < slot_count()) {
    IndexSlot& slot = slots()[torn];
    uint64_t seq = slot.seq.load();
    slot.seq.store(seq | 1);
    store(&slot.meta, SlotMeta::make(SlotKind::tombstone, FileState::absent, false, 0));
    slot.seq.store((seq | 1) + 1, std::memory_order_release);
    r.repaired_torn_slot = true;
  }
  h.writing_slot.store(kNoSlot);

  const bool distrust = !r.previous_clean && r.rebooted;
  scan([&](uint64_t i, SlotSnapshot s) {
    if (s.kind() != SlotKind::file) return;
    FileState state = s.state();
    FileState next = state;
    if (state == FileState::filling) {
      next = FileState::absent;
      ++r.filling_reset;
    } else if (distrust && state == FileState::complete) {
      next = FileState::unverified;
      ++r.unverified;
    } else if (distrust && state == FileState::partial) {
      next = FileState::absent;
      if (s.blocks()) {
        if (BlockRecord* record = block_record(s.aux)) {
          for (uint64_t w = 0; w < BlockRecord::words(record->block_capacity); ++w) record->bitmap()[w].store(0);
        }
      }
      ++r.partial_reset;
    }
    if (next != state) {
      s.meta = SlotMeta::make(SlotKind::file, next, s.blocks(), s.generation() + 1);
      write_locked(i, s);
    }
  });
  std::memset(h.boot_id, 0, sizeof h.boot_id);
  std::strncpy(h.boot_id, boot_id, sizeof h.boot_id - 1);
  h.clean.store(0);
  h.daemon_pid.store(static_cast<uint32_t>(::getpid()));
  return r;
}

void IndexWriter::mark_clean() {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  h.daemon_pid.store(0);
  h.clean.store(1);
  ::msync(&h, reader_.header().file_size, MS_SYNC);
}

void IndexWriter::write_locked(uint64_t i, const SlotSnapshot& v) {
  IndexHeader& h = mutable_header();
  IndexSlot& slot = slots()[i];
  h.writing_slot.store(i, std::memory_order_relaxed);
  uint64_t seq = slot.seq.load(std::memory_order_relaxed);
  slot.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  store(&slot.key_lo, v.key.lo);
  store(&slot.key_hi, v.key.hi);
  store(&slot.size, v.size);
  store(&slot.mtime_ns, v.mtime_ns);
  store(&slot.etag_hash, v.etag_hash);
  store(&slot.aux, v.aux);
  store(&slot.meta, v.meta);
  slot.seq.store(seq + 2, std::memory_order_release);
  h.writing_slot.store(kNoSlot, std::memory_order_relaxed);
}

void IndexWriter::write(uint64_t slot_index, const SlotSnapshot& value) {
  std::lock_guard lock(mutex_);
  write_locked(slot_index, value);
}

void IndexWriter::modify(uint64_t slot_index, const std::function<void(SlotSnapshot&)>& change) {
  std::lock_guard lock(mutex_);
  SlotSnapshot s;
  IndexReader::read_slot(slots()[slot_index], s);  // the only writer holds the lock: never torn
  change(s);
  write_locked(slot_index, s);
}

Result<uint64_t> IndexWriter::upsert(const SlotSnapshot& value) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  const uint64_t mask = slot_count() - 1;
  uint64_t first_free = kNoSlot;
  for (uint64_t probe = 0, i = value.key.lo & mask; probe < slot_count(); ++probe, i = (i + 1) & mask) {
    SlotSnapshot s;
    IndexReader::read_slot(slots()[i], s);
    if (s.kind() == SlotKind::empty) {
      if (first_free == kNoSlot) first_free = i;
      break;
    }
    if (s.kind() == SlotKind::tombstone) {
      if (first_free == kNoSlot) first_free = i;
      continue;
    }
    if (s.key == value.key) {
      write_locked(i, value);
      return i;
    }
  }
  SlotSnapshot old;
  if (first_free != kNoSlot) IndexReader::read_slot(slots()[first_free], old);
  const bool grows = old.kind() == SlotKind::empty;  // reusing a tombstone does not
  if (first_free == kNoSlot || (grows && h.slots_used.load() >= slot_count() / 10 * 9)) {
    return Status::error(ENOSPC, path_ + ": the index is full (" + std::to_string(slot_count()) +
                                     " slots): raise DSCACHE_INDEX_ENTRIES, then dscache clear");
  }
  if (grows) h.slots_used.fetch_add(1);
  h.live_entries.fetch_add(1);
  write_locked(first_free, value);
  slots()[first_free].last_access.store(static_cast<uint32_t>(now_access_stamp() - h.epoch_s),
                                        std::memory_order_relaxed);
  return first_free;
}

void IndexWriter::remove(uint64_t slot_index) {
  std::lock_guard lock(mutex_);
  SlotSnapshot s;
  IndexReader::read_slot(slots()[slot_index], s);
  if (s.kind() == SlotKind::empty || s.kind() == SlotKind::tombstone) return;
  // Keep the key: a tombstone still ends no probe sequence.
  s.meta = SlotMeta::make(SlotKind::tombstone, FileState::absent, false, s.generation() + 1);
  write_locked(slot_index, s);
  mutable_header().live_entries.fetch_sub(1);
}

BlockRecord* IndexWriter::block_record(uint64_t offset) {
  return const_cast<BlockRecord*>(reader_.block_record(offset));
}

uint64_t IndexWriter::allocate_blocks(uint32_t blocks, uint64_t block_size, const std::string& etag, uint64_t reuse) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  BlockRecord* record = reuse != 0 ? block_record(reuse) : nullptr;
  uint64_t offset = reuse;
  if (record == nullptr || record->block_capacity < blocks) {
    uint64_t bytes = BlockRecord::bytes_for(blocks);
    uint64_t used = h.arena_used.load();
    if (used + bytes > h.arena_size) return 0;
    h.arena_used.store(used + bytes);
    offset = h.arena_offset + used;
    record = reinterpret_cast<BlockRecord*>(const_cast<char*>(reinterpret_cast<const char*>(&h)) + offset);
    record->block_capacity = blocks;
  }
  record->block_count = blocks;
  record->block_size = block_size;
  record->etag_length = static_cast<uint32_t>(std::min(etag.size(), sizeof record->etag));
  std::memcpy(record->etag, etag.data(), record->etag_length);
  for (uint64_t w = 0; w < BlockRecord::words(record->block_capacity); ++w) record->bitmap()[w].store(0);
  std::memset(record->checksums(), 0, uint64_t{record->block_capacity} * 4);
  std::atomic_thread_fence(std::memory_order_release);
  record->magic = BlockRecord::kMagic;
  return offset;
}

void IndexWriter::for_each(const std::function<void(uint64_t, const SlotSnapshot&)>& visit) const {
  scan([&](uint64_t i, const SlotSnapshot& s) {
    if (s.kind() == SlotKind::file || s.kind() == SlotKind::directory) visit(i, s);
  });
}

void IndexWriter::scan(const std::function<void(uint64_t, SlotSnapshot)>& visit) const {
  // Only the file's data regions hold slots: SEEK_DATA skips the holes of a
  // sparse index without reading (and faulting in) their pages.
  const IndexHeader& h = header();
  const uint64_t begin = h.slots_offset, end = h.slots_offset + slot_count() * sizeof(IndexSlot);
  uint64_t pos = begin;
  while (pos < end) {
    off_t data = ::lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) break;  // ENXIO: no more data
    off_t hole = ::lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(end);
    uint64_t first = std::max<uint64_t>(static_cast<uint64_t>(data), begin);
    uint64_t last = std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    for (uint64_t i = (first - begin) / sizeof(IndexSlot); i < (last - begin + sizeof(IndexSlot) - 1) / sizeof(IndexSlot);
         ++i) {
      SlotSnapshot s;
      if (IndexReader::read_slot(slots()[i], s) && s.kind() != SlotKind::empty) visit(i, s);
    }
    pos = std::max<uint64_t>(last, pos + 1);
  }
}

}  // namespace dscache
