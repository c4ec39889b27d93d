// The namespace mirror: listing store directories into real directories and
// files of the objects' exact sizes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "cache/cache_manager.h"
#include "common/disk_space.h"
#include "common/log.h"
#include "index/index_key.h"

namespace dscache {
namespace {

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

uint64_t etag_hash_of(const ObjectInfo& info) { return identity_hash(info.etag.data(), info.etag.size()); }

}  // namespace

void CacheManager::ensure_listed(uint64_t mount_id, const std::string& dir, Priority priority, Reply reply) {
  Mount* mount = mount_by_id(mount_id);
  if (mount == nullptr) return reply(unknown_mount(mount_id));
  if (NameProblem p = check_mirror_path(dir); p != NameProblem::none) {
    return reply(Status::error(ENOENT, mount->config.prefix + std::string("/") + dir + ": no such directory (" +
                                           describe(p) + ")"));
  }
  const IndexKey key = index_key(mount_id, dir.data(), dir.size());
  SlotSnapshot slot;
  if (index_->find(key, slot, nullptr) == LookupResult::found && slot.kind() == SlotKind::directory &&
      slot.mtime_ns > 0 && (config_.meta_ttl_ns == INT64_MAX || now_ns() - slot.mtime_ns < config_.meta_ttl_ns)) {
    return reply({});
  }
  if (dir.empty()) return list_once(*mount, dir, key, priority, std::move(reply));
  // A directory is one its parent's listing showed: the mirror holds it. What
  // the mirror does not hold, the parent is listed for first, so that
  // "file/x" is ENOTDIR and a file is never listed (and dropped) as a directory.
  auto check = [this, mount, dir, key, priority](bool parent_listed, Reply& done) -> bool {
    struct stat st {};
    if (::lstat(mirror_path(*mount, dir).c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        done(Status::error(ENOTDIR, mount->config.prefix + std::string("/") + dir + ": not a directory"));
      } else {
        list_once(*mount, dir, key, priority, std::move(done));
      }
      return true;
    }
    if (!parent_listed) return false;
    done(Status::error(ENOENT, mount->config.prefix + std::string("/") + dir + ": no such directory in " +
                                    mount->config.url));
    return true;
  };
  if (check(false, reply)) return;
  ensure_listed(mount_id, std::string(parent_of(dir)), priority,
                [check, reply = std::move(reply)](Status s) mutable {
                  if (!s.ok()) return reply(s);
                  check(true, reply);
                });
}

void CacheManager::list_once(Mount& mount, const std::string& dir, const IndexKey& key, Priority priority,
                             Reply reply) {
  {
    const auto now = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    // Served stale after a failed refresh: the store is tried again later.
    if (auto stale = stale_until_.find(key); stale != stale_until_.end()) {
      if (now < stale->second) {
        lock.unlock();
        return reply({});
      }
      stale_until_.erase(stale);
    }
    if (auto failed = failed_listings_.find(key); failed != failed_listings_.end()) {
      if (now - failed->second.at < kFailedListingHold) {
        Status s = failed->second.status;
        lock.unlock();
        return reply(s);
      }
      failed_listings_.erase(failed);
    }
    // The store failed another listing a moment ago (down, blackholed): no
    // new retry sequence per directory; what was listed serves stale, what
    // was not fails at once. (A path d levels deep would wait d sequences.)
    if (now < mount.outage_until) {
      Status failure = mount.outage;
      lock.unlock();
      return reply(serve_stale_listing(mount, dir, key, failure));
    }
    auto [it, first] = listing_waiters_.try_emplace(key);
    it->second.push_back(std::move(reply));
    if (!first) return;
  }
  pool_->post(
      [this, mount = &mount, dir, key] {
        Status s = list_directory(*mount, dir);
        if (!s.ok()) {
          mount->stats->errors.fetch_add(1, std::memory_order_relaxed);
          DSCACHE_LOG(warn, "listing %s/%s failed: %s", mount->config.prefix, dir.c_str(), s.message().c_str());
        }
        const bool store_failed = !s.ok() && s.code() != ENOENT && s.code() != ENOTDIR;
        // Denials and space are about this directory or this cache; the rest
        // (EIO, timeouts, refused connections) about the store as a whole.
        const bool outage = store_failed && s.code() != EACCES && s.code() != EPERM && s.code() != ENOSPC &&
                            s.code() != EDQUOT;
        const Status failure = s;
        if (store_failed) s = serve_stale_listing(*mount, dir, key, s);
        std::vector<Reply> waiters;
        {
          std::lock_guard lock(mutex_);
          waiters = std::move(listing_waiters_[key]);
          listing_waiters_.erase(key);
          const auto now = std::chrono::steady_clock::now();
          if (store_failed && !s.ok()) failed_listings_[key] = FailedListing{s, now};
          if (outage) {
            mount->outage_until = now + kFailedListingHold;
            mount->outage = failure;
          }
        }
        for (Reply& r : waiters) r(s);
      },
      priority == Priority::background);
}

Status CacheManager::serve_stale_listing(Mount& mount, const std::string& dir, const IndexKey& key,
                                         const Status& failure) {
  // The store failed (down, slow, denied): a directory listed before keeps
  // its listing (stale beats failing), and the store is tried again after
  // kStaleRetry, not on every request. One never listed fails: an outage is
  // never shown as an empty directory.
  SlotSnapshot slot;
  if (index_->find(key, slot, nullptr) != LookupResult::found || slot.kind() != SlotKind::directory ||
      slot.mtime_ns <= 0) {
    return failure;
  }
  const int64_t age_s = (now_ns() - slot.mtime_ns) / 1'000'000'000;
  DSCACHE_LOG(warn, "%s%s%s: serving the listing of %lld s ago (the store is tried again in %lld s): %s",
              mount.config.prefix, dir.empty() ? "" : "/", dir.c_str(), static_cast<long long>(age_s),
              static_cast<long long>(kStaleRetry.count()), failure.message().c_str());
  std::lock_guard lock(mutex_);
  stale_until_[key] = std::chrono::steady_clock::now() + kStaleRetry;
  return {};
}

void CacheManager::with_file_slot(Mount& mount, const std::string& path, Priority priority,
                                  std::function<void(Status, uint64_t, SlotSnapshot)> then) {
  if (NameProblem p = check_mirror_path(path); p != NameProblem::none || path.empty()) {
    return then(Status::error(ENOENT, mount.config.prefix + std::string("/") + path + ": no such file (" +
                                          (path.empty() ? "the mount's root is a directory" : describe(p)) + ")"),
                0, {});
  }
  const IndexKey key = index_key(mount.config.id, path.data(), path.size());
  auto lookup = [this, &mount, path, key](bool listed_now) -> std::optional<std::tuple<Status, uint64_t, SlotSnapshot>> {
    SlotSnapshot slot;
    uint64_t index = 0;
    LookupResult r = index_->find(key, slot, &index);
    if (r == LookupResult::found) {
      if (slot.kind() == SlotKind::directory) {
        return std::tuple{Status::error(EISDIR, mount.config.prefix + std::string("/") + path + ": is a directory"),
                          index, slot};
      }
      return std::tuple{Status{}, index, slot};
    }
    if (!listed_now) return std::nullopt;
    return std::tuple{Status::error(ENOENT, mount.config.prefix + std::string("/") + path + ": no such file in " +
                                                mount.config.url),
                      uint64_t{0}, SlotSnapshot{}};
  };
  if (auto found = lookup(false)) return then(std::get<0>(*found), std::get<1>(*found), std::get<2>(*found));
  // Not known yet: list its directory, then look again.
  ensure_listed(mount.config.id, std::string(parent_of(path)), priority,
                [lookup, then](Status s) {
                  if (!s.ok()) return then(s, 0, {});
                  auto found = lookup(true);
                  then(std::get<0>(*found), std::get<1>(*found), std::get<2>(*found));
                });
}

Status CacheManager::make_placeholder(const Mount& mount, const std::string& path, int dir_fd, const std::string& name,
                                      uint64_t size, int64_t mtime_ns) {
  // A new name takes an inode for good, so it passes the inode guard; a file
  // replaced by its placeholder (eviction, refresh) takes none once renamed.
  const std::string shown = mount.config.prefix + std::string("/") + path;
  if (struct stat st {}; ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (Status s = inode_room(shown); !s.ok()) return s;
  }
  // Built aside and renamed in: a reader never sees a file of the wrong size.
  std::string tmp = temp_path();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kMirrorFileMode);
  if (fd < 0) {
    // Out of space or inodes: the file system is named, not the temporary file.
    const int err = errno;
    if (is_no_space(err)) return Status::error(err, shown + ": " + no_space_message(layout_.root, err));
    return Status::error(err, tmp + ": " + errno_name(err));
  }
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {static_cast<time_t>(mtime_ns / 1'000'000'000), static_cast<long>(mtime_ns % 1'000'000'000)}};
  Status s;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::futimens(fd, times) != 0) {
    const int err = errno;
    s = Status::error(err, is_no_space(err) ? shown + ": " + no_space_message(layout_.root, err)
                                            : name + ": cannot make its placeholder: " + errno_name(err));
  }
  // Marked before it is reachable: an fd opened before the mark never raises events.
  if (s.ok() && size > config_.whole_file_max && guard_ && guard_->on()) {
    if (Status g = guard_->guard(fd, mount.config.id, path); !g.ok()) {
      DSCACHE_LOG(warn, "%s/%s: not guarded by the kernel: %s", mount.config.prefix, path.c_str(), g.message().c_str());
    }
  }
  ::close(fd);
  if (s.ok() && guard_) guard_->forget_replaced(dir_fd, name.c_str());
  if (s.ok()) {
    DirWindows::Window window(windows_, dir_fd);
    if (::renameat(AT_FDCWD, tmp.c_str(), dir_fd, name.c_str()) != 0) {
      const int err = errno;
      s = Status::error(err, is_no_space(err) ? shown + ": " + no_space_message(layout_.root, err)
                                              : name + ": cannot place its placeholder: " + errno_name(err));
    }
  }
  if (!s.ok()) {
    if (guard_) guard_->forget_replaced(AT_FDCWD, tmp.c_str());
    ::unlink(tmp.c_str());
  }
  return s;
}

