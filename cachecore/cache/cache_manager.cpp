#include "cache/cache_manager.h"
#include "common/disk_space.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "common/log.h"
#include "common/private_dir.h"
#include "index/index_key.h"
#include "store/open_store.h"

namespace dscache {
namespace {

std::string read_boot_id() {
  char buf[64] = {};
  int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "unknown";
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string id(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id.empty() ? "unknown" : id;
}

}  // namespace

CacheManager::CacheManager(const Config& config, Options options)
    : config_(config), layout_(config.cache_dir), options_(std::move(options)) {}

CacheManager::~CacheManager() {
  // Order matters: no new work, no new network completions, then no blocking
  // tasks, then no writes. The guard's listener runs until the writes are
  // done (they raise events on marked files), but asks for no more fills.
  if (guard_) guard_->refuse_fills();
  stop_auto_warm();
  engine_.reset();
  for (Mount& m : mounts_) m.store.reset();
  pool_.reset();
  writer_.reset();
  if (guard_) {
    guard_->stop_listening();
    guard_->finish();
  }
  for (auto& [key, state] : blocks_) {
    if (state.writer_fd >= 0) ::close(state.writer_fd);
  }
}

Result<std::unique_ptr<CacheManager>> CacheManager::open(const Config& config, const Env& env, Options options) {
  std::unique_ptr<CacheManager> cache(new CacheManager(config, std::move(options)));
  const CacheLayout& layout = cache->layout_;
  // The directory and what the daemon makes in it are checked before use
  // (common/private_dir.h): another user's directory, or a link planted in
  // it, is refused with one line.
  char error[1024];
  const uid_t me = ::geteuid();
  PrivateDirOptions root_options;
  root_options.owner = me;
  root_options.create = true;
  const int root_fd = open_private_dir(layout.root.c_str(), root_options, error, sizeof error);
  if (root_fd < 0) return Status::error(-root_fd, std::string("DSCACHE_CACHE_DIR: ") + error);
  // A system daemon's users read the index and the mirror; a user's is private.
  const unsigned shared = config.system_daemon ? 0755 : 0700;
  bool ok = ::fchmod(root_fd, shared) == 0;
  const int saved_errno = errno;
  struct Sub {
    const char* name;
    unsigned mode;
  } subs[] = {{"run", shared}, {"tmp", 0700}, {"mirror", shared}};
  for (const Sub& sub : subs) {
    int fd = ok ? open_private_subdir(root_fd, layout.root.c_str(), sub.name, me, sub.mode, error, sizeof error) : -1;
    if (fd < 0) {
      ::close(root_fd);
      return ok ? Status::error(-fd, error)
                : Status::error(saved_errno, layout.root + ": cannot make it private: " + errno_name(saved_errno));
    }
    ::fchmod(fd, sub.mode);
    ::close(fd);
  }
  ::close(root_fd);

  IndexOpenResult opened;
  auto index = IndexWriter::open(layout.index_path(), config.index_entries, config.block_size, &opened);
  if (!index.ok()) return index.status();
  cache->index_ = std::move(*index);
  ::chmod(layout.index_path().c_str(), config.system_daemon ? 0644 : 0600);
  if (opened.created) {
    if (!opened.replaced_reason.empty()) {
      DSCACHE_LOG(warn, "%s was replaced (%s): the cache starts empty", layout.index_path().c_str(),
                  opened.replaced_reason.c_str());
    }
    // A new index knows nothing of the old mirror: start it afresh.
    std::string old = layout.tmp_dir() + "/old-mirror-" + std::to_string(::getpid());
    if (::rename(layout.mirror_root().c_str(), old.c_str()) == 0) remove_tree(old);
    if (::mkdir(layout.mirror_root().c_str(), shared) != 0 && errno != EEXIST) {
      return Status::error(errno, layout.mirror_root() + ": cannot create directory: " + errno_name(errno));
    }
  }
  cache->recovery_ = cache->index_->recover(read_boot_id().c_str());
  const auto& r = cache->recovery_;
  if (!r.previous_clean) {
    DSCACHE_LOG(warn, "the previous daemon did not shut down cleanly%s: %llu fills reset, %llu files to verify",
                r.rebooted ? " and the machine rebooted since" : "", static_cast<unsigned long long>(r.filling_reset),
                static_cast<unsigned long long>(r.unverified));
  }
  // Leftovers of fills that were in flight (links are removed, never followed).
  remove_tree_contents(layout.tmp_dir());

  // One fetch engine for every S3 mount; its retry and TLS settings come from
  // the same AWS configuration the stores use.
  FetchEngineOptions engine_options;
  if (auto s3 = resolve_s3_settings(env); s3.ok()) engine_options = fetch_engine_options(*s3);
  cache->engine_ = std::make_shared<FetchEngine>(engine_options);

  StatsBlock& stats = cache->index_->stats();
  for (int i = 0; i < config.mount_count; ++i) {
    Mount mount;
    mount.config = config.mounts[i];
    mount.dir = layout.mount_dir(mount.config);
    if (::mkdir(mount.dir.c_str(), kMirrorDirMode) != 0 && errno != EEXIST) {
      return Status::error(errno, mount.dir + ": cannot create directory: " + errno_name(errno));
    }
    auto store = cache->options_.open_store ? cache->options_.open_store(mount.config)
                                            : open_store(mount.config.url, env, cache->engine_);
    if (!store.ok()) {
      return store.status().with_context(std::string("mount ") + mount.config.prefix + "=" + mount.config.url);
    }
    mount.store = *store;
    // Stats keep their slot across restarts: find this mount's, else a free one.
    MountStats* slot = nullptr;
    for (MountStats& ms : stats.mounts) {
      if (ms.mount_id.load() == mount.config.id) slot = &ms;
    }
    for (MountStats& ms : stats.mounts) {
      if (slot == nullptr && ms.mount_id.load() == 0) {
        slot = &ms;
        slot->mount_id.store(mount.config.id);
      }
    }
    mount.stats = slot != nullptr ? slot : &stats.total;
    cache->mounts_.push_back(std::move(mount));
  }

  FillWriter::Options writer_options;
  writer_options.use_io_uring = cache->options_.use_io_uring;
  cache->writer_ = std::make_unique<FillWriter>(writer_options);
  cache->pool_ = std::make_unique<ThreadPool>(cache->options_.pool_threads);

  ContentGuard::Options guard_options;
  guard_options.mode = cache->options_.kernel_guard ? config.kernel_guard : KernelGuard::off;
  if (!cache->options_.kernel_guard) guard_options.off_reason = "not enabled outside the daemon";
  guard_options.keeper = true;
  ContentGuard::Hooks hooks;
  CacheManager* self = cache.get();
  hooks.present = [self](uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length) {
    return self->range_present(mount_id, path, offset, length);
  };
  hooks.fill = [self](uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length, bool sequential,
                      ContentGuard::Done done) {
    // Through the pool: the listener must never wait, and a fill from a
    // file:// store writes (raising events the listener answers) on the thread that starts it.
    self->pool_->post([self, mount_id, path, offset, length, sequential, done = std::move(done)] {
      self->guard_fill(mount_id, path, offset, length, sequential, std::move(done), 0);
    });
  };
  auto guard = ContentGuard::start(layout, guard_options, std::move(hooks));
  if (!guard.ok()) return guard.status();
  cache->guard_ = std::move(*guard);
  if (cache->guard_->on()) {
    cache->index_->mutable_header().flags.fetch_or(kIndexFlagKernelGuard);
  } else {
    cache->index_->mutable_header().flags.fetch_and(~kIndexFlagKernelGuard);
  }
  if (cache->guard_->on()) {
    cache->guard_partial_files();
    cache->guard_->take_over();
    DSCACHE_LOG(info, "kernel guard: on, %zu partial large files guarded", cache->guard_->guarded_files());
  } else if (cache->options_.kernel_guard) {
    DSCACHE_LOG(info, "kernel guard: off: %s", cache->guard_->reason().c_str());
  }
  cache->rebuild_accounting();
  cache->publish_gauges();
  return cache;
}

CacheManager::Mount* CacheManager::mount_by_id(uint64_t mount_id) {
  for (Mount& m : mounts_) {
    if (m.config.id == mount_id) return &m;
  }
  return nullptr;
}

std::string CacheManager::mirror_path(const Mount& mount, std::string_view path) const {
  return path.empty() ? mount.dir : mount.dir + "/" + std::string(path);
}

std::string CacheManager::temp_path() {
  return layout_.tmp_dir() + "/fill-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter_.fetch_add(1));
}

int64_t CacheManager::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status unknown_mount(uint64_t mount_id) {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(mount_id));
  return Status::error(ENODEV, std::string("mount ") + id +
                                   " is not configured in the running daemon (it was started with another "
                                   "DSCACHE_MOUNTS; stop it with `dscache daemon --stop` to restart it)");
}

void CacheManager::fetch_object(uint64_t mount_id, const std::string& path, Priority priority, Reply reply) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return reply(unknown_mount(mount_id));
  with_file_slot(*mount, path, priority, [this, mount, path, priority, reply](Status s, uint64_t slot_index,
                                                                              SlotSnapshot slot) {
    if (!s.ok()) return reply(s);
    if (slot.size > config_.whole_file_max) {
      return fetch_range(mount->config.id, path, 0, slot.size, false, priority, reply);
    }
    const IndexKey key = slot.key;
    switch (slot.state()) {
      case FileState::complete:
        index_->reader().touch(slot_index, index_->now_access_stamp());
        // Hits and misses are a program's opens: warmup traffic is not counted.
        if (priority == Priority::demand) mount->stats->hits.fetch_add(1, std::memory_order_relaxed);
        return reply({});
      case FileState::unverified: {
        std::lock_guard lock(mutex_);
        auto [it, first] = fill_waiters_.try_emplace(key);
        it->second.push_back(reply);
        if (!first) return;
        ++in_flight_;
        pool_->post([this, mount, path, key, priority] { verify_then_serve(*mount, path, key, priority); });
        return;
      }
      default: {
        {
          std::lock_guard lock(mutex_);
          auto [it, first] = fill_waiters_.try_emplace(key);
          it->second.push_back(reply);
          if (!first) return;  // single-flight: the fill in progress answers everyone
          ++in_flight_;
        }
        if (priority == Priority::demand) mount->stats->misses.fetch_add(1, std::memory_order_relaxed);
        if (priority == Priority::demand) pool_->post([this, mount] { maybe_auto_warm(*mount); }, true);
        if (!mount->store->reads_on_caller_thread()) {
          // Starting an asynchronous fetch is a few quick calls: no hop to the pool.
          return start_fill(*mount, path, key, priority);
        }
        pool_->post([this, mount, path, key, priority] { start_fill(*mount, path, key, priority); },
                    priority == Priority::background);
        return;
      }
    }
  });
}

