// Partial files: large objects the program opened before they were complete.
// Their mirror files are sparse, and an unfilled hole reads as zeros, so the
// shim tracks each such fd and makes a range present before the program reads
// it. The rules that keep that true (docs/architecture.md, "Partial files"):
//
// * A read is let through only after the bitmap said its blocks are present
//   AND the slot's generation, read again after the bitmap, is the one the fd
//   was opened under: an eviction in between (which bumps the generation
//   before it replaces the file) sends the check round again.
// * A read is made at the offset that was checked (read and readv become
//   pread and preadv, then move the offset), and made again when the file's
//   recycle count moved while it ran (the daemon punched blocks out of a
//   file larger than the cache's room: BlockRecord::recycles).
// * An fd number has at most one entry: publishing one drops any stale
//   entry under that number (closed behind the shim's back, then reused).
// * An fd whose file was replaced (evicted and refetched, repaired by fsck)
//   is moved onto the current file with its offset, status flags and
//   close-on-exec flag, and only after fstat shows it is still on the inode
//   the table recorded.
// * A pin lasts as long as the daemon it was made with: a read after a daemon
//   restart pins again.
// * A vfork child (or any clone sharing our memory: posix_spawn, Python's
//   subprocess) runs the close and exec hooks in the parent's memory; it
//   never changes the table, so the parent keeps guarding its fds.
#include <sys/syscall.h>
#include <time.h>

#include <cstring>

#include "internal.h"
#include "real.h"