Status CacheManager::replace_with_placeholder(const Mount& mount, const std::string& path, uint64_t size,
                                              int64_t mtime_ns) {
  const std::string dir = mirror_path(mount, std::string(parent_of(path)));
  FdGuard dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0) return Status::error(errno, dir + ": " + errno_name(errno));
  return make_placeholder(mount, path, dir_fd.fd, std::string(name_of(path)), size, mtime_ns);
}

Status CacheManager::reconcile_file(Mount& mount, int dir_fd, const std::string& dir_path, const std::string& path,
                                    const std::string& name, const ObjectInfo& info) {
  const IndexKey key = index_key(mount.config.id, path.data(), path.size());
  const uint64_t etag_hash = etag_hash_of(info);
  SlotSnapshot slot;
  uint64_t slot_index = 0;
  bool known = index_->find(key, slot, &slot_index) == LookupResult::found && slot.kind() == SlotKind::file;
  struct stat st {};
  bool present = ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  if (known && present && slot.etag_hash == etag_hash && slot.size == info.size) return {};  // unchanged

  uint32_t generation = 0;
  if (known) {
    // Changed in the store (or the file went missing): readers must stop
    // trusting the old bytes before the new placeholder replaces them.
    generation = slot.generation() + 1;
    index_->modify(slot_index, [&](SlotSnapshot& v) {
      v.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, generation);
    });
    if (slot.state() == FileState::complete || slot.state() == FileState::partial) {
      DSCACHE_LOG(info, "%s/%s changed in the store: its cached bytes are dropped", mount.config.prefix, path.c_str());
      uint64_t held = slot.state() == FileState::complete ? slot.size : 0;
      if (held > 0) bytes_cached_.fetch_sub(std::min(held, bytes_cached_.load()));
    }
  }
  if (Status s = make_placeholder(mount, path, dir_fd, name, info.size, shown_mtime(info)); !s.ok()) {
    return s.with_context(dir_path);
  }
  SlotSnapshot fresh;
  fresh.key = key;
  fresh.size = info.size;
  fresh.mtime_ns = shown_mtime(info);
  fresh.etag_hash = etag_hash;
  fresh.meta = SlotMeta::make(SlotKind::file, FileState::absent, false, generation);
  auto inserted = index_->upsert(fresh);
  return inserted.ok() ? Status{} : inserted.status();
}