void CacheManager::complete_file(uint64_t mount_id, const std::string& path, Priority priority, Reply reply) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return reply(unknown_mount(mount_id));
  with_file_slot(*mount, path, priority, [this, mount, path, priority, reply](Status s, uint64_t, SlotSnapshot slot) {
    if (!s.ok()) return reply(s);
    if (slot.size <= config_.whole_file_max) return fetch_object(mount->config.id, path, priority, reply);
    fetch_range(mount->config.id, path, 0, slot.size, false, priority, reply);
  });
}

void CacheManager::refetch_damaged(uint64_t mount_id, const std::string& path, Priority priority, Reply reply) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return reply(unknown_mount(mount_id));
  with_file_slot(*mount, path, priority, [this, mount, path, priority, reply](Status s, uint64_t slot_index,
                                                                              SlotSnapshot slot) {
    if (!s.ok()) return reply(s);
    struct stat st {};
    const std::string file = mirror_path(*mount, path);
    const bool present = ::lstat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    if (slot.state() == FileState::complete && (!present || static_cast<uint64_t>(st.st_size) != slot.size)) {
      DSCACHE_LOG(warn, "%s/%s: %s in the cache (changed behind the daemon's back): fetching it again",
                  mount->config.prefix, path.c_str(),
                  present ? ("its size is " + std::to_string(st.st_size) + ", not " + std::to_string(slot.size)).c_str()
                          : "missing");
      index_->modify(slot_index, [](SlotSnapshot& v) {
        v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, v.generation() + 1);
      });
      bytes_cached_.fetch_sub(std::min(slot.size, bytes_cached_.load()));
      if (Status made = replace_with_placeholder(*mount, path, slot.size, slot.mtime_ns); !made.ok()) {
        return reply(made);
      }
    }
    fetch_object(mount->config.id, path, priority, reply);
  });
}