namespace dscache::shim {

namespace {

constexpr int kMaxPartials = 256;
constexpr int kCheckAttempts = 8;

struct PartialFile {
  std::atomic<int> fd{-1};  // -1: free; -2: being filled in
  int mount = -1;
  uint64_t slot = 0;
  uint64_t size = 0;
  uint64_t etag_hash = 0;
  int64_t mtime_ns = 0;  // the object's
  dev_t dev = 0;  // the inode the fd is on
  ino_t ino = 0;
  std::atomic<uint32_t> generation{0};   // the slot generation of that inode
  std::atomic<uint64_t> next_offset{0};  // where a sequential reader continues
  std::atomic<uint32_t> pinned_in{0};    // fork generation of the pin
  std::atomic<uint32_t> pinned_with{0};  // the daemon (pid) that holds the pin; 0: none
  std::atomic<int> reader{0};            // thread reading at the fd's offset (read_at_offset)
  char rel[kMaxPathLength];              // the path below the mount
};
PartialFile g_partials[kMaxPartials];
std::atomic<uint64_t> g_partial_bits[kBitmapFds / 64];

PartialFile* find_partial(int fd) {
  if (fd < 0) return nullptr;
  if (fd < kBitmapFds && !test_bit(g_partial_bits, fd)) return nullptr;
  for (PartialFile& p : g_partials) {
    if (p.fd.load(std::memory_order_acquire) == fd) return &p;
  }
  return nullptr;
}

// A free entry, reserved (fd -2) for the caller to fill in and publish.
PartialFile* reserve_entry() {
  for (PartialFile& p : g_partials) {
    int expected = -1;
    if (p.fd.load() == -1 && p.fd.compare_exchange_strong(expected, -2)) return &p;
  }
  return nullptr;
}

void drop_partial(PartialFile& p, bool unpin);

void publish(PartialFile& p, int fd) {
  // An entry already under this number is stale: its fd was closed behind
  // the shim's back (a raw syscall) and the number reused. Left, it would be
  // found first and check this file's reads against another file's bitmap.
  for (PartialFile& q : g_partials) {
    if (&q != &p && q.fd.load(std::memory_order_acquire) == fd) drop_partial(q, true);
  }
  g_partial_count.fetch_add(1);
  p.fd.store(fd, std::memory_order_release);
  set_bit(g_partial_bits, fd, true);
}

void pin_with_daemon(PartialFile& p) {
  const int rc = pin(p.mount, p.rel, true);
  p.pinned_in.store(g_fork_generation.load());
  p.pinned_with.store(rc == 0 ? current_daemon() : 0);
}

void drop_partial(PartialFile& p, bool unpin) {
  const int fd = p.fd.load();
  set_bit(g_partial_bits, fd, false);
  if (unpin && p.pinned_with.load() != 0) pin(p.mount, p.rel, false);
  p.fd.store(-1, std::memory_order_release);
  g_partial_count.fetch_sub(1);
}

// The fd's file was replaced (its slot generation moved on): puts the current
// mirror file under the same fd number with the same offset and flags.
// 0, -errno, or kNotOurs when the fd is no longer on the file the entry
// describes (its number was closed behind the shim's back and reused).
constexpr int kNotOurs = 1;
int move_to_current_file(int fd, PartialFile& p, uint32_t generation, bool shared_child) {
  Guard guard;
  struct stat st {};
  if (REAL(fstat)(fd, &st) != 0) return -errno;
  if (st.st_dev != p.dev || st.st_ino != p.ino) return kNotOurs;
  const off_t offset = REAL(lseek)(fd, 0, SEEK_CUR);
  const int status_flags = REAL(fcntl)(fd, F_GETFL);
  const int fd_flags = REAL(fcntl)(fd, F_GETFD);
  if (offset < 0 || status_flags < 0 || fd_flags < 0) return -errno;
  const int root = root_fd(p.mount);
  int fresh = REAL(openat)(root >= 0 ? root : AT_FDCWD, p.rel, O_RDONLY | O_CLOEXEC, 0);
  if (fresh < 0) return -errno;
  struct stat now {};
  if (REAL(fstat)(fresh, &now) != 0 || REAL(fcntl)(fresh, F_SETFL, status_flags) != 0 ||
      REAL(dup3)(fresh, fd, (fd_flags & FD_CLOEXEC) != 0 ? O_CLOEXEC : 0) < 0) {
    const int err = errno;
    REAL(close)(fresh);
    return -err;
  }
  REAL(close)(fresh);
  if (REAL(lseek)(fd, offset, SEEK_SET) < 0) return -errno;
  if (!shared_child) {
    p.dev = now.st_dev;
    p.ino = now.st_ino;
    p.generation.store(generation);
  }
  return 0;
}

}  // namespace

std::atomic<int> g_pid{0};
std::atomic<int> g_partial_count{0};

bool in_shared_memory_child() {
  const int me = static_cast<int>(syscall(SYS_getpid));
  const int known = g_pid.load(std::memory_order_relaxed);
  if (me == known) return false;
  // Another process: one that shares our memory (vfork, clone(CLONE_VM)),
  // which must leave the parent's tables alone, or one with memory of its
  // own made without the fork handlers (_Fork, a raw clone()), which is a
  // fork child like any and takes over its copy now. kcmp says which; where
  // it cannot (no kcmp, no access), shared is the answer that never harms
  // the parent; a parent that is gone shares nothing any more.
  const int saved = errno;
  const long same = syscall(SYS_kcmp, me, known, 1 /* KCMP_VM */, 0, 0);
  const int err = errno;
  errno = saved;
  if (same == 0 || (same < 0 && err != ESRCH)) return true;
  after_missed_fork();
  return false;
}

int register_partial(int fd, int mount, const char* rel, uint64_t slot, const SlotSnapshot& s) {
  // A child sharing our memory must not fill the parent's table with an fd
  // only it has: -EMFILE, and the caller makes the file complete instead.
  if (in_shared_memory_child()) return -EMFILE;
  const size_t n = std::strlen(rel);
  if (n >= kMaxPathLength) return -ENAMETOOLONG;
  struct stat st {};
  {
    Guard guard;
    if (REAL(fstat)(fd, &st) != 0) return -errno;
  }
  PartialFile* p = reserve_entry();
  if (p == nullptr) return -EMFILE;  // more large files open at once than the table holds
  std::memcpy(p->rel, rel, n + 1);
  p->mount = mount;
  p->slot = slot;
  p->size = s.size;
  p->etag_hash = s.etag_hash;
  p->mtime_ns = s.mtime_ns;
  p->dev = st.st_dev;
  p->ino = st.st_ino;
  p->generation.store(s.generation());
  p->next_offset.store(0);
  pin_with_daemon(*p);
  publish(*p, fd);
  return 0;
}

namespace {

// `fd` is on the same file as `src` (a dup, a reopen): guard it the same way.
// With the table full, the file is completed instead (then neither needs an
// entry). 0 or -errno.
int copy_entry(PartialFile& src, int fd) {
  PartialFile* p = reserve_entry();
  if (p == nullptr) return complete_fd(src.fd.load());
  std::memcpy(p->rel, src.rel, std::strlen(src.rel) + 1);
  p->mount = src.mount;
  p->slot = src.slot;
  p->size = src.size;
  p->etag_hash = src.etag_hash;
  p->mtime_ns = src.mtime_ns;
  p->dev = src.dev;
  p->ino = src.ino;
  p->generation.store(src.generation.load());
  p->next_offset.store(src.next_offset.load());
  pin_with_daemon(*p);
  publish(*p, fd);
  return 0;
}

}  // namespace

int adopt_fd(int fd) {
  if (fd < 0 || !active() || is_partial(fd)) return 0;
  struct stat st {};
  char link[64], target[kMaxPathLength], user[kMaxPathLength];
  {
    Guard guard;
    if (REAL(fstat)(fd, &st) != 0 || st.st_dev != mirror_device()) return 0;
    if (S_ISDIR(st.st_mode)) {
      // A mirror directory reached past the path hooks (/proc/self/fd/N of
      // one, received): *at() calls relative to it must be routed.
      std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      const ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
      if (n > 0) {
        target[n] = '\0';
        if (mirror_to_user(target, user, sizeof user)) mark_mapped_dirfd(fd);
      }
      return 0;
    }
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) <= g_config.whole_file_max) return 0;
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
  }
  if (!mirror_to_user(target, user, sizeof user)) return 0;
  const char* rel = nullptr;
  const MountConfig* m = find_mount(g_config, user, &rel);
  if (m == nullptr) return 0;
  const int mount = static_cast<int>(m - g_config.mounts);
  IndexReader* idx = index();
  SlotSnapshot s;
  uint64_t slot = 0;
  if (idx == nullptr || idx->find(key_of(mount, rel), s, &slot) != LookupResult::found || s.kind() != SlotKind::file ||
      s.state() == FileState::complete) {
    return 0;
  }
  // The bitmap describes the file at the mirror path now; an fd on a file
  // that was replaced since (the sender opened it before an eviction) is
  // registered as behind, so that its first read moves it onto that file.
  struct stat current {};
  {
    Guard guard;
    const int root = root_fd(mount);
    if (root < 0 || REAL(fstatat)(root, rel, &current, 0) != 0) return 0;
  }
  SlotSnapshot as_seen = s;
  if (current.st_dev != st.st_dev || current.st_ino != st.st_ino) {
    as_seen.meta = SlotMeta::make(s.kind(), s.state(), s.blocks(), s.generation() + SlotMeta::kGenerationMask);
  }
  if (int rc = register_partial(fd, mount, rel, slot, as_seen); rc != 0) {
    if (rc != -EMFILE) return rc;
    return -ask_daemon(ipc::MessageType::complete_file, mount, rel, 0, 0, 0);
  }
  return 0;
}