Status CacheManager::make_mirror_dirs(Mount& mount, const std::string& dir) {
  // Each missing directory is made in a window on its parent.
  size_t end = 0;
  while (end != std::string::npos && !dir.empty()) {
    end = dir.find('/', end + 1);
    const std::string part = dir.substr(0, end);
    const std::string full = mirror_path(mount, part);
    struct stat st {};
    if (::lstat(full.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return Status::error(ENOTDIR, full + ": exists and is not a directory");
      continue;
    }
    FdGuard parent{::open(mirror_path(mount, std::string(parent_of(part))).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (parent.fd < 0) return Status::error(errno, full + ": cannot create directory: " + errno_name(errno));
    DirWindows::Window window(windows_, parent.fd);
    if (::mkdirat(parent.fd, std::string(name_of(part)).c_str(), kMirrorDirMode) != 0 && errno != EEXIST) {
      return Status::error(errno, full + ": cannot create directory: " + errno_name(errno));
    }
  }
  return {};
}

void CacheManager::remove_entry(Mount& mount, const std::string& path) {
  // Collect the slots under `path` (a file, or a directory tree), drop them
  // first (readers stop trusting), then remove the files.
  const std::string full = mirror_path(mount, path);
  std::vector<std::string> stack{path};
  while (!stack.empty()) {
    std::string p = std::move(stack.back());
    stack.pop_back();
    const IndexKey key = index_key(mount.config.id, p.data(), p.size());
    SlotSnapshot slot;
    uint64_t slot_index = 0;
    if (index_->find(key, slot, &slot_index) == LookupResult::found) {
      if (slot.kind() == SlotKind::file && slot.state() == FileState::complete) {
        bytes_cached_.fetch_sub(std::min(slot.size, bytes_cached_.load()));
      }
      index_->remove(slot_index);
    }
    std::string mp = mirror_path(mount, p);
    struct stat st {};
    if (guard_) guard_->forget_replaced(AT_FDCWD, mp.c_str());
    if (::lstat(mp.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      if (DIR* d = ::opendir(mp.c_str())) {
        while (struct dirent* e = ::readdir(d)) {
          std::string_view n = e->d_name;
          if (n != "." && n != "..") stack.push_back(join(p, n));
        }
        ::closedir(d);
      }
    }
  }
  // Out of the namespace at once, deleted at leisure. Its directory (and a
  // directory moved, whose ".." changes) are writable meanwhile.
  FdGuard parent{::open(mirror_path(mount, std::string(parent_of(path))).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  FdGuard self{::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  DirWindows::Window parent_window(windows_, parent.fd);
  DirWindows::Window self_window(windows_, self.fd);
  std::string trash = temp_path();
  if (::rename(full.c_str(), trash.c_str()) == 0) {
    pool_->post([trash] { remove_tree(trash); }, true);
  }
}

Status CacheManager::head_listed_objects(Mount& mount, const std::string& dir, std::vector<ObjectInfo>& objects) {
  const size_t cut = dir.empty() ? 0 : dir.size() + 1;
  std::vector<std::string> keys;
  std::vector<size_t> which;
  for (size_t i = 0; i < objects.size(); ++i) {
    // An object listed before, unchanged, keeps the mtime it has.
    const std::string path = join(dir, std::string_view(objects[i].key).substr(cut));
    SlotSnapshot slot;
    uint64_t slot_index = 0;
    if (index_->find(index_key(mount.config.id, path.data(), path.size()), slot, &slot_index) == LookupResult::found &&
        slot.kind() == SlotKind::file && slot.etag_hash == etag_hash_of(objects[i]) && slot.size == objects[i].size) {
      continue;
    }
    keys.push_back(objects[i].key);
    which.push_back(i);
  }
  if (keys.empty()) return {};
  auto heads = mount.store->head_many(keys);
  mount.stats->heads.fetch_add(keys.size(), std::memory_order_relaxed);
  for (size_t j = 0; j < heads.size(); ++j) {
    ObjectInfo& o = objects[which[j]];
    if (heads[j].ok()) {
      // The HEAD's is the one the object has now; a newer version than the
      // listing's shows at its fetch (its ETag differs, and it is refetched).
      if (heads[j]->etag == o.etag) o.meta_mtime_ns = heads[j]->meta_mtime_ns;
    } else if (heads[j].status().code() != ENOENT) {  // (deleted since the listing: it goes at the next)
      return heads[j].status().with_context("DSCACHE_MTIME=metadata: HEAD");
    }
  }
  return {};
}

Status CacheManager::list_directory(Mount& mount, const std::string& dir) {
  const std::string prefix = dir.empty() ? "" : dir + "/";
  std::vector<ObjectInfo> objects;
  std::vector<std::string> prefixes;
  bool marker = false;  // a "dir/" object: the directory exists even if empty
  ListRequest request;
  request.prefix = prefix;
  request.delimiter = "/";
  do {
    auto page = mount.store->list(request);
    if (!page.ok()) return page.status();
    for (auto& o : page->objects) {
      if (o.key == prefix) {
        marker = true;
      } else {
        objects.push_back(std::move(o));
      }
    }
    for (auto& p : page->common_prefixes) prefixes.push_back(std::move(p));
    request.continuation = page->next_continuation;
  } while (!request.continuation.empty());
  mount.stats->listings.fetch_add(1, std::memory_order_relaxed);
  if (config_.mtime_from_metadata) {
    if (Status s = head_listed_objects(mount, dir, objects); !s.ok()) return s;
  }

  const std::string dir_path = mirror_path(mount, dir);
  if (dir.empty() && objects.empty() && prefixes.empty()) {
    DSCACHE_LOG(warn, "%s: %s has no object under its prefix: the mount is empty (is DSCACHE_MOUNTS right?)",
                mount.config.prefix, mount.config.url);
  }
  if (!dir.empty() && objects.empty() && prefixes.empty() && !marker) {
    struct stat st {};
    if (::lstat(dir_path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      return Status::error(ENOTDIR, mount.config.prefix + std::string("/") + dir + ": not a directory");
    }
    remove_entry(mount, dir);  // gone from the store, if it was ever there
    return Status::error(ENOENT, mount.config.prefix + std::string("/") + dir + ": no such directory in " +
                                     mount.config.url);
  }
  if (Status s = make_mirror_dirs(mount, dir); !s.ok()) return s;
  FdGuard dir_fd{::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd < 0) return Status::error(errno, dir_path + ": " + errno_name(errno));
  // Every new name takes an inode: a listing that cannot have them all fails
  // before it makes any (not halfway, taking the guard's last inodes).
  uint64_t present = 0;
  if (DIR* d = ::opendir(dir_path.c_str())) {
    while (struct dirent* e = ::readdir(d)) present += e->d_name[0] != '.' ? 1 : 0;
    ::closedir(d);
  }
  if (const uint64_t listed = prefixes.size() + objects.size(); listed > present) {
    if (Status s = inode_room(mount.config.prefix + std::string(dir.empty() ? "" : "/") + dir, listed - present);
        !s.ok()) {
      return s;
    }
  }

  std::set<std::string> keep;
  for (const std::string& p : prefixes) {
    std::string name = p.substr(prefix.size());
    if (!name.empty() && name.back() == '/') name.pop_back();
    std::string path = join(dir, name);
    if (NameProblem problem = check_mirror_path(path); problem != NameProblem::none || name.empty()) {
      DSCACHE_LOG(info, "%s: prefix '%s' is not in the mirror: %s", mount.config.url, p.c_str(),
                  describe(problem == NameProblem::none ? NameProblem::empty_segment : problem));
      continue;
    }
    struct stat st {};
    if (::fstatat(dir_fd.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
      remove_entry(mount, path);  // was an object, is now a prefix: the directory wins
    }
    if (::fstatat(dir_fd.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      DirWindows::Window window(windows_, dir_fd.fd);
      if (::mkdirat(dir_fd.fd, name.c_str(), kMirrorDirMode) != 0 && errno != EEXIST) {
        return Status::error(errno, dir_path + "/" + name + ": cannot create directory: " + errno_name(errno));
      }
    }
    keep.insert(name);
  }
  for (const ObjectInfo& o : objects) {
    std::string name = o.key.substr(prefix.size());
    std::string path = join(dir, name);
    if (NameProblem problem = check_mirror_path(path); problem != NameProblem::none) {
      DSCACHE_LOG(info, "%s: key '%s' is not in the mirror: %s", mount.config.url, o.key.c_str(), describe(problem));
      continue;
    }
    if (keep.count(name) != 0) {
      DSCACHE_LOG(info, "%s: key '%s' is hidden by the prefix '%s/' of the same name", mount.config.url,
                  o.key.c_str(), o.key.c_str());
      continue;
    }
    struct stat st {};
    if (::fstatat(dir_fd.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      remove_entry(mount, path);  // was a prefix, is now an object: the directory goes (the file replaces it)
    }
    if (Status s = reconcile_file(mount, dir_fd.fd, dir_path, path, name, o); !s.ok()) return s;
    keep.insert(name);
  }
  // What the store no longer has leaves the mirror.
  std::vector<std::string> stale;
  if (DIR* d = ::opendir(dir_path.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != ".." && keep.count(std::string(n)) == 0) stale.emplace_back(n);
    }
    ::closedir(d);
  }
  for (const std::string& name : stale) remove_entry(mount, join(dir, name));

  SlotSnapshot listed;
  listed.key = index_key(mount.config.id, dir.data(), dir.size());
  listed.mtime_ns = now_ns();
  listed.meta = SlotMeta::make(SlotKind::directory, FileState::absent, false, 0);
  auto r = index_->upsert(listed);
  return r.ok() ? Status{} : r.status();
}

}  // namespace dscache
