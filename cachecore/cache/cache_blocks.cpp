// Large objects (over DSCACHE_WHOLE_FILE_MAX): filled block by block, in
// place, into the mirror file. A block's bit is set only after its bytes are
// written and checksummed, so a reader that checks the bitmap first never
// reads a hole. Every ranged GET carries If-Match: a changed object is never
// mixed with old bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <tuple>

#include "cache/cache_manager.h"
#include "cache/fill_sink.h"
#include "common/disk_space.h"
#include "common/log.h"
#include "index/index_key.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace dscache {
namespace {

constexpr uint64_t kMaxRunBytes = 8 << 20;  // one ranged GET covers up to this much

Result<uint32_t> block_checksum(int fd, uint64_t offset, uint64_t length) {
  auto sum = checksum_range(fd, offset, length);
  if (!sum.ok()) return sum.status();
  return static_cast<uint32_t>(*sum);
}

}  // namespace

void CacheManager::fetch_range(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length,
                               bool sequential, Priority priority, Reply reply) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return reply(Status::error(ENODEV, "mount not configured in the running daemon"));
  with_file_slot(*mount, path, priority,
                 [this, mount, path, offset, length, sequential, priority, reply](Status s, uint64_t slot_index,
                                                                                  SlotSnapshot slot) {
                   if (!s.ok()) return reply(s);
                   if (slot.size <= config_.whole_file_max) return fetch_object(mount->config.id, path, priority, reply);
                   if (slot.state() == FileState::complete) {
                     index_->reader().touch(slot_index, index_->now_access_stamp());
                     return reply({});
                   }
                   if (offset >= slot.size || length == 0) return reply({});
                   const uint64_t bs = config_.block_size;
                   const uint64_t end = std::min(slot.size, offset + std::min(length, slot.size - offset));
                   const uint64_t first = offset / bs, last = (end - 1) / bs;
                   uint64_t ahead = last;
                   if (sequential && config_.readahead > 0) {
                     std::lock_guard lock(mutex_);
                     BlockState& state = blocks_[slot.key];
                     // A reader continuing where it stopped doubles its window, up to DSCACHE_READAHEAD.
                     // A window of at most a quarter of the cache, so that a
                     // file larger than the cache slides through it.
                     const uint64_t cap = config_.cache_size == 0
                                              ? config_.readahead
                                              : std::min(config_.readahead, std::max(2 * bs, config_.cache_size / 4));
                     state.window = offset == state.readahead_end
                                        ? std::min<uint64_t>(std::max<uint64_t>(state.window * 2, 2 * bs), cap)
                                        : std::min<uint64_t>(2 * bs, cap);
                     state.readahead_end = end;
                     ahead = std::min((slot.size - 1) / bs, (end + state.window - 1) / bs);
                   }
                   request_blocks(*mount, path, slot_index, slot, first, last, ahead, priority, reply);
                 });
}