int hold_for_spawn(int mount, const char* rel, bool on) {
  if (!on) return pin(mount, rel, false);
  if (int rc = pin(mount, rel, true); rc != 0) return rc;
  // Pinned, it cannot be evicted now; complete it if it was meanwhile.
  IndexReader* idx = index();
  SlotSnapshot s;
  if (idx != nullptr && idx->find(key_of(mount, rel), s, nullptr) == LookupResult::found &&
      s.state() == FileState::complete) {
    return 0;
  }
  if (int rc = ask_daemon(ipc::MessageType::complete_file, mount, rel, 0, 0, 0); rc != 0) {
    (void)pin(mount, rel, false);
    return rc;
  }
  return 0;
}

int adopt_any_fd(int fd) {
  if (int rc = adopt_fd(fd); rc != 0 || is_partial(fd)) return rc;
  struct stat st {};
  char link[64], target[kMaxPathLength], user[kMaxPathLength];
  {
    Guard guard;
    if (REAL(fstat)(fd, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) mark_mapped_dirfd(fd);  // *at() calls relative to it are routed
    if (!S_ISREG(st.st_mode)) return 0;
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
    if (n <= 0) return -EIO;
    target[n] = '\0';
  }
  const char* rel = nullptr;
  const MountConfig* m = mirror_to_user(target, user, sizeof user) ? find_mount(g_config, user, &rel) : nullptr;
  if (m == nullptr) return 0;  // a stand-in above the mounts: directories only
  const int mount = static_cast<int>(m - g_config.mounts);
  // A whole file fills into its placeholder, the inode this fd is on: once
  // the index says complete (for this inode), its bytes are the object's.
  for (int attempt = 0; attempt < 3; ++attempt) {
    IndexReader* idx = index();
    SlotSnapshot s;
    struct stat now {};
    {
      Guard guard;
      const int root = root_fd(mount);
      if (root < 0 || REAL(fstatat)(root, rel, &now, 0) != 0) return -EIO;
    }
    if (now.st_ino != st.st_ino || now.st_dev != st.st_dev) return -ESTALE;  // replaced since: not this file's bytes
    if (idx != nullptr && idx->find(key_of(mount, rel), s, nullptr) == LookupResult::found &&
        s.state() == FileState::complete) {
      return 0;
    }
    if (int rc = ask_daemon(ipc::MessageType::fetch_object, mount, rel, 0, 0, 0); rc != 0) return -rc;
  }
  return -EIO;
}

int note_reopen(int fd, bool names_an_open_fd) {
  // A reopen through /proc/self/fd/N, /dev/stdin, a link to either: the same
  // inode as an fd in the table, so the same file.
  if (fd < 0) return 0;
  struct stat st {};
  if (g_partial_count.load(std::memory_order_relaxed) > 0) {
    {
      Guard guard;
      if (REAL(fstat)(fd, &st) != 0) return 0;
    }
    for (PartialFile& src : g_partials) {
      if (!S_ISREG(st.st_mode)) break;
      // The fd itself, on this file: just registered by the open that found it mapped.
      if (src.fd.load(std::memory_order_acquire) == fd && src.dev == st.st_dev && src.ino == st.st_ino) return 0;
    }
    for (PartialFile& src : g_partials) {
      if (src.fd.load(std::memory_order_acquire) >= 0 && src.dev == st.st_dev && src.ino == st.st_ino) {
        return copy_entry(src, fd);
      }
    }
  }
  // Another process's fd (/proc/PID/fd/N), or an O_PATH one's file never
  // fetched: the file may still be partial, or a placeholder.
  return names_an_open_fd ? adopt_any_fd(fd) : 0;
}

void note_partial_dup(int from, int to) {
  if (from == to || to < 0) return;
  PartialFile* src = find_partial(from);
  if (src != nullptr && !in_shared_memory_child()) (void)copy_entry(*src, to);
}

int prepare_dup(int fd) {
  // A vfork child cannot record the duplicate in the parent's table, and it
  // is about to run another program (dup2 onto stdin, say); a full table
  // cannot record it either: complete the file.
  if (!is_partial(fd)) return 0;
  if (!in_shared_memory_child() && g_partial_count.load() < kMaxPartials) return 0;
  return complete_fd(fd);
}

bool is_partial(int fd) { return find_partial(fd) != nullptr; }

bool kernel_guard_on() {
  IndexReader* idx = index();
  return idx != nullptr && (idx->header().flags.load(std::memory_order_acquire) & kIndexFlagKernelGuard) != 0;
}

namespace {
timespec to_timespec(int64_t ns) { return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)}; }
}  // namespace

