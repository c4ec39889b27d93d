#include "index/index_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/disk_space.h"
#include "common/log.h"

namespace dscache {
namespace {

constexpr uint64_t kNoSlot = ~uint64_t{0};
constexpr uint64_t kPage = 4096;
constexpr uint64_t kMinDirectory = 4096;  // entries of the smallest directory
constexpr uint64_t kBackChunk = 1ull << 20;  // slots and arena are allocated 1 MiB at a time

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

uint64_t next_power_of_two(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class T>
void store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

uint64_t directory_entry(const IndexKey& key, uint64_t slot_index) {
  return (uint64_t{IndexReader::fingerprint(key)} << 32) | (slot_index + 1);
}

Status create_index(const std::string& path, uint64_t capacity, uint64_t block_size) {
  const uint64_t directory_capacity = next_power_of_two(std::max<uint64_t>(kMinDirectory, capacity * 4));
  const uint64_t stats_offset = kIndexHeaderSize;
  const uint64_t slots_offset = round_up(stats_offset + sizeof(StatsBlock), kPage);
  const uint64_t directory0 = round_up(slots_offset + capacity * sizeof(IndexSlot), kPage);
  const uint64_t directory1 = round_up(directory0 + directory_capacity * 8, kPage);
  const uint64_t arena_offset = round_up(directory1 + directory_capacity * 8, kPage);
  const uint64_t arena_size = std::max<uint64_t>(256ull << 20, capacity * 16);
  const uint64_t file_size = arena_offset + arena_size;

  std::string tmp = path + ".new." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::error(errno, tmp + ": cannot create the index: " + errno_name(errno));
  // Sparse: pages are allocated as each region grows (IndexWriter::back_locked);
  // the header and the counters (which the shim writes too) at once.
  if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::error(err, tmp + ": cannot size the index: " + errno_name(err));
  }
  if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(slots_offset)); err != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    if (is_no_space(err)) return Status::error(err, no_space_message(path, err) + ": cannot create the index " + path);
    return Status::error(err, tmp + ": cannot allocate the index: " + errno_name(err));
  }
  IndexHeader header{};
  header.magic = kIndexMagic;
  header.version = kIndexVersion;
  header.header_size = kIndexHeaderSize;
  header.file_size = file_size;
  header.slot_capacity = capacity;
  header.slots_offset = slots_offset;
  header.directory_offset[0] = directory0;
  header.directory_offset[1] = directory1;
  header.directory_capacity = directory_capacity;
  header.stats_offset = stats_offset;
  header.arena_offset = arena_offset;
  header.arena_size = arena_size;
  header.block_size = block_size;
  header.created_ns = now_ns();
  header.epoch_s = header.created_ns / 1'000'000'000 - 1;
  header.clean.store(1);
  header.writing_slot.store(kNoSlot);
  header.directory_mask.store(kMinDirectory - 1);
  ssize_t n = ::pwrite(fd, &header, sizeof header, 0);
  int err = errno;
  if (n != static_cast<ssize_t>(sizeof header) || ::fsync(fd) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    if (n >= 0 || !is_no_space(err)) return Status::error(n < 0 ? err : EIO, tmp + ": cannot write the index header");
    return Status::error(err, no_space_message(path, err) + ": cannot create the index " + path);
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
  if (rc == -EPROTO) {
    // Readers that still map the old file must stop trusting it before the
    // mirror it describes goes away (the magic is at offset 0 in every version).
    int old_fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (old_fd >= 0) {
      [[maybe_unused]] ssize_t w = ::pwrite(old_fd, &kIndexRetiredMagic, sizeof kIndexRetiredMagic, 0);
      ::close(old_fd);
    }
  }
  if (rc != 0) {
    if (Status s = create_index(path, entries, block_size); !s.ok()) return s;
    r.created = true;
    rc = writer->reader_.open(path.c_str());
    if (rc != 0) return Status::error(-rc, path + ": cannot map the new index: " + errno_name(-rc));
  }
  writer->fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (writer->fd_ < 0) return Status::error(errno, path + ": cannot open the index: " + errno_name(errno));
  if (!r.created && writer->reader_.slot_capacity() != entries) {
    DSCACHE_LOG(info, "%s keeps its room for %llu entries (DSCACHE_INDEX_ENTRIES applies to a new index: dscache clear)",
                path.c_str(), static_cast<unsigned long long>(writer->reader_.slot_capacity()));
  }
  std::lock_guard lock(writer->mutex_);
  // What is in use is allocated already, unless an older version made the
  // file; what grows is allocated before it is touched.
  const IndexHeader& h = writer->header();
  if (Status s = writer->back_locked(0, h.slots_offset, "header"); !s.ok()) return s;
  if (Status s = writer->back_slots_locked(h.slots_used.load()); !s.ok()) return s;
  writer->arena_backed_ = h.arena_offset;
  if (uint64_t used = round_up(h.arena_used.load(), kPage); used > 0) {
    if (Status s = writer->back_locked(h.arena_offset, used, "block maps"); !s.ok()) return s;
    writer->arena_backed_ = h.arena_offset + used;
  }
  if (Status s = writer->rebuild_directory_locked(0); !s.ok()) return s;
  return writer;
}

Status IndexWriter::back_locked(uint64_t offset, uint64_t length, const char* what) {
  if (length == 0) return {};
  int err;
  do {
    err = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(length));
  } while (err == EINTR);
  if (err == 0) return {};
  if (is_no_space(err)) {
    return Status::error(err, no_space_message(path_, err) + ": the index " + path_ + " cannot grow its " + what);
  }
  return Status::error(err, path_ + ": cannot allocate the index's " + what + ": " + errno_name(err));
}

