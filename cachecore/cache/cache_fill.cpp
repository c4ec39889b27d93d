// Whole-object fills: fetch into the placeholder itself (it keeps its inode),
// checksum, then publish "complete". Readers open only files published
// complete, so none sees a half file.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <unordered_set>

#include "cache/cache_manager.h"
#include "cache/fill_sink.h"
#include "common/log.h"
#include "index/index_key.h"

namespace dscache {
namespace {

struct FillJob {
  int fd = -1;
  uint32_t generation = 0;   // the slot's when the fill started
  uint64_t listed_size = 0;  // the placeholder's size
  int attempts = 0;
  std::unique_ptr<FillSink> sink;
  std::chrono::steady_clock::time_point started;
  uint64_t slot_index = 0;
  uint64_t reserved = 0;  // bytes make_room() set aside for this fill
};

void record_latency(MountStats& stats, std::chrono::steady_clock::duration elapsed) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  int bucket = 0;
  while (bucket < MountStats::kLatencyBuckets - 1 && (int64_t{2} << bucket) <= ms) ++bucket;
  stats.fetch_latency[bucket].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void CacheManager::finish_fill(Mount& mount, const std::string& path, const IndexKey& key, Status status) {
  std::vector<Reply> waiters;
  {
    std::lock_guard lock(mutex_);
    auto it = fill_waiters_.find(key);
    if (it != fill_waiters_.end()) {
      waiters = std::move(it->second);
      fill_waiters_.erase(it);
    }
    --in_flight_;
  }
  if (!status.ok()) {
    // Every error counted is in daemon.log, whoever (if anyone) waited for it.
    mount.stats->errors.fetch_add(1, std::memory_order_relaxed);
    DSCACHE_LOG(warn, "fetching %s/%s failed (%zu waiting): %s", mount.config.prefix, path.c_str(), waiters.size(),
                status.message().c_str());
  }
  for (Reply& r : waiters) r(status);
}

void CacheManager::start_fill(Mount& mount, const std::string& path, const IndexKey& key, Priority priority,
                              int attempt) {
  SlotSnapshot slot;
  uint64_t slot_index = 0;
  if (index_->find(key, slot, &slot_index) != LookupResult::found || slot.kind() != SlotKind::file) {
    return finish_fill(mount, path, key,
                       Status::error(ENOENT, mount.config.prefix + std::string("/") + path + ": no such file"));
  }
  if (slot.state() == FileState::complete) return finish_fill(mount, path, key, {});
  if (attempt == 0) note_miss(slot);
  t_recycle_held = false;
  if (std::string why; !make_room(slot.size, &why)) {
    if (t_recycle_held && attempt < kHeldRetries) {
      // Blocks held for readers of a large file would give the room in a moment.
      pool_->post([this, &mount, path, key, priority, attempt] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        start_fill(mount, path, key, priority, attempt + 1);
      }, true);
      return;
    }
    return finish_fill(mount, path, key, Status::error(ENOSPC, mount.config.prefix + std::string("/") + path + ": " + why));
  }
  index_->modify(slot_index, [](SlotSnapshot& v) {
    v.meta = SlotMeta::make(SlotKind::file, FileState::filling, false, v.generation());
  });

  // The bytes go into the placeholder itself, so the file keeps the inode a
  // reader saw in stat() (cp and tar compare it with fstat() after open()).
  // Readers only open files published complete, so none sees it half written;
  // a refresh that replaces the file bumps the generation, checked at publish.
  auto job = std::make_shared<FillJob>();
  job->reserved = slot.size;
  job->slot_index = slot_index;
  job->generation = slot.generation();
  job->listed_size = slot.size;
  job->started = std::chrono::steady_clock::now();
  const std::string target = mirror_path(mount, path);
  job->fd = open_for_filling(target);
  if (job->fd < 0 && errno == ENOENT) {
    // Its placeholder was deleted behind the daemon's back (fsck made it
    // absent): made again, then filled.
    if (replace_with_placeholder(mount, path, slot.size, slot.mtime_ns).ok()) job->fd = open_for_filling(target);
    if (job->fd < 0) errno = ENOENT;
  }
  if (job->fd < 0) {
    Status s = Status::error(errno, target + ": cannot open the cache file: " + errno_name(errno));
    release(job->reserved);
    index_->modify(slot_index, [](SlotSnapshot& v) {
      v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation());
    });
    return finish_fill(mount, path, key, s);
  }
  job->sink = std::make_unique<FillSink>(*writer_, job->fd, 0);
  mount.stats->fetches_in_flight.fetch_add(1, std::memory_order_relaxed);