bool filling_mtime(const Target& target, uint64_t size, timespec* mtime) {
  if (size <= g_config.whole_file_max) return false;
  IndexReader* idx = index();
  SlotSnapshot s;
  if (idx == nullptr || idx->find(key_of(target.mount, target.rel), s, nullptr) != LookupResult::found ||
      s.kind() != SlotKind::file || s.state() == FileState::complete) {
    return false;
  }
  *mtime = to_timespec(s.mtime_ns);
  return true;
}

bool partial_mtime(int fd, timespec* mtime) {
  const PartialFile* p = find_partial(fd);
  if (p == nullptr) return false;
  *mtime = to_timespec(p->mtime_ns);
  return true;
}

int ensure_readable(int fd, uint64_t offset, uint64_t length, uint64_t* recycles) {
  if (recycles != nullptr) *recycles = kNoRecycleCheck;
  PartialFile* p = find_partial(fd);
  if (p == nullptr) return 0;
  if (length == 0 || offset >= p->size) return 0;
  const uint64_t end = offset + length < p->size ? offset + length : p->size;
  const IndexKey key = key_of(p->mount, p->rel);
  const bool shared_child = in_shared_memory_child();
  if (!shared_child) {
    // A child of fork pins with its own connection; a restarted daemon
    // knows no pins: either way, pin again.
    const uint32_t daemon = current_daemon();
    if (p->pinned_in.load() != g_fork_generation.load() || (daemon != 0 && p->pinned_with.load() != daemon)) {
      pin_with_daemon(*p);
    }
  }
  uint32_t generation = p->generation.load();
  const bool sequential = p->next_offset.load(std::memory_order_relaxed) == offset;
  const uint64_t bs = g_config.block_size;
  for (int attempt = 0; attempt < kCheckAttempts; ++attempt) {
    IndexReader* idx = index();
    SlotSnapshot s;
    if (idx == nullptr || idx->read(p->slot, s) != LookupResult::found) {
      // No index mapped, or the daemon is writing the slot (an eviction, say):
      // the daemon answers when the range is present.
      if (int rc = ask_daemon(ipc::MessageType::fetch_range, p->mount, p->rel, offset, end - offset, 0); rc != 0) {
        return -rc;
      }
      continue;
    }
    if (!(s.key == key) || s.kind() != SlotKind::file || s.etag_hash != p->etag_hash) {
      log_line("dscache: %s/%s: the object changed in the store while it was open", g_config.mounts[p->mount].prefix,
               p->rel);
      return -ESTALE;
    }
    if (s.generation() != generation) {
      // The same object, placed again (evicted and refetched, repaired):
      // move this descriptor onto the current file, then check again.
      const int rc = move_to_current_file(fd, *p, s.generation(), shared_child);
      if (rc == kNotOurs) {
        if (!shared_child) drop_partial(*p, true);
        return 0;  // another file now: the read is the kernel's
      }
      if (rc != 0) return rc;
      generation = s.generation();
      continue;
    }
    if (s.state() == FileState::complete) break;
    const BlockRecord* record = s.blocks() ? idx->block_record(s.aux) : nullptr;
    // Before the bitmap: a recycle clears bits, then counts, then punches.
    const uint64_t seen = record != nullptr ? record->recycles.load(std::memory_order_acquire) : kNoRecycleCheck;
    if (record != nullptr && IndexReader::blocks_present(*record, offset / bs, (end - 1) / bs)) {
      // The bitmap belongs to the generation read above only if that is
      // still the slot's generation now.
      SlotSnapshot again;
      if (idx->read(p->slot, again) == LookupResult::found && again.generation() == generation &&
          again.key == key) {
        if (recycles != nullptr) *recycles = seen;
        break;
      }
      continue;
    }
    int rc = ask_daemon(ipc::MessageType::fetch_range, p->mount, p->rel, offset, end - offset,
                        sequential ? ipc::kFlagSequential : 0);
    if (rc != 0) return -rc;
    if (attempt == kCheckAttempts - 1) {
      log_line("dscache: %s/%s: the file kept changing while it was read", g_config.mounts[p->mount].prefix, p->rel);
      return -EIO;
    }
  }
  if (!shared_child) p->next_offset.store(end, std::memory_order_relaxed);
  if (MountStats* ms = stats_of(index(), p->mount)) ms->bytes_served.fetch_add(end - offset, std::memory_order_relaxed);
  return 0;
}