Status IndexWriter::back_slots_locked(uint64_t count) {
  const IndexHeader& h = header();
  if (slots_backed_ == 0) slots_backed_ = h.slots_offset;
  const uint64_t need = h.slots_offset + count * sizeof(IndexSlot);
  if (need <= slots_backed_) return {};
  const uint64_t region_end = round_up(h.slots_offset + h.slot_capacity * sizeof(IndexSlot), kPage);
  const uint64_t end = std::min(region_end, std::max(round_up(need, kPage), slots_backed_ + kBackChunk));
  if (Status s = back_locked(slots_backed_, end - slots_backed_, "slots"); !s.ok()) {
    // Less than a chunk may still fit: enough for these slots.
    if (round_up(need, kPage) >= end || !back_locked(slots_backed_, round_up(need, kPage) - slots_backed_, "slots").ok()) {
      return s;
    }
    slots_backed_ = round_up(need, kPage);
    return {};
  }
  slots_backed_ = end;
  return {};
}

IndexWriter::~IndexWriter() {
  if (fd_ >= 0) ::close(fd_);
}

IndexSlot* IndexWriter::slots() const {
  return reinterpret_cast<IndexSlot*>(const_cast<char*>(reinterpret_cast<const char*>(&reader_.header())) +
                                      reader_.header().slots_offset);
}

uint64_t* IndexWriter::directory(uint64_t region) const {
  return reinterpret_cast<uint64_t*>(const_cast<char*>(reinterpret_cast<const char*>(&reader_.header())) +
                                     reader_.header().directory_offset[region & 1]);
}

void IndexWriter::fill_directory(uint64_t* dir, uint64_t mask, uint64_t used) const {
  for (uint64_t i = 0; i < used; ++i) {
    SlotSnapshot s;
    IndexReader::read_slot(slots()[i], s);
    if (s.kind() != SlotKind::file && s.kind() != SlotKind::directory) continue;
    uint64_t at = s.key.lo & mask;
    while (dir[at] != kDirectoryEmpty) at = (at + 1) & mask;
    __atomic_store_n(&dir[at], directory_entry(s.key, i), __ATOMIC_RELAXED);
  }
}