  auto complete = [this, &mount, path, key, job, priority](Result<GetResult> result, Status status) {
    if (!result.ok()) status = result.status();
    status = no_space(mount.config.prefix + std::string("/") + path, status);
    uint64_t length = 0;
    ObjectInfo info;
    uint64_t checksum = 0;
    if (status.ok()) {
      length = result->length;
      info = result->info;
      if (length != info.size) {
        status = Status::error(EIO, mount.config.prefix + std::string("/") + path + ": the store sent " +
                                        std::to_string(length) + " of " + std::to_string(info.size) + " bytes");
      }
    }
    if (status.ok()) {
      if (job->sink->in_order() && job->sink->bytes() == length) {
        checksum = job->sink->checksum();
      } else if (auto c = checksum_file(job->fd, length); c.ok()) {
        checksum = *c;
      } else {
        status = c.status();
      }
    }
    if (status.ok()) {
      int64_t mtime = shown_mtime(info);
      struct timespec times[2] = {{0, UTIME_OMIT},
                                  {static_cast<time_t>(mtime / 1'000'000'000), static_cast<long>(mtime % 1'000'000'000)}};
      // The object may differ in size from its listing (it changed since).
      if (::ftruncate(job->fd, static_cast<off_t>(length)) != 0 || ::futimens(job->fd, times) != 0) {
        status = Status::error(errno, mirror_path(mount, path) + ": " + errno_name(errno));
      }
      // A large placeholder fetched whole (a daemon with a larger
      // DSCACHE_WHOLE_FILE_MAX than the one that listed it) was marked.
      if (status.ok() && guard_) guard_->release_complete(job->fd);
    } else {
      // Keep what stat() shows right: the listed size.
      [[maybe_unused]] int rc = ::ftruncate(job->fd, static_cast<off_t>(job->listed_size));
    }
    ::close(job->fd);
    job->fd = -1;
    mount.stats->fetches_in_flight.fetch_sub(1, std::memory_order_relaxed);

    // Publish, if the slot is still the one this fill started on: a refresh
    // that replaced the placeholder meanwhile bumped the generation, and
    // these bytes went to the old inode.
    SlotSnapshot now;
    uint64_t current = 0;
    bool still = index_->find(key, now, &current) == LookupResult::found && now.kind() == SlotKind::file;
    if (status.ok() && !still) {
      status = Status::error(ENOENT, mount.config.prefix + std::string("/") + path + ": removed from the store");
    }
    if (status.ok() && now.generation() != job->generation) {
      if (++job->attempts < 3) {
        DSCACHE_LOG(info, "%s/%s was replaced while it was fetched: fetching it again", mount.config.prefix,
                    path.c_str());
        release(job->reserved);
        return start_fill(mount, path, key, priority);  // the waiters stay registered
      }
      status = Status::error(ESTALE, mount.config.prefix + std::string("/") + path +
                                         ": the file kept changing while it was fetched");
    }
    if (status.ok()) {
      index_->modify(current, [&](SlotSnapshot& v) {
        v.size = length;
        v.mtime_ns = shown_mtime(info);
        v.etag_hash = identity_hash(info.etag.data(), info.etag.size());
        v.aux = checksum;
        v.meta = SlotMeta::make(SlotKind::file, FileState::complete, false, v.generation());
      });
      index_->reader().touch(current, index_->now_access_stamp());
      bytes_cached_.fetch_add(length);
      note_cached(mount, path, current, key);
      mount.stats->objects_fetched.fetch_add(1, std::memory_order_relaxed);
      mount.stats->bytes_fetched.fetch_add(length, std::memory_order_relaxed);
      record_latency(*mount.stats, std::chrono::steady_clock::now() - job->started);
    }
    if (!status.ok()) {
      if (still) {
        index_->modify(current, [&](SlotSnapshot& v) {
          if (v.state() == FileState::filling && v.generation() == job->generation) {
            v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation());
          }
        });
      }
    }
    release(job->reserved);  // now counted in bytes_cached_, or not needed
    finish_fill(mount, path, key, status);
  };

  GetRequest request;  // the whole object
  FillSink& sink = *job->sink;
  mount.store->get_async(path, request, sink, priority, [this, job, complete, priority](Result<GetResult> result) {
    // When the last write lands: publishing is a few quick calls, done right
    // there on the writer's thread; bytes that arrived out of order must be
    // read back for their checksum, which goes to the pool.
    job->sink->finish_async([this, job, complete, priority, result = std::move(result)](Status written) mutable {
      if (job->sink->in_order()) return complete(std::move(result), written);
      pool_->post([complete, result = std::move(result), written]() mutable { complete(std::move(result), written); },
                  priority == Priority::background);
    });
  });
}

