// Capacity: DSCACHE_CACHE_SIZE and the free-space guard (space and inodes,
// DSCACHE_FREE_SPACE_RATIO), kept by evicting least-recently-used files.
// LRU is approximated by sampling (as Redis does): the oldest of 16 random
// cached files goes, which needs no list the shim would have to update.
#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include <cstdio>

#include "cache/cache_manager.h"
#include "common/disk_space.h"
#include "common/log.h"
#include "index/index_key.h"

namespace dscache {
namespace {

constexpr int kSamples = 16;

uint64_t held_bytes(const SlotSnapshot& slot, const BlockRecord* record, uint64_t block_size) {
  if (slot.state() == FileState::complete || slot.state() == FileState::unverified) return slot.size;
  if (slot.state() != FileState::partial || record == nullptr) return 0;
  uint64_t blocks = 0;
  for (uint64_t w = 0; w < BlockRecord::words(record->block_count); ++w) {
    blocks += static_cast<uint64_t>(std::popcount(record->bitmap()[w].load(std::memory_order_relaxed)));
  }
  return std::min(slot.size, blocks * block_size);
}

}  // namespace

thread_local bool t_recycle_held = false;

uint64_t CacheManager::capacity_bytes() const { return config_.cache_size == 0 ? UINT64_MAX : config_.cache_size; }

void CacheManager::note_miss(const SlotSnapshot& slot) {
  std::lock_guard lock(mutex_);
  rereference_ratio_ = 0.97 * rereference_ratio_ + (slot.evicted() ? 0.03 : 0.0);
}

void CacheManager::note_cached(Mount& mount, const std::string& path, uint64_t slot_index, const IndexKey& key) {
  std::lock_guard lock(mutex_);
  if (cached_position_.count(key) != 0) return;
  cached_position_[key] = cached_.size();
  cached_.push_back(CachedFile{slot_index, key, &mount, path, ++fill_counter_});
  recent_.push_back(key);
  if (recent_.size() > kRecent) recent_.pop_front();
}

void CacheManager::rebuild_accounting() {
  uint64_t total = 0;
  index_->for_each([&](uint64_t, const SlotSnapshot& s) {
    if (s.kind() != SlotKind::file) return;
    total += held_bytes(s, s.blocks() ? index_->reader().block_record(s.aux) : nullptr, config_.block_size);
  });
  bytes_cached_.store(total);
  // Paths of cached files come from the mirror itself, in the background.
  for (Mount& mount : mounts_) pool_->post([this, &mount] { register_cached_files(mount); }, true);
}

void CacheManager::register_cached_files(Mount& mount) {
  for_each_mirror_file(mount, [&](int, const char*, const std::string& path) {
    IndexKey key = index_key(mount.config.id, path.data(), path.size());
    SlotSnapshot slot;
    uint64_t slot_index = 0;
    if (index_->find(key, slot, &slot_index) != LookupResult::found || slot.kind() != SlotKind::file) return;
    FileState st = slot.state();
    if (st == FileState::complete || st == FileState::partial || st == FileState::unverified) {
      note_cached(mount, path, slot_index, key);
    }
  });
}

bool CacheManager::make_room(uint64_t bytes, std::string* why, const OwnBlocks* own) {
  // Space only: a fill writes into its placeholder and makes no inode (the
  // inode guard is inode_room(), for placeholders). Checking inodes here made
  // every fill on a file system short of inodes evict the whole cache, in
  // vain, then fail as "the cache is full".
  std::lock_guard evict_lock(evict_mutex_);
  for (int round = 0; round < 100000; ++round) {
    const uint64_t wanted = bytes + reserved_.load();
    bool over = config_.cache_size != 0 && bytes_cached_.load() + wanted > config_.cache_size;
    bool disk = false;
    struct statvfs fs {};
    if (!over && ::statvfs(layout_.root.c_str(), &fs) == 0 && fs.f_blocks > 0) {
      double total = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
      double free = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) - static_cast<double>(wanted);
      over = disk = free < config_.free_space_ratio * total;
    }
    if (!over) {
      reserved_.fetch_add(bytes);
      return true;
    }
    if (evict_one(false)) continue;
    if (own != nullptr && recycle_blocks(*own, bytes)) continue;
    if (evict_one(true)) continue;
    if (!recycle_other_files(bytes)) {
      if (!disk && ::statvfs(layout_.root.c_str(), &fs) == 0 && fs.f_blocks > 0) {
        const double total = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
        const double free =
            static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) - static_cast<double>(wanted);
        disk = free < config_.free_space_ratio * total;
      }
      if (!disk) {
        // Over DSCACHE_CACHE_SIZE with nothing evictable now (the room is
        // held by fills in flight and files just filled for their readers):
        // the fill goes ahead beyond the capacity, and the cache gets back
        // under it by evicting as soon as files can go. The disk's own guard
        // (above) is never overridden.
        reserved_.fetch_add(bytes);
        over_capacity_fills_.fetch_add(1, std::memory_order_relaxed);
        const int64_t now_s = now_ns() / 1'000'000'000;
        if (int64_t last = over_capacity_logged_s_.load(); now_s - last >= 60 &&
                                                           over_capacity_logged_s_.compare_exchange_strong(last, now_s)) {
          DSCACHE_LOG(info, "a fill of %s goes beyond DSCACHE_CACHE_SIZE (%s, %s cached, %s in flight): nothing can be "
                      "evicted now; the cache evicts back under it as soon as files can go",
                      human_bytes(bytes).c_str(), human_bytes(config_.cache_size).c_str(),
                      human_bytes(bytes_cached_.load()).c_str(), human_bytes(wanted - bytes).c_str());
        }
        return true;
      }
      if (why == nullptr) return false;
      const std::string cached = human_bytes(bytes_cached_.load()) + " cached";
      if (disk) {
        char ratio[32];
        std::snprintf(ratio, sizeof ratio, "%g", config_.free_space_ratio * 100);
        *why = "no space left on " + describe_file_system(layout_.root) + ": " +
               human_bytes(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize) + " of " +
               human_bytes(static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize) + " free, " + human_bytes(wanted) +
               " wanted and " + ratio + "% kept free (DSCACHE_FREE_SPACE_RATIO), and nothing in the cache (" + cached +
               ") can be evicted";
      } else {
        *why = "the cache is full and nothing in it can be evicted (" + cached + ", DSCACHE_CACHE_SIZE " +
               human_bytes(config_.cache_size) + ", " + human_bytes(wanted) + " wanted)";
      }
      return false;
    }
  }
  if (why != nullptr) *why = "the cache cannot make room for " + human_bytes(bytes);
  return false;
}