int64_t IndexWriter::now_access_stamp() const { return now_ns() / 1'000'000'000; }

Status IndexWriter::rebuild_directory_locked(uint64_t extra) {
  // Builds the directory afresh in the region not in use, sized for a quarter
  // load, publishes it, then gives the old region's pages back. Also rebuilds
  // the free-slot list. Removed entries vanish on the way.
  IndexHeader& h = mutable_header();
  const uint64_t used = h.slots_used.load();
  uint64_t live = 0;
  free_slots_.clear();
  for (uint64_t i = 0; i < used; ++i) {
    SlotKind kind = SlotMeta::kind(__atomic_load_n(&slots()[i].meta, __ATOMIC_RELAXED));
    if (kind == SlotKind::file || kind == SlotKind::directory) {
      ++live;
    } else {
      free_slots_.push_back(i);
    }
  }
  const uint64_t entries =
      std::min(h.directory_capacity, next_power_of_two(std::max<uint64_t>(kMinDirectory, (live + extra) * 4)));
  const uint64_t old_region = h.directory_region.load();
  const uint64_t region = old_region ^ 1;
  const uint64_t bytes = h.directory_capacity * 8;
  // Punching the hole both zeroes the region and frees its pages.
  const bool punched = ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   static_cast<off_t>(h.directory_offset[region]), static_cast<off_t>(bytes)) == 0;
  if (Status backed = back_locked(h.directory_offset[region], entries * 8, "directory"); !backed.ok()) {
    // No room for the other region: rebuilt where it is, if the entries fit
    // there at half load (its pages were allocated when it was built; readers
    // see the sequence odd meanwhile, and retry or ask the daemon). A daemon
    // restarted on a full file system starts this way.
    const uint64_t current = h.directory_mask.load() + 1;
    if ((live + extra) * 2 > current ||
        !back_locked(h.directory_offset[old_region], current * 8, "directory").ok()) {
      return backed;
    }
    const uint64_t seq = h.directory_seq.load();
    h.directory_seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    uint64_t* dir = directory(old_region);
    std::memset(dir, 0, current * 8);
    const uint64_t mask = current - 1;
    fill_directory(dir, mask, used);
    h.directory_used.store(live, std::memory_order_relaxed);
    h.directory_seq.store(seq + 2, std::memory_order_release);
    h.live_entries.store(live);
    return {};
  }
  if (!punched) std::memset(directory(region), 0, entries * 8);
  uint64_t* dir = directory(region);
  const uint64_t mask = entries - 1;
  fill_directory(dir, mask, used);
  const uint64_t seq = h.directory_seq.load();
  h.directory_seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  h.directory_region.store(region, std::memory_order_relaxed);
  h.directory_mask.store(mask, std::memory_order_relaxed);
  h.directory_used.store(live, std::memory_order_relaxed);
  h.directory_seq.store(seq + 2, std::memory_order_release);
  h.live_entries.store(live);
  // Readers still probing the old region see the sequence change and retry.
  ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(h.directory_offset[old_region]),
              static_cast<off_t>(bytes));
  return {};
}

IndexWriter::Recovery IndexWriter::recover(const char* boot_id) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  Recovery r;
  r.previous_clean = h.clean.load() == 1;
  r.rebooted = std::strncmp(h.boot_id, boot_id, sizeof h.boot_id) != 0;

  // A daemon killed while writing one slot leaves that slot torn: drop it.
  uint64_t torn = h.writing_slot.load();
  if (torn != kNoSlot && torn < slot_capacity()) {
    IndexSlot& slot = slots()[torn];
    uint64_t seq = slot.seq.load();
    slot.seq.store(seq | 1);
    store(&slot.key_lo, uint64_t{0});
    store(&slot.key_hi, uint64_t{0});
    store(&slot.meta, SlotMeta::make(SlotKind::empty, FileState::absent, false, 0));
    slot.seq.store((seq | 1) + 1, std::memory_order_release);
    r.repaired_torn_slot = true;
  }
  h.writing_slot.store(kNoSlot);

  const bool distrust = !r.previous_clean && r.rebooted;
  for (uint64_t i = 0; i < h.slots_used.load(); ++i) {
    SlotSnapshot s;
    IndexReader::read_slot(slots()[i], s);
    if (s.kind() != SlotKind::file) continue;
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
      s.meta = SlotMeta::make(SlotKind::file, next, s.blocks(), s.generation() + 1, s.evicted());
      write_locked(i, s);
    }
  }
  // The directory follows the slots: rebuilt from them after any crash (in
  // place if the file system has no room for the other region).
  if (Status s = rebuild_directory_locked(0); !s.ok()) DSCACHE_LOG(error, "%s", s.message().c_str());
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
  SlotSnapshot existing;
  uint64_t at = 0;
  if (reader_.find(value.key, existing, &at) == LookupResult::found) {
    write_locked(at, value);
    return at;
  }
  IndexHeader& h = mutable_header();
  // Room first (nothing is written when the file system has none): a
  // directory over half full is rebuilt twice as big, with room for this one.
  if ((h.directory_used.load() + 1) * 2 > h.directory_mask.load() + 1) {
    if (Status s = rebuild_directory_locked(1); !s.ok()) return s;
  }
  uint64_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
  } else if (h.slots_used.load() < slot_capacity()) {
    index = h.slots_used.load();
    if (Status s = back_slots_locked(index + 1); !s.ok()) return s;
  } else {
    return Status::error(ENOSPC, path_ + ": the index is full (" + std::to_string(slot_capacity()) +
                                     " entries): raise DSCACHE_INDEX_ENTRIES, then dscache clear");
  }
  if (!free_slots_.empty()) free_slots_.pop_back();
  // The slot first, then the directory entry that finds it.
  write_locked(index, value);
  slots()[index].last_access.store(static_cast<uint32_t>(now_access_stamp() - h.epoch_s), std::memory_order_relaxed);
  if (index == h.slots_used.load()) h.slots_used.fetch_add(1);
  h.live_entries.fetch_add(1);
  uint64_t* dir = directory(h.directory_region.load());
  const uint64_t mask = h.directory_mask.load();
  uint64_t i = value.key.lo & mask;
  while (dir[i] != kDirectoryEmpty && dir[i] != kDirectoryRemoved) i = (i + 1) & mask;
  if (dir[i] == kDirectoryEmpty) h.directory_used.fetch_add(1);
  __atomic_store_n(&dir[i], directory_entry(value.key, index), __ATOMIC_RELEASE);
  return index;
}