void CacheManager::request_blocks(Mount& mount, const std::string& path, uint64_t slot_index, const SlotSnapshot& slot,
                                  uint64_t first, uint64_t last, uint64_t readahead_last, Priority priority,
                                  Reply reply) {
  const IndexKey key = slot.key;
  const BlockRecord* record = slot.blocks() ? index_->reader().block_record(slot.aux) : nullptr;
  if (record == nullptr || record->block_count != (slot.size + config_.block_size - 1) / config_.block_size) {
    // First use: learn the full ETag (for If-Match) with one HEAD, off this thread.
    pool_->post([this, &mount, path, slot_index, slot, first, last, readahead_last, priority, reply, key] {
      auto info = mount.store->head(path);
      if (!info.ok()) return reply(info.status());
      if (identity_hash(info->etag.data(), info->etag.size()) != slot.etag_hash || info->size != slot.size) {
        // Changed since it was listed: list again, and let the caller retry.
        index_->modify(slot_index, [](SlotSnapshot& v) {
          v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
        });
        std::string parent(parent_of(path));
        SlotSnapshot dir;
        uint64_t dir_index = 0;
        if (index_->find(index_key(mount.config.id, parent.data(), parent.size()), dir, &dir_index) ==
            LookupResult::found) {
          index_->modify(dir_index, [](SlotSnapshot& v) { v.mtime_ns = 0; });
        }
        return reply(Status::error(ESTALE, mount.config.prefix + std::string("/") + path +
                                               ": the object changed in the store since it was listed"));
      }
      SlotSnapshot current;
      {
        std::lock_guard lock(mutex_);
        index_->reader().read(slot_index, current);
        const BlockRecord* existing = current.blocks() ? index_->reader().block_record(current.aux) : nullptr;
        if (existing == nullptr || existing->block_count != (slot.size + config_.block_size - 1) / config_.block_size) {
          uint32_t blocks = static_cast<uint32_t>((slot.size + config_.block_size - 1) / config_.block_size);
          Status why;
          uint64_t offset = index_->allocate_blocks(blocks, config_.block_size, info->etag,
                                                    current.blocks() ? current.aux : 0, &why);
          if (offset == 0) return reply(why.with_context(mount.config.prefix + std::string("/") + path));
          index_->modify(slot_index, [&](SlotSnapshot& v) {
            v.aux = offset;
            v.meta = SlotMeta::make(SlotKind::file, FileState::absent, true, v.generation());
          });
          index_->reader().read(slot_index, current);
        }
      }
      request_blocks(mount, path, slot_index, current, first, last, readahead_last, priority, reply);
    });
    return;
  }

  if (first == 0 && last + 1 >= record->block_count) {
    // The whole file at once (mmap, sendfile, stdio without the kernel
    // guard, warmup): nothing of its own can be recycled, so it must fit in
    // the file system beside what could be evicted. Refused now, before its
    // runs reserve the room and fetch bytes that would be thrown away (and
    // starve other readers' fills meanwhile).
    uint64_t missing = 0, held = 0;
    for (uint64_t b = 0; b < record->block_count; ++b) {
      const uint64_t length = std::min(slot.size, (b + 1) * config_.block_size) - b * config_.block_size;
      (IndexReader::blocks_present(*record, b, b) ? held : missing) += length;
    }
    struct statvfs fs {};
    if (missing > 0 && ::statvfs(layout_.root.c_str(), &fs) == 0 && fs.f_blocks > 0) {
      const double total = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
      const double room = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) -
                          config_.free_space_ratio * total - static_cast<double>(reserved_.load()) +
                          static_cast<double>(bytes_cached_.load() - std::min(held, bytes_cached_.load()));
      if (static_cast<double>(missing) > room) {
        return reply(Status::error(
            ENOSPC, whole_file_message(mount, path, slot.size) + ": " + human_bytes(missing) + " more is needed and " +
                        describe_file_system(layout_.root) + " has room for " +
                        human_bytes(static_cast<uint64_t>(std::max(0.0, room))) +
                        " with all else evicted (DSCACHE_FREE_SPACE_RATIO keeps a share free)"));
      }
    }
  }
  // Runs to start now: (first, last, counted against the bulk budget).
  std::vector<std::tuple<uint64_t, uint64_t, bool>> start;
  bool ready = false;
  {
    std::lock_guard lock(mutex_);
    BlockState& state = blocks_[key];
    ready = IndexReader::blocks_present(*record, first, last);
    // Present now: kept a moment for the reader this reply goes to (under
    // mutex_, no recycle can come between).
    if (ready) hold_blocks(key, first, last, kReplyHoldMs);
    if (!ready) {
      state.waiters.push_back(BlockWaiter{first, last, reply});
      state.mount = &mount;
      state.path = path;
      state.slot_index = slot_index;
    }
    if (priority == Priority::demand && state.queued_runs > 0) {
      // A reader waits on these blocks: queued background runs of them go now.
      for (auto it = bulk_queue_.begin(); it != bulk_queue_.end();) {
        if (it->key == key && it->first <= readahead_last && it->last >= first) {
          start.emplace_back(it->first, it->last, false);
          --state.queued_runs;
          it = bulk_queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    const uint64_t per_run = std::max<uint64_t>(1, kMaxRunBytes / config_.block_size);
    for (uint64_t b = first; b <= readahead_last; ++b) {
      if (IndexReader::blocks_present(*record, b, b) || state.in_flight.count(b) != 0) continue;
      if (!runs.empty() && runs.back().second + 1 == b && b - runs.back().first < per_run) {
        runs.back().second = b;
      } else {
        runs.emplace_back(b, b);
      }
      state.in_flight.insert(b);
    }
    if (!runs.empty()) in_flight_ += static_cast<int>(runs.size());
    // Demand runs start at once. Background runs (warmup, auto-warm) share
    // DSCACHE_FILL_STREAMS: a few streams fill a link; dozens of parallel
    // ranges only overflow its queues (measured in docs/benchmarks.md).
    for (auto [a, b] : runs) {
      if (priority == Priority::demand) {
        start.emplace_back(a, b, false);
      } else if (bulk_in_flight_ < config_.fill_streams) {
        ++bulk_in_flight_;
        start.emplace_back(a, b, true);
      } else {
        bulk_queue_.push_back(QueuedRun{&mount, path, key, slot_index, a, b});
        ++state.queued_runs;
      }
    }
  }
  index_->reader().touch(slot_index, index_->now_access_stamp());
  if (ready) reply({});
  for (auto [a, b, bulk] : start) fetch_block_run(mount, path, key, slot_index, a, b, priority, bulk);
}

void CacheManager::revive_stalled_waiters() {
  struct Run {
    Mount* mount;
    std::string path;
    IndexKey key;
    uint64_t slot_index, first, last;
  };
  std::vector<Run> runs;
  std::vector<Reply> answers;
  {
    std::lock_guard lock(mutex_);
    for (auto& [key, state] : blocks_) {
      if (state.waiters.empty() || state.mount == nullptr) continue;
      SlotSnapshot slot;
      if (index_->reader().read(state.slot_index, slot) != LookupResult::found || !(slot.key == key) ||
          !slot.blocks()) {
        continue;
      }
      const BlockRecord* record = index_->reader().block_record(slot.aux);
      if (record == nullptr) continue;
      for (auto it = state.waiters.begin(); it != state.waiters.end();) {
        if (IndexReader::blocks_present(*record, it->first, it->last)) {
          DSCACHE_LOG(warn, "%s/%s: a reader waited on blocks %llu-%llu that were present: answered",
                      state.mount->config.prefix, state.path.c_str(), static_cast<unsigned long long>(it->first),
                      static_cast<unsigned long long>(it->last));
          hold_blocks(key, it->first, it->last, kReplyHoldMs);
          answers.push_back(std::move(it->reply));
          it = state.waiters.erase(it);
          continue;
        }
        for (uint64_t b = it->first; b <= it->last && b < record->block_count; ++b) {
          if (IndexReader::blocks_present(*record, b, b) || state.in_flight.count(b) != 0) continue;
          DSCACHE_LOG(warn, "%s/%s: a reader waited on block %llu with no fill of it in flight: fetching it",
                      state.mount->config.prefix, state.path.c_str(), static_cast<unsigned long long>(b));
          state.in_flight.insert(b);
          ++in_flight_;
          runs.push_back(Run{state.mount, state.path, key, state.slot_index, b, b});
        }
        ++it;
      }
    }
  }
  for (Reply& r : answers) r({});
  for (const Run& r : runs) {
    fetch_block_run(*r.mount, r.path, r.key, r.slot_index, r.first, r.last, Priority::demand, false);
  }
}

std::string CacheManager::whole_file_message(const Mount& mount, const std::string& path, uint64_t size) const {
  return mount.config.prefix + std::string("/") + path + " (" + human_bytes(size) +
         ") is needed whole at once (mmap, sendfile, stdio without the kernel guard, a program run from it), and "
         "that does not fit";
}

void CacheManager::bulk_run_done() {
  QueuedRun next;
  {
    std::lock_guard lock(mutex_);
    if (bulk_queue_.empty()) {
      --bulk_in_flight_;
      return;
    }
    next = std::move(bulk_queue_.front());  // takes over the finished run's stream
    bulk_queue_.pop_front();
    --blocks_[next.key].queued_runs;
  }
  fetch_block_run(*next.mount, next.path, next.key, next.slot_index, next.first, next.last, Priority::background, true);
}

void CacheManager::fetch_block_run(Mount& mount, const std::string& path, const IndexKey& key, uint64_t slot_index,
                                   uint64_t first, uint64_t last, Priority priority, bool bulk, int attempt) {
  SlotSnapshot slot;
  index_->reader().read(slot_index, slot);
  const BlockRecord* record = index_->reader().block_record(slot.aux);
  const uint32_t generation = slot.generation();
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    BlockState& state = blocks_[key];
    // The file is replaced (evicted, changed) only with a new generation: an
    // fd opened under another generation may be the old inode.
    if (state.writer_fd >= 0 && state.writer_generation != generation) {
      ::close(state.writer_fd);
      state.writer_fd = -1;
    }
    if (state.writer_fd < 0) {
      state.writer_fd = open_for_filling(mirror_path(mount, path));
      state.writer_generation = generation;
    }
    fd = state.writer_fd;
  }
  if (fd < 0 || record == nullptr) {
    int err = fd < 0 ? errno : EIO;
    blocks_arrived(mount, path, key, slot_index, first, last, generation,
                   Status::error(err, mirror_path(mount, path) + ": cannot open for filling"), {});
    // Through the pool: a queue of runs that all fail at once must not recurse.
    if (bulk) pool_->post([this] { bulk_run_done(); }, true);
    return;
  }
  if (first == 0) note_miss(slot);  // one miss per file, not per block run
  const OwnBlocks own{&mount, &path, key, slot_index, first, last};
  t_recycle_held = false;
  if (std::string why; !make_room((last - first + 1) * config_.block_size, &why, &own)) {
    if (t_recycle_held && attempt < kHeldRetries) {
      // Room is there once readers are through with blocks held for them
      // (a second at most): the run waits for that, its blocks still in flight.
      pool_->post([this, &mount, path, key, slot_index, first, last, priority, bulk, attempt] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        fetch_block_run(mount, path, key, slot_index, first, last, priority, bulk, attempt + 1);
      }, true);
      return;
    }
    bool whole = false;  // a reader needs every block at once: nothing of its own could be recycled
    {
      std::lock_guard lock(mutex_);
      for (const BlockWaiter& w : blocks_[key].waiters) whole |= w.first == 0 && w.last + 1 >= record->block_count;
    }
    const std::string what =
        whole ? whole_file_message(mount, path, slot.size) : mount.config.prefix + std::string("/") + path;
    blocks_arrived(mount, path, key, slot_index, first, last, generation, Status::error(ENOSPC, what + ": " + why),
                   {});
    if (bulk) pool_->post([this] { bulk_run_done(); }, true);
    return;
  }
  const uint64_t offset = first * config_.block_size;
  const uint64_t length = std::min(slot.size, (last + 1) * config_.block_size) - offset;
  auto sink = std::make_shared<FillSink>(*writer_, fd, 0, config_.block_size, offset);
  GetRequest request;
  request.range = ByteRange::at(offset, length);
  request.if_match = std::string(record->etag, record->etag_length);
  request.parallelism = 1;
  mount.stats->fetches_in_flight.fetch_add(1, std::memory_order_relaxed);
  FillSink& sink_ref = *sink;
  mount.store->get_async(
      path, request, sink_ref, priority,
      [this, &mount, path, key, slot_index, first, last, length, sink, generation, priority, bulk](Result<GetResult> result) {
        pool_->post(
            [this, &mount, path, key, slot_index, first, last, length, sink, generation, bulk, result = std::move(result)] {
              Status status = sink->finish();
              if (!result.ok()) status = result.status();
              status = no_space(mount.config.prefix + std::string("/") + path, status);
              if (status.ok() && result->length != length) {
                status = Status::error(EIO, mount.config.prefix + std::string("/") + path + ": short read from the store");
              }
              mount.stats->fetches_in_flight.fetch_sub(1, std::memory_order_relaxed);
              if (status.ok()) {
                mount.stats->bytes_fetched.fetch_add(length, std::memory_order_relaxed);
                mount.stats->objects_fetched.fetch_add(1, std::memory_order_relaxed);
              }
              std::vector<uint64_t> sums;
              if (sink->in_order()) sums = sink->segment_checksums();
              blocks_arrived(mount, path, key, slot_index, first, last, generation, status, sums);
              release((last - first + 1) * config_.block_size);
              if (bulk) bulk_run_done();
            },
            priority == Priority::background);
      });
}