void CacheManager::verify_then_serve(Mount& mount, const std::string& path, const IndexKey& key, Priority priority) {
  SlotSnapshot slot;
  uint64_t slot_index = 0;
  if (index_->find(key, slot, &slot_index) != LookupResult::found) {
    return finish_fill(mount, path, key,
                       Status::error(ENOENT, mount.config.prefix + std::string("/") + path + ": no such file"));
  }
  if (slot.state() == FileState::complete) return finish_fill(mount, path, key, {});
  if (slot.state() != FileState::unverified) return start_fill(mount, path, key, priority);
  bool good = false;
  int fd = ::open(mirror_path(mount, path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == slot.size) {
      auto sum = checksum_file(fd, slot.size);
      good = sum.ok() && *sum == slot.aux;
    }
    ::close(fd);
  }
  if (good) {
    index_->modify(slot_index, [](SlotSnapshot& v) {
      v.meta = SlotMeta::make(SlotKind::file, FileState::complete, false, v.generation());
    });
    return finish_fill(mount, path, key, {});
  }
  DSCACHE_LOG(warn, "%s/%s failed verification after an unclean shutdown: fetching it again", mount.config.prefix,
              path.c_str());
  bytes_cached_.fetch_sub(std::min(slot.size, bytes_cached_.load()));
  index_->modify(slot_index, [](SlotSnapshot& v) {
    v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
  });
  start_fill(mount, path, key, priority);
}