Status CacheManager::inode_room(const std::string& what, uint64_t count) {
  struct statvfs fs {};
  if (::statvfs(layout_.root.c_str(), &fs) != 0 || fs.f_files == 0) return {};  // no inode limit (btrfs, some FUSE)
  // `count` more inodes must leave the guard's share free.
  if (static_cast<double>(fs.f_favail) - static_cast<double>(count) >=
      config_.free_space_ratio * static_cast<double>(fs.f_files)) {
    return {};
  }
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%g", config_.free_space_ratio * 100);
  return Status::error(ENOSPC, what + ": " + no_inodes_message(layout_.root) + " (" + ratio +
                                   "% kept free: DSCACHE_FREE_SPACE_RATIO; each listed file takes one)");
}

Status CacheManager::no_space(const std::string& what, const Status& failure) {
  if (!is_no_space(failure.code())) return failure;
  pool_->post([this] { enforce_capacity(); }, true);
  return Status::error(failure.code(), what + ": " + no_space_message(layout_.root, failure.code()));
}

void CacheManager::enforce_capacity() {
  if (make_room(0)) release(0);
}

bool CacheManager::evict_one(bool resident) {
  CachedFile victim;
  bool found = false;
  bool through = false;
  {
    std::lock_guard lock(mutex_);
    enum class Candidate { gone, busy, evictable };
    auto check = [&](const CachedFile& candidate) {
      SlotSnapshot slot;
      bool live = index_->reader().read(candidate.slot, slot) == LookupResult::found && slot.key == candidate.key &&
                  slot.kind() == SlotKind::file &&
                  (slot.state() == FileState::complete || slot.state() == FileState::partial ||
                   slot.state() == FileState::unverified);
      if (!live) return Candidate::gone;  // no longer holds data (replaced, removed)
      // A file someone reads (pinned), or one being filled, stays.
      if (pins_.count(candidate.key) != 0 || fill_waiters_.count(candidate.key) != 0) return Candidate::busy;
      if (auto it = blocks_.find(candidate.key);
          it != blocks_.end() && (!it->second.in_flight.empty() || !it->second.waiters.empty())) {
        return Candidate::busy;
      }
      return Candidate::evictable;
    };
    auto forget = [&](size_t pos) {
      cached_position_.erase(cached_[pos].key);
      cached_[pos] = std::move(cached_.back());
      cached_.pop_back();
      if (pos < cached_.size()) cached_position_[cached_[pos].key] = pos;
    };
    // Thrashing (most misses are for files evicted earlier, as in shuffled
    // epochs over a dataset larger than the cache): the newest arrivals are
    // served through and the resident set stays, serving its share of every
    // epoch; it yields only when nothing else can give room.
    const bool protect_resident = !config_.lru_only && rereference_ratio_ > 0.5;
    if (protect_resident) {
      for (size_t i = recent_.size(); i-- > 0 && !found;) {
        auto it = cached_position_.find(recent_[i]);
        if (it == cached_position_.end()) {
          recent_.erase(recent_.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
        switch (check(cached_[it->second])) {
          case Candidate::gone:
            forget(it->second);
            recent_.erase(recent_.begin() + static_cast<std::ptrdiff_t>(i));
            break;
          case Candidate::busy:
            break;
          case Candidate::evictable:
            victim = cached_[it->second];
            found = through = true;
            recent_.erase(recent_.begin() + static_cast<std::ptrdiff_t>(i));
            break;
        }
      }
      if (!found && !resident) return false;
    }
    // Least recently used, sampled.
    uint32_t oldest = UINT32_MAX;
    for (int sample = 0; sample < kSamples * 4 && !cached_.empty() && !through; ++sample) {
      evict_rng_ ^= evict_rng_ << 13;
      evict_rng_ ^= evict_rng_ >> 7;
      evict_rng_ ^= evict_rng_ << 17;
      size_t pos = static_cast<size_t>(evict_rng_ % cached_.size());
      const Candidate state = check(cached_[pos]);
      if (state == Candidate::gone) {
        forget(pos);
        continue;
      }
      if (state == Candidate::busy) continue;
      const CachedFile& candidate = cached_[pos];
      uint32_t access = index_->reader().header().slots_offset != 0
                            ? reinterpret_cast<const IndexSlot*>(reinterpret_cast<const char*>(&index_->header()) +
                                                                 index_->header().slots_offset)[candidate.slot]
                                  .last_access.load(std::memory_order_relaxed)
                            : 0;
      if (access < oldest) {
        oldest = access;
        victim = candidate;
        found = true;
      }
      if (sample + 1 >= kSamples && found) break;
    }
  }
  if (!found) return false;
  evict(victim, through);
  return true;
}

uint64_t CacheManager::hold_clock() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void CacheManager::hold_blocks(const IndexKey& key, uint64_t first, uint64_t last, uint32_t ms) {
  SlotSnapshot slot;
  if (index_->find(key, slot, nullptr) != LookupResult::found || !slot.blocks() ||
      slot.state() == FileState::complete) {
    return;
  }
  const BlockRecord* record = index_->reader().block_record(slot.aux);
  if (record == nullptr || first > last) return;
  const uint64_t count = record->block_count;
  if (first >= count) return;
  last = std::min(last, count - 1);
  const uint64_t now = hold_clock();
  const uint64_t until = now + ms;
  std::lock_guard lock(holds_mutex_);
  if (holds_.size() > 256) {
    // Forget files whose holds all ran out.
    for (auto it = holds_.begin(); it != holds_.end();) {
      const bool live = std::any_of(it->second.begin(), it->second.end(), [&](uint64_t t) { return t >= now; });
      it = live ? std::next(it) : holds_.erase(it);
    }
  }
  std::vector<uint64_t>& held = holds_[key];
  if (held.size() < count) held.resize(count, 0);
  for (uint64_t b = first; b <= last; ++b) held[b] = std::max(held[b], until);
}

bool CacheManager::recycle_other_files(uint64_t bytes) {
  struct Candidate {
    Mount* mount;
    std::string path;
    IndexKey key;
    uint64_t slot, keep_first, keep_last;
  };
  std::vector<Candidate> candidates;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, state] : blocks_) {
      if (state.writer_fd < 0) continue;
      auto it = cached_position_.find(key);
      if (it == cached_position_.end()) continue;
      const CachedFile& file = cached_[it->second];
      const uint64_t bs = config_.block_size;
      // A sequential reader keeps the block it is in and its window ahead;
      // without one, every block may go (farthest from the start last).
      Candidate c{file.mount, file.path, key, file.slot, UINT64_MAX, UINT64_MAX - 1};
      if (state.readahead_end >= bs) {
        c.keep_first = state.readahead_end / bs - 1;
        c.keep_last = (state.readahead_end + state.window) / bs;
      }
      candidates.push_back(std::move(c));
    }
  }
  for (const Candidate& c : candidates) {
    const OwnBlocks other{c.mount, &c.path, c.key, c.slot, c.keep_first, c.keep_last};
    if (recycle_blocks(other, bytes)) return true;
  }
  return false;
}