void CacheManager::pin(uint64_t client, uint64_t mount_id, const std::string& path) {
  std::lock_guard lock(mutex_);
  pins_[index_key(mount_id, path.data(), path.size())].insert(client);
}

void CacheManager::unpin(uint64_t client, uint64_t mount_id, const std::string& path) {
  std::lock_guard lock(mutex_);
  auto it = pins_.find(index_key(mount_id, path.data(), path.size()));
  if (it == pins_.end()) return;
  if (auto one = it->second.find(client); one != it->second.end()) it->second.erase(one);
  if (it->second.empty()) pins_.erase(it);
}

void CacheManager::release_client(uint64_t client) {
  std::lock_guard lock(mutex_);
  for (auto it = pins_.begin(); it != pins_.end();) {
    it->second.erase(client);
    it = it->second.empty() ? pins_.erase(it) : std::next(it);
  }
}

bool CacheManager::idle() const {
  std::lock_guard lock(mutex_);
  return in_flight_.load() == 0 && listing_waiters_.empty() && fill_waiters_.empty() && pool_->queued() == 0;
}

std::string CacheManager::status_text() const {
  std::ostringstream out;
  const IndexHeader& h = index_->header();
  out << "cache dir:   " << layout_.root << "\n";
  const uint64_t index_bytes = h.slots_used.load() * sizeof(IndexSlot) + (h.directory_mask.load() + 1) * 8;
  out << "index:       " << h.live_entries.load() << " entries of at most " << h.slot_capacity << ", "
      << index_bytes / std::max<uint64_t>(1, h.live_entries.load()) << " bytes each\n";
  out << "cached:      " << bytes_cached_.load() << " bytes";
  if (uint64_t cap = capacity_bytes(); cap != UINT64_MAX) out << " of " << cap;
  if (uint64_t over = over_capacity_fills_.load(); over > 0) {
    out << " (" << over << " fills went beyond the capacity while nothing could be evicted)";
  }
  out << "\nwrites:      " << (writer_->using_io_uring() ? "io_uring" : "pwrite") << "\n";
  if (guard_ && guard_->on()) {
    out << "kernel guard: on (fanotify pre-content, " << guard_->guarded_files() << " files guarded)\n";
  } else {
    out << "kernel guard: off: " << (guard_ ? guard_->reason() : std::string("not started")) << "\n";
  }
  {
    std::lock_guard lock(mutex_);
    out << "eviction:    "
        << (!config_.lru_only && rereference_ratio_ > 0.5
                ? "keeping the resident set (the working set exceeds the cache)"
                : config_.lru_only ? "least recently used (DSCACHE_EVICTION=lru)" : "least recently used")
        << ", re-reference ratio " << static_cast<int>(rereference_ratio_ * 100) << "%\n";
  }
  for (const Mount& m : mounts_) {
    const MountStats& st = *m.stats;
    out << "mount:       " << m.config.prefix << " = " << m.config.url << "\n";
    out << "  fetched " << st.objects_fetched.load() << " objects, " << st.bytes_fetched.load() << " bytes; hits "
        << st.hits.load() << ", misses " << st.misses.load() << ", listings " << st.listings.load() << ", evictions "
        << st.evictions.load() << ", errors " << st.errors.load() << ", in flight " << st.fetches_in_flight.load()
        << "\n";
    if (const uint64_t through = st.through_bytes.load(); through > 0) {
      // A cache smaller than what is read: said here, not through errors.
      out << "  served through " << human_bytes(through) << " (" << st.through_files.load()
          << " files evicted first to keep the resident set, and blocks of files larger than the cache's room "
             "recycled): the cache is smaller than what is read\n";
    }
  }
  return out.str();
}