bool CacheManager::verify_blocks(Mount& mount, const std::string& path, uint64_t slot_index, const SlotSnapshot& slot,
                                 bool repair, std::string* report, uint64_t& checked) {
  BlockRecord* record = index_->block_record(slot.aux);
  if (record == nullptr || slot.state() == FileState::absent) return true;
  const int fd = ::open(mirror_path(mount, path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // evicted meanwhile
  const uint64_t bs = config_.block_size;
  uint64_t bad_blocks = 0;
  for (uint32_t b = 0; b < record->block_count; ++b) {
    auto& word = record->bitmap()[b / 64];
    const uint64_t bit = uint64_t{1} << (b % 64);
    if ((word.load() & bit) == 0) continue;
    ++checked;
    const uint64_t offset = uint64_t{b} * bs, length = std::min(bs, slot.size - offset);
    auto sum = checksum_range(fd, offset, length);
    if (sum.ok() && static_cast<uint32_t>(*sum) == record->checksums()[b]) continue;
    ++bad_blocks;
    if (report != nullptr) {
      *report += "checksum mismatch: " + std::string(mount.config.prefix) + "/" + path + " block " + std::to_string(b) +
                 "\n";
    }
    if (repair) {
      // The block becomes absent: a reader's next access fetches it again.
      // A complete file turns partial first, so that readers check the bitmap,
      // and is guarded again, so that raw readers get the block refetched.
      if (guard_ && bad_blocks == 1) {
        if (Status g = guard_->guard(fd, mount.config.id, path); !g.ok()) {
          DSCACHE_LOG(warn, "%s/%s: not guarded by the kernel: %s", mount.config.prefix, path.c_str(),
                      g.message().c_str());
        }
      }
      index_->modify(slot_index, [](SlotSnapshot& v) {
        v.meta = SlotMeta::make(SlotKind::file, FileState::partial, true, v.generation() + 1);
      });
      word.fetch_and(~bit);
      bytes_cached_.fetch_sub(std::min(length, bytes_cached_.load()));
    }
  }
  ::close(fd);
  return bad_blocks == 0;
}

uint64_t CacheManager::verify_all(bool repair, std::string* report) {
  uint64_t bad = 0, checked = 0;
  std::unordered_set<uint64_t> seen;  // slots whose file the mirror holds
  for (Mount& mount : mounts_) {
    for_each_mirror_file(mount, [&](int dir_fd, const char* name, const std::string& path) {
      SlotSnapshot slot;
      uint64_t slot_index = 0;
      IndexKey key = index_key(mount.config.id, path.data(), path.size());
      if (index_->find(key, slot, &slot_index) != LookupResult::found) return;
      seen.insert(slot_index);
      if (slot.blocks()) {
        bad += verify_blocks(mount, path, slot_index, slot, repair, report, checked) ? 0 : 1;
        return;
      }
      if (slot.state() != FileState::complete && slot.state() != FileState::unverified) return;
      ++checked;
      int fd = ::openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      bool good = false;
      if (fd >= 0) {
        struct stat st {};
        auto sum = checksum_file(fd, slot.size);
        good = sum.ok() && *sum == slot.aux && ::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) == slot.size;
        ::close(fd);
      }
      if (good) return;
      ++bad;
      if (report != nullptr) *report += "checksum mismatch: " + std::string(mount.config.prefix) + "/" + path + "\n";
      if (repair) {
        index_->modify(slot_index, [](SlotSnapshot& v) {
          v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
        });
        (void)make_placeholder(mount, path, dir_fd, std::string(name), slot.size, slot.mtime_ns);
        bytes_cached_.fetch_sub(std::min(slot.size, bytes_cached_.load()));
      }
    });
  }
  // The index as well as the mirror: a cached file deleted behind the
  // daemon's back has a slot and no file. (A slot names a hash, not a path:
  // repaired, it is made absent; its placeholder comes back when it is read
  // or its directory is listed again.)
  // Mounts this daemon was not started with keep their files too: seen, not lost.
  if (DIR* d = ::opendir(layout_.mirror_root().c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const uint64_t id = std::strtoull(e->d_name, &end, 16);
      if (e->d_name[0] == '.' || end == nullptr || *end != '\0' || mount_by_id(id) != nullptr) continue;
      Mount other;
      other.config.id = id;
      other.dir = layout_.mirror_root() + "/" + e->d_name;
      for_each_mirror_file(other, [&](int, const char*, const std::string& path) {
        SlotSnapshot slot;
        uint64_t slot_index = 0;
        if (index_->find(index_key(id, path.data(), path.size()), slot, &slot_index) == LookupResult::found) {
          seen.insert(slot_index);
        }
      });
    }
    ::closedir(d);
  }
  uint64_t missing = 0;
  std::vector<uint64_t> lost;
  index_->for_each([&](uint64_t slot_index, const SlotSnapshot& slot) {
    if (slot.kind() == SlotKind::file && slot.state() == FileState::complete && seen.count(slot_index) == 0) {
      lost.push_back(slot_index);
    }
  });
  for (uint64_t slot_index : lost) {
    SlotSnapshot slot;
    if (index_->reader().read(slot_index, slot) != LookupResult::found || slot.state() != FileState::complete) continue;
    ++missing;
    if (repair) {
      index_->modify(slot_index, [](SlotSnapshot& v) {
        v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
      });
      bytes_cached_.fetch_sub(std::min(slot.size, bytes_cached_.load()));
    }
  }
  if (missing > 0 && report != nullptr) {
    *report += "missing from the mirror: " + std::to_string(missing) + " cached files (deleted behind the daemon's back)" +
               (repair ? ": made absent, fetched again on next use" : "") + "\n";
  }
  bad += missing;
  if (report != nullptr) {
    *report += std::to_string(checked) + " files and blocks checked, " + std::to_string(bad) + " files bad" +
               (repair && bad > 0 ? " (made absent: fetched again on next use)" : "") + "\n";
  }
  return bad;
}

}  // namespace dscache