bool CacheManager::recycle_blocks(const OwnBlocks& own, uint64_t bytes) {
  // Under mutex_ from the state check on: blocks_arrived completes a file
  // (its last bits, then its state) under it too.
  std::lock_guard lock(mutex_);
  SlotSnapshot slot;
  if (index_->reader().read(own.slot_index, slot) != LookupResult::found || !(slot.key == own.key) ||
      !slot.blocks() || slot.state() != FileState::partial) {
    return false;
  }
  BlockRecord* record = index_->block_record(slot.aux);
  const uint64_t bs = config_.block_size;
  if (record == nullptr || record->block_count != (slot.size + bs - 1) / bs) return false;
  const uint64_t count = record->block_count;
  const uint64_t want = std::max<uint64_t>(1, (bytes + bs - 1) / bs);
  std::vector<uint64_t> drop;
  uint64_t freed = 0;
  auto it = blocks_.find(own.key);
  // Punched through the fd fills write through, opened under this generation
  // (never a path: the file at the path may be another one by now).
  if (it == blocks_.end() || it->second.writer_fd < 0 || it->second.writer_generation != slot.generation()) {
    return false;
  }
  BlockState& state = it->second;
  const uint64_t now = hold_clock();
  // Holds are checked and bits cleared under holds_mutex_: a reader that
  // holds blocks first and checks their bits after either stops this or
  // sees them cleared.
  std::unique_lock holds_lock(holds_mutex_);
  const auto held_it = holds_.find(own.key);
  const std::vector<uint64_t>* held = held_it == holds_.end() ? nullptr : &held_it->second;
  auto recyclable = [&](uint64_t b) {
    if (b >= own.keep_first && b <= own.keep_last) return false;
    if (!IndexReader::blocks_present(*record, b, b) || state.in_flight.count(b) != 0) return false;
    if (held != nullptr && b < held->size() && (*held)[b] >= now) {
      t_recycle_held = true;
      return false;
    }
    for (const BlockWaiter& w : state.waiters) {
      if (b >= w.first && b <= w.last) return false;
    }
    return true;
  };
  // Farthest behind its readers first (a sequential reader's window slides),
  // then from the end back.
  for (uint64_t b = 0; b < std::min(own.keep_first, count) && drop.size() < want; ++b) {
    if (recyclable(b)) drop.push_back(b);
  }
  for (uint64_t b = count; b-- > own.keep_last + 1 && drop.size() < want;) {
    if (recyclable(b)) drop.push_back(b);
  }
  if (drop.empty()) return false;
  std::sort(drop.begin(), drop.end());
  // Bits first, then the count readers check after reading, then the bytes
  // (index_layout.h, BlockRecord::recycles): a reader never keeps a hole.
  for (uint64_t b : drop) record->bitmap()[b / 64].fetch_and(~(uint64_t{1} << (b % 64)), std::memory_order_release);
  holds_lock.unlock();
  record->recycles.fetch_add(1, std::memory_order_seq_cst);
  // Under mutex_: no fill of these blocks can start (and write) before the punch.
  for (size_t i = 0; i < drop.size();) {
    size_t j = i;
    while (j + 1 < drop.size() && drop[j + 1] == drop[j] + 1) ++j;
    const uint64_t offset = drop[i] * bs;
    const uint64_t length = std::min(slot.size, (drop[j] + 1) * bs) - offset;
    if (::fallocate(state.writer_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) != 0) {
      // The bits are clear: the blocks are fetched again when read, over
      // bytes still on disk (no space was freed).
      static std::atomic<bool> logged{false};
      if (!logged.exchange(true)) {
        DSCACHE_LOG(warn, "%s/%s: cannot punch recycled blocks out of the file: %s", own.mount->config.prefix,
                    own.path->c_str(), std::strerror(errno));
      }
    }
    freed += length;
    i = j + 1;
  }
  bytes_cached_.fetch_sub(std::min(freed, bytes_cached_.load()));
  own.mount->stats->through_bytes.fetch_add(freed, std::memory_order_relaxed);
  return true;
}