void CacheManager::blocks_arrived(Mount& mount, const std::string& path, const IndexKey& key, uint64_t slot_index,
                                  uint64_t first, uint64_t last, uint32_t generation, Status status,
                                  const std::vector<uint64_t>& sums) {
  SlotSnapshot slot;
  index_->reader().read(slot_index, slot);
  BlockRecord* record = index_->block_record(slot.aux);
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    BlockState& state = blocks_[key];
    if (state.writer_generation == generation) fd = state.writer_fd;
  }
  if (status.ok() && (slot.generation() != generation || fd < 0)) {
    // Replaced while its blocks were in flight: these bytes belong to the old file.
    status = Status::error(ESTALE, mount.config.prefix + std::string("/") + path + ": replaced while being filled");
    record = nullptr;
  }
  bool complete = false;
  if (status.ok() && record != nullptr && slot.key == key) {
    // Streamed through the sink when the run came in order; read back otherwise.
    std::vector<uint32_t> checksums(last - first + 1);
    for (uint64_t b = first; b <= last && status.ok(); ++b) {
      const uint64_t offset = b * config_.block_size;
      const uint64_t length = std::min(slot.size, offset + config_.block_size) - offset;
      if (sums.size() == last - first + 1) {
        checksums[b - first] = static_cast<uint32_t>(sums[b - first]);
      } else if (auto sum = block_checksum(fd, offset, length); sum.ok()) {
        checksums[b - first] = *sum;
      } else {
        status = sum.status();
      }
    }
    // Under mutex_: recycle_blocks (which clears bits of partial files under
    // it) never meets a file between its last bit and its complete state.
    std::unique_lock lock(mutex_);
    for (uint64_t b = first; b <= last && status.ok(); ++b) {
      const uint64_t offset = b * config_.block_size;
      record->checksums()[b] = checksums[b - first];
      record->bitmap()[b / 64].fetch_or(uint64_t{1} << (b % 64), std::memory_order_release);
      bytes_cached_.fetch_add(std::min(slot.size, offset + config_.block_size) - offset);
    }
    complete = status.ok() && IndexReader::blocks_present(*record, 0, record->block_count - 1);
    if (complete) {
      // Block writes moved the file's mtime: give it back the object's before
      // it is published (cp -p, rsync and make compare it).
      const timespec times[2] = {{0, UTIME_OMIT},
                                 {static_cast<time_t>(slot.mtime_ns / 1'000'000'000),
                                  static_cast<long>(slot.mtime_ns % 1'000'000'000)}};
      if (::futimens(fd, times) != 0) {
        DSCACHE_LOG(warn, "%s/%s: cannot set its mtime: %s", mount.config.prefix, path.c_str(), std::strerror(errno));
      }
    }
    // Complete: nothing left for the kernel guard to fill, and a marked file
    // costs every read a round trip through the daemon.
    if (complete && guard_) guard_->release_complete(fd);
    index_->modify(slot_index, [&](SlotSnapshot& v) {
      FileState next = complete ? FileState::complete : FileState::partial;
      if (v.state() != next) v.meta = SlotMeta::make(SlotKind::file, next, true, v.generation());
    });
    lock.unlock();
    if (slot.state() == FileState::absent) note_cached(mount, path, slot_index, key);
  } else if (status.code() == ESTALE && record != nullptr) {
    // The object changed: its blocks are worthless, and the listing must be refreshed.
    {
      std::lock_guard lock(mutex_);
      BlockState& state = blocks_[key];
      if (state.writer_fd >= 0) ::close(state.writer_fd);
      state.writer_fd = -1;
    }
    for (uint64_t w = 0; w < BlockRecord::words(record->block_capacity); ++w) record->bitmap()[w].store(0);
    index_->modify(slot_index, [](SlotSnapshot& v) {
      v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
    });
    std::string parent(parent_of(path));
    SlotSnapshot dir;
    uint64_t dir_index = 0;
    if (index_->find(index_key(mount.config.id, parent.data(), parent.size()), dir, &dir_index) ==
        LookupResult::found) {
      index_->modify(dir_index, [](SlotSnapshot& v) { v.mtime_ns = 0; });
    }
  }
  std::vector<std::pair<Reply, Status>> answers;
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    BlockState& state = blocks_[key];
    for (uint64_t b = first; b <= last; ++b) state.in_flight.erase(b);
    auto& waiters = state.waiters;
    for (auto it = waiters.begin(); it != waiters.end();) {
      bool overlaps = it->first <= last && it->last >= first;
      if (record != nullptr && IndexReader::blocks_present(*record, it->first, it->last)) {
        hold_blocks(key, it->first, it->last, kReplyHoldMs);
        answers.emplace_back(std::move(it->reply), Status{});
        it = waiters.erase(it);
      } else if (!status.ok() && overlaps) {
        answers.emplace_back(std::move(it->reply), status);
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
    if (complete && state.in_flight.empty() && state.waiters.empty()) {
      if (state.writer_fd >= 0) ::close(state.writer_fd);
      blocks_.erase(key);
    }
  }
  if (!status.ok()) {
    // A run only read ahead of its readers, refused room or overtaken by the
    // file's own eviction (ESTALE, ENOSPC), harmed nobody: readers ask again
    // for what they need. Every other failure, and any a reader got, is an
    // error (`dscache status`), with its line in daemon.log.
    const bool seen = std::any_of(answers.begin(), answers.end(), [](const auto& a) { return !a.second.ok(); });
    const bool speculative = !seen && (status.code() == ESTALE || status.code() == ENOSPC);
    if (!speculative) mount.stats->errors.fetch_add(1, std::memory_order_relaxed);
    const LogLevel level = speculative ? LogLevel::info : LogLevel::warn;
    if (log_enabled(level)) {
      logf(level, "filling blocks %llu-%llu of %s/%s failed%s: %s", static_cast<unsigned long long>(first),
           static_cast<unsigned long long>(last), mount.config.prefix, path.c_str(),
           speculative ? " (read ahead, no reader waited)" : "", status.message().c_str());
    }
  }
  for (auto& [reply, s] : answers) reply(s);
}

}  // namespace dscache