namespace {

// After a read made under `recycles`: false if the daemon recycled blocks of
// the file since (the read may have met a hole it punched).
bool read_was_stable(int fd, uint64_t recycles) {
  if (recycles == kNoRecycleCheck) return true;
  const PartialFile* p = find_partial(fd);
  IndexReader* idx = index();
  SlotSnapshot s;
  if (p == nullptr || idx == nullptr || idx->read(p->slot, s) != LookupResult::found || !s.blocks()) return false;
  const BlockRecord* record = idx->block_record(s.aux);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // the read's bytes before the count
  return record != nullptr && record->recycles.load(std::memory_order_acquire) == recycles;
}

// ensure_readable + do_read at `offset`, again while a recycle met the read.
ssize_t checked_read(int fd, uint64_t offset, uint64_t length, ssize_t (*do_read)(int fd, void* context, off_t offset),
                     void* context) {
  for (int attempt = 0;; ++attempt) {
    uint64_t recycles = kNoRecycleCheck;
    if (int rc = ensure_readable(fd, offset, length, &recycles); rc != 0) return fail(rc);
    const ssize_t n = do_read(fd, context, static_cast<off_t>(offset));
    if (n <= 0 || read_was_stable(fd, recycles)) return n;
    if (attempt + 1 == kCheckAttempts) {
      const PartialFile* p = find_partial(fd);
      if (p != nullptr) {
        log_line("dscache: %s/%s: the cache kept recycling this range while it was read (the cache is much "
                 "smaller than what is read)", g_config.mounts[p->mount].prefix, p->rel);
      }
      return fail(-EIO);
    }
  }
}

}  // namespace