Status CacheManager::evict_file(uint64_t mount_id, const std::string& path) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return Status::error(ENODEV, "evict: the mount is not configured in the running daemon");
  const IndexKey key = index_key(mount_id, path.data(), path.size());
  SlotSnapshot slot;
  uint64_t slot_index = 0;
  if (index_->find(key, slot, &slot_index) != LookupResult::found) return {};  // nothing cached
  if (slot.kind() != SlotKind::file) return Status::error(EISDIR, path + ": a directory (evict the files in it)");
  if (slot.state() == FileState::absent) return {};
  {
    std::lock_guard lock(mutex_);
    if (pins_.count(key) != 0 || fill_waiters_.count(key) != 0) {
      return Status::error(EBUSY, path + ": open or being filled; not evicted");
    }
    if (auto it = blocks_.find(key); it != blocks_.end() && (!it->second.in_flight.empty() || !it->second.waiters.empty())) {
      return Status::error(EBUSY, path + ": being filled; not evicted");
    }
  }
  evict(CachedFile{slot_index, key, mount, path, 0});
  return {};
}

void CacheManager::evict(const CachedFile& file, bool through) {
  SlotSnapshot slot;
  if (index_->reader().read(file.slot, slot) != LookupResult::found || !(slot.key == file.key)) return;
  BlockRecord* record = slot.blocks() ? index_->block_record(slot.aux) : nullptr;
  const uint64_t held = held_bytes(slot, record, config_.block_size);
  // Generation first: a reader between its check and its open() retries.
  index_->modify(file.slot, [](SlotSnapshot& v) {
    v.meta = SlotMeta::make(SlotKind::file, FileState::absent, v.blocks(), v.generation() + 1, true);
  });
  if (record != nullptr) {
    for (uint64_t w = 0; w < BlockRecord::words(record->block_capacity); ++w) record->bitmap()[w].store(0);
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = blocks_.find(file.key); it != blocks_.end()) {
      if (it->second.writer_fd >= 0) ::close(it->second.writer_fd);
      blocks_.erase(it);
    }
    if (auto it = cached_position_.find(file.key); it != cached_position_.end()) {
      size_t pos = it->second;
      cached_position_.erase(it);
      cached_[pos] = std::move(cached_.back());
      cached_.pop_back();
      if (pos < cached_.size()) cached_position_[cached_[pos].key] = pos;
    }
  }
  // A fresh placeholder replaces the file: processes that hold it open keep
  // reading the old inode, with its correct bytes.
  if (Status s = replace_with_placeholder(*file.mount, file.path, slot.size, slot.mtime_ns); !s.ok()) {
    DSCACHE_LOG(warn, "evicting %s: %s", file.path.c_str(), s.message().c_str());
  }
  bytes_cached_.fetch_sub(std::min(held, bytes_cached_.load()));
  file.mount->stats->evictions.fetch_add(1, std::memory_order_relaxed);
  file.mount->stats->bytes_evicted.fetch_add(held, std::memory_order_relaxed);
  if (through) {
    file.mount->stats->through_files.fetch_add(1, std::memory_order_relaxed);
    file.mount->stats->through_bytes.fetch_add(held, std::memory_order_relaxed);
  }
}

}  // namespace dscache