bool CacheManager::range_present(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length) {
  SlotSnapshot slot;
  if (index_->find(index_key(mount_id, path.data(), path.size()), slot, nullptr) != LookupResult::found) return false;
  if (slot.state() == FileState::complete) return true;
  if (!slot.blocks() || length == 0) return false;
  const BlockRecord* record = index_->reader().block_record(slot.aux);
  const uint64_t bs = config_.block_size;
  if (record == nullptr || record->block_count != (slot.size + bs - 1) / bs) return false;
  if (offset >= slot.size) return true;
  const uint64_t end = std::min(slot.size, offset + std::min(length, slot.size - offset));
  // The guard lets the read through now, and the kernel copies the bytes
  // after: not recycled under it (kGuardHoldMs). Held first, checked
  // after (recycle_blocks clears bits under the holds' lock).
  hold_blocks(slot.key, offset / bs, (end - 1) / bs, kGuardHoldMs);
  return IndexReader::blocks_present(*record, offset / bs, (end - 1) / bs);
}

void CacheManager::guard_fill(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length,
                              bool sequential, Reply done, int attempt) {
  fetch_range(mount_id, path, offset, length, sequential, Priority::demand,
              [this, mount_id, path, offset, length, sequential, done = std::move(done), attempt](Status status) {
                // Present when the reply was made; held (and so kept) only
                // if still present after the hold: else fetched again.
                if (!status.ok() || range_present(mount_id, path, offset, length)) return done(std::move(status));
                if (attempt + 1 >= 4) {
                  return done(Status::error(EIO, path + ": the cache kept recycling this range before it was read"));
                }
                pool_->post([this, mount_id, path, offset, length, sequential, done, attempt] {
                  guard_fill(mount_id, path, offset, length, sequential, done, attempt + 1);
                });
              });
}