ssize_t read_range(int fd, uint64_t offset, uint64_t length, ssize_t (*do_read)(int fd, void* context, off_t offset),
                   void* context) {
  if (find_partial(fd) == nullptr) return do_read(fd, context, static_cast<off_t>(offset));
  return checked_read(fd, offset, length, do_read, context);
}

int ensure_readable_held(int fd, uint64_t offset, uint64_t length) {
  PartialFile* p = find_partial(fd);
  if (p == nullptr) return 0;
  for (int attempt = 0; attempt < kCheckAttempts; ++attempt) {
    uint64_t before = kNoRecycleCheck;
    if (int rc = ensure_readable(fd, offset, length, &before); rc != 0) return rc;
    if (before == kNoRecycleCheck) return 0;  // complete (or nothing to read)
    // The daemon holds the blocks from its reply on; present after that with
    // no recycle since before the request: they stay for the read.
    if (int rc = ask_daemon(ipc::MessageType::fetch_range, p->mount, p->rel, offset, length, ipc::kFlagHold); rc != 0) {
      return -rc;
    }
    uint64_t after = kNoRecycleCheck;
    if (int rc = ensure_readable(fd, offset, length, &after); rc != 0) return rc;
    if (after == before) return 0;
  }
  return -EIO;
}

ssize_t read_at_offset(int fd, uint64_t length, ssize_t (*do_read)(int fd, void* context, off_t offset),
                       void* context) {
  PartialFile* p = find_partial(fd);
  if (p == nullptr) {
    const off_t at = REAL(lseek)(fd, 0, SEEK_CUR);
    if (at < 0) return -1;
    const ssize_t n = do_read(fd, context, at);
    if (n > 0 && REAL(lseek)(fd, at + n, SEEK_SET) < 0) return -1;
    return n;
  }
  // The check of [offset, offset + length) and the read at the offset must
  // not be split by another thread's read moving the same offset (the kernel
  // holds the file's position lock across a read): readers of one partial
  // fd in this process take turns. A signal handler reading on the thread
  // that holds the turn goes ahead; a turn held past a bound is taken over.
  const int self = static_cast<int>(syscall(SYS_gettid));
  bool mine = p->reader.load(std::memory_order_acquire) != self;
  if (mine) {
    const int64_t give_up = now_ns() + 120'000'000'000;
    for (int spins = 0;; ++spins) {
      int expected = 0;
      if (p->reader.compare_exchange_weak(expected, self, std::memory_order_acquire)) break;
      if (spins > 100) {
        const timespec pause{0, 100'000};
        nanosleep(&pause, nullptr);
        if (now_ns() > give_up) {
          log_line("dscache: %s/%s: another thread has been reading this fd for 2 minutes: reading anyway",
                   g_config.mounts[p->mount].prefix, p->rel);
          mine = false;
          break;
        }
      }
    }
  }
  // Read where the check was made (pread), then move the offset: another
  // holder of the same open file (a forked child, a dup in another thread)
  // may move the shared offset between a check and a read(), which would
  // then read a range nobody checked. Readers of one shared offset at the
  // same instant may read the same bytes twice; never a hole.
  ssize_t n;
  const off_t offset = REAL(lseek)(fd, 0, SEEK_CUR);
  if (offset < 0) {
    n = -1;
  } else {
    n = checked_read(fd, static_cast<uint64_t>(offset), length, do_read, context);
    if (n > 0 && REAL(lseek)(fd, offset + n, SEEK_SET) < 0) n = -1;
  }
  if (mine) {
    const int err = errno;
    p->reader.store(0, std::memory_order_release);
    errno = err;
  }
  return n;
}

void reset_partials_after_fork() {
  for (PartialFile& p : g_partials) p.reader.store(0);
}

int complete_fd(int fd) {
  PartialFile* p = find_partial(fd);
  if (p == nullptr) return 0;
  if (int rc = ensure_readable(fd, 0, p->size); rc != 0) return rc;
  if (!in_shared_memory_child()) {
    drop_partial(*p, true);
    struct stat st {};
    Guard guard;
    if (REAL(fstat)(fd, &st) == 0) mark_mirror_file_fd(fd, st);  // complete now: an fd on a mirror file like any
  }
  return 0;
}

int complete_inherited(bool every_open_fd) {
  if (g_partial_count.load(std::memory_order_relaxed) == 0) return 0;
  for (PartialFile& p : g_partials) {
    const int fd = p.fd.load();
    if (fd < 0) continue;
    int fd_flags;
    {
      Guard guard;
      fd_flags = REAL(fcntl)(fd, F_GETFD);
    }
    if (fd_flags < 0) continue;  // closed (in a vfork child, say)
    if ((fd_flags & FD_CLOEXEC) != 0 && !every_open_fd) continue;
    if (int rc = complete_fd(fd); rc != 0) {
      log_line("dscache: %s/%s: could not complete the file before running a program, which would read its "
               "holes: not run (%s)", g_config.mounts[p.mount].prefix, p.rel, std::strerror(-rc));
      return rc;
    }
  }
  return 0;
}

void forget_fd(int fd) {
  PartialFile* p = find_partial(fd);
  const bool dir = is_mapped_dirfd(fd);
  const bool file = test_bit(g_file_bits, fd);
  if (p == nullptr && !dir && !file) return;
  if (in_shared_memory_child()) return;  // the parent's fd, in the parent's memory
  if (p != nullptr) drop_partial(*p, true);
  if (file) set_bit(g_file_bits, fd, false);
  if (dir) {
    set_bit(g_dir_bits, fd, false);
    forget_above_listing(fd);
  }
}

void forget_fd_range(unsigned first, unsigned last) {
  int shared_child = -1;  // asked once, and only if something would change
  auto may_change = [&] {
    if (shared_child < 0) shared_child = in_shared_memory_child() ? 1 : 0;
    return shared_child == 0;
  };
  for (PartialFile& p : g_partials) {
    int fd = p.fd.load(std::memory_order_acquire);
    if (fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) {
      if (!may_change()) return;
      drop_partial(p, true);
    }
  }
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kBitmapFds); ++fd) {
    if ((fd % 64) == 0 && fd + 63 <= last && g_dir_bits[fd / 64].load(std::memory_order_relaxed) == 0) {
      fd += 63;  // a clear word at a time
      continue;
    }
    if (test_bit(g_dir_bits, static_cast<int>(fd))) {
      if (!may_change()) return;
      set_bit(g_dir_bits, static_cast<int>(fd), false);
      forget_above_listing(static_cast<int>(fd));
    }
  }
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kBitmapFds); ++fd) {
    if ((fd % 64) == 0 && fd + 63 <= last && g_file_bits[fd / 64].load(std::memory_order_relaxed) == 0) {
      fd += 63;
      continue;
    }
    if (test_bit(g_file_bits, static_cast<int>(fd))) {
      if (!may_change()) return;
      set_bit(g_file_bits, static_cast<int>(fd), false);
    }
  }
}

}  // namespace dscache::shim