void IndexWriter::remove(uint64_t slot_index) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  SlotSnapshot s;
  IndexReader::read_slot(slots()[slot_index], s);
  if (s.kind() != SlotKind::file && s.kind() != SlotKind::directory) return;
  // The directory entry first (lookups stop finding it), then the slot.
  uint64_t* dir = directory(h.directory_region.load());
  const uint64_t mask = h.directory_mask.load();
  const uint64_t entry = directory_entry(s.key, slot_index);
  for (uint64_t probe = 0, i = s.key.lo & mask; probe <= mask && dir[i] != kDirectoryEmpty;
       ++probe, i = (i + 1) & mask) {
    if (dir[i] == entry) {
      __atomic_store_n(&dir[i], kDirectoryRemoved, __ATOMIC_RELEASE);
      break;
    }
  }
  SlotSnapshot empty;
  empty.meta = SlotMeta::make(SlotKind::empty, FileState::absent, false, s.generation() + 1);
  empty.aux = s.blocks() ? s.aux : 0;  // a large file's BlockRecord may be reused by whoever takes the slot
  write_locked(slot_index, empty);
  free_slots_.push_back(slot_index);
  h.live_entries.fetch_sub(1);
}

BlockRecord* IndexWriter::block_record(uint64_t offset) {
  return const_cast<BlockRecord*>(reader_.block_record(offset));
}

uint64_t IndexWriter::allocate_blocks(uint32_t blocks, uint64_t block_size, const std::string& etag, uint64_t reuse,
                                      Status* why) {
  std::lock_guard lock(mutex_);
  IndexHeader& h = mutable_header();
  BlockRecord* record = reuse != 0 ? block_record(reuse) : nullptr;
  uint64_t offset = reuse;
  if (record == nullptr || record->block_capacity < blocks) {
    uint64_t bytes = BlockRecord::bytes_for(blocks);
    uint64_t used = h.arena_used.load();
    if (used + bytes > h.arena_size) {
      if (why != nullptr) *why = Status::error(ENOSPC, "the index has no room for another large file's block map");
      return 0;
    }
    if (arena_backed_ < h.arena_offset) arena_backed_ = h.arena_offset;
    if (const uint64_t need = h.arena_offset + used + bytes; need > arena_backed_) {
      const uint64_t end = std::min(h.arena_offset + h.arena_size, round_up(need, kBackChunk));
      Status s = back_locked(arena_backed_, end - arena_backed_, "block maps");
      if (!s.ok()) {
        if (why != nullptr) *why = s;
        return 0;
      }
      arena_backed_ = end;
    }
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
  const uint64_t used = header().slots_used.load();
  for (uint64_t i = 0; i < used; ++i) {
    SlotSnapshot s;
    if (!IndexReader::read_slot(slots()[i], s)) continue;
    if (s.kind() == SlotKind::file || s.kind() == SlotKind::directory) visit(i, s);
  }
}

}  // namespace dscache