void CacheManager::hold_range(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length,
                              uint32_t ms) {
  const uint64_t bs = config_.block_size;
  if (length == 0) return;
  hold_blocks(index_key(mount_id, path.data(), path.size()), offset / bs, (offset + length - 1) / bs, ms);
}

void CacheManager::for_each_mirror_file(
    Mount& mount, const std::function<void(int dir_fd, const char* name, const std::string& path)>& visit) {
  std::vector<std::string> stack{""};
  while (!stack.empty()) {
    std::string dir = std::move(stack.back());
    stack.pop_back();
    DIR* d = ::opendir(mirror_path(mount, dir).c_str());
    if (d == nullptr) continue;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string path = dir.empty() ? std::string(name) : dir + "/" + std::string(name);
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {  // file systems that do not fill d_type
        struct stat st {};
        is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      if (is_dir) {
        stack.push_back(std::move(path));
        continue;
      }
      visit(::dirfd(d), e->d_name, path);
    }
    ::closedir(d);
  }
}

void CacheManager::guard_partial_files() {
  for (Mount& mount : mounts_) {
    for_each_mirror_file(mount, [&](int dir_fd, const char* name, const std::string& path) {
      SlotSnapshot slot;
      if (index_->find(index_key(mount.config.id, path.data(), path.size()), slot, nullptr) != LookupResult::found ||
          slot.kind() != SlotKind::file || slot.state() == FileState::complete ||
          // Filled by block (by this daemon's rule, or by an earlier daemon's
          // with a smaller DSCACHE_WHOLE_FILE_MAX): a sparse file to guard.
          (slot.size <= config_.whole_file_max && !slot.blocks())) {
        return;
      }
      int fd = ::openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return;  // removed meanwhile
      if (Status s = guard_->guard(fd, mount.config.id, path); !s.ok()) {
        DSCACHE_LOG(warn, "%s/%s: not guarded by the kernel: %s", mount.config.prefix, path.c_str(),
                    s.message().c_str());
      }
      if (::close(fd) != 0) DSCACHE_LOG(warn, "%s: close: %s", path.c_str(), std::strerror(errno));
    });
  }
}

void CacheManager::publish_gauges() {
  // The daemon's event loop calls this each turn: clients waiting on it see it alive.
  index_->mutable_header().heartbeat_ns.store(now_ns(), std::memory_order_release);
  MountStats& total = index_->stats().total;
  total.bytes_cached.store(bytes_cached_.load(), std::memory_order_relaxed);
  total.capacity_bytes.store(config_.cache_size, std::memory_order_relaxed);
}

void CacheManager::shutdown() {
  int fd = ::open(layout_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::syncfs(fd);  // the bytes behind every "complete" reach the disk
    ::close(fd);
  }
  index_->mark_clean();
}

}  // namespace dscache
