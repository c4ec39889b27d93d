#include "cache/content_guard.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "cache/fanotify_events.h"
#include "cache/guard_keeper.h"
#include "common/log.h"

namespace dscache {
namespace {

using Clock = std::chrono::steady_clock;

// A fill may take this long plus a second per 8 MiB (an mmap asks for the
// whole mapping at once) before its reader gets EIO.
constexpr auto kFillBound = std::chrono::seconds(30);
constexpr uint64_t kBytesPerExtraSecond = 8 << 20;

std::string file_system_name(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return "unknown";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0xEF53: return "ext4";
    case 0x9123683E: return "btrfs";
    case 0x6969: return "nfs";
    case 0x65735546: return "fuse";
    case 0x794c7630: return "overlayfs";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "type 0x%lx", static_cast<unsigned long>(fs.f_type));
      return hex;
    }
  }
}

// Error paths and teardown close many fds: a failure is logged, never fatal.
void close_fd(int fd, const char* what) {
  if (fd >= 0 && ::close(fd) != 0) DSCACHE_LOG(warn, "kernel guard: closing %s: %s", what, std::strerror(errno));
}

// The daemon's own program, by the kernel's link rather than its path: a
// binary replaced or deleted since the daemon started (an upgrade, a rebuild)
// still runs as the keeper.
constexpr const char* kSelfExe = "/proc/self/exe";

// What the keeper's command line shows as argv[0]: the program's path.
std::string self_exe_name() {
  char buf[4096];
  ssize_t n = ::readlink(kSelfExe, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("dscache");
}

}  // namespace

Result<std::unique_ptr<ContentGuard>> ContentGuard::start(const CacheLayout& layout, const Options& options,
                                                          Hooks hooks) {
  std::unique_ptr<ContentGuard> guard(new ContentGuard);
  guard->hooks_ = std::move(hooks);
  guard->options_ = options;
  guard->root_ = layout.root;
  guard->run_dir_ = layout.run_dir();
  guard->log_path_ = layout.log_path();
  guard->self_ = ::getpid();
  if (options.mode == KernelGuard::off) {
    guard->reason_ = options.off_reason;
    return guard;
  }
  if (Status s = guard->open_group(layout); !s.ok()) {
    if (options.mode == KernelGuard::on) return s.with_context("DSCACHE_KERNEL_GUARD=on");
    guard->reason_ = s.message();
    return guard;
  }
  if (guard->options_.keeper_exe.empty() && options.keeper) guard->options_.keeper_exe = kSelfExe;
  guard->listener_ = std::thread([g = guard.get()] { g->listen(); });
  return guard;
}

Status ContentGuard::open_group(const CacheLayout& layout) {
  int group = ::fanotify_init(fanotify::kClassPreContent | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
                                  FAN_UNLIMITED_MARKS,
                              O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (group < 0) {
    int err = errno;
    if (err == EPERM) return Status::error(err, "fanotify needs CAP_SYS_ADMIN, which the daemon lacks");
    if (err == ENOSYS) return Status::error(err, "the kernel has no fanotify");
    return Status::error(err, "fanotify_init of a pre-content group failed: " + errno_name(err));
  }
  // A mark on a file in the cache's own file system says whether its type
  // supports pre-content events (ext4, xfs, btrfs do; tmpfs does not).
  const std::string probe = layout.tmp_dir() + "/guard-probe-" + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    close_fd(group, "the fanotify group");
    return Status::error(err, probe + ": cannot create the probe file: " + errno_name(err));
  }
  Status result;
  if (::fanotify_mark(group, FAN_MARK_ADD, fanotify::kPreAccess, fd, nullptr) != 0) {
    int err = errno;
    if (err == EINVAL) {
      result = Status::error(err, "the kernel has no fanotify pre-content events (Linux 6.14 or later needed)");
    } else if (err == EOPNOTSUPP || err == ENOTSUP) {
      result = Status::error(err, "the file system of " + layout.root + " (" + file_system_name(layout.root) +
                                      ") does not support fanotify pre-content marks");
    } else {
      result = Status::error(err, "a pre-content mark on " + probe + " failed: " + errno_name(err));
    }
  } else if (::fanotify_mark(group, FAN_MARK_REMOVE, fanotify::kPreAccess, fd, nullptr) != 0) {
    result = Status::error(errno, "removing the probe's pre-content mark failed: " + errno_name(errno));
  }
  if (::close(fd) != 0 || ::unlink(probe.c_str()) != 0) {
    DSCACHE_LOG(warn, "%s: cannot remove the probe file: %s", probe.c_str(), std::strerror(errno));
  }
  if (!result.ok()) {
    close_fd(group, "the fanotify group");
    return result;
  }

  // The table of events read and not yet answered, shared with the keeper.
  int table = ::memfd_create("dscache-guard-pending", MFD_CLOEXEC);
  const size_t table_bytes = kGuardPendingSlots * sizeof(std::atomic<int32_t>);
  void* map = MAP_FAILED;
  if (table >= 0 && ::ftruncate(table, static_cast<off_t>(table_bytes)) == 0) {
    map = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, table, 0);
  }
  if (map == MAP_FAILED) {
    int err = errno;
    close_fd(table, "the pending table");
    close_fd(group, "the fanotify group");
    return Status::error(err, "cannot make the guard's table of pending events: " + errno_name(err));
  }
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int err = errno;
    if (::munmap(map, table_bytes) != 0) DSCACHE_LOG(warn, "kernel guard: munmap: %s", std::strerror(errno));
    close_fd(table, "the pending table");
    close_fd(group, "the fanotify group");
    return Status::error(err, "eventfd: " + errno_name(err));
  }
  group_fd_ = group;
  table_fd_ = table;
  table_ = static_cast<std::atomic<int32_t>*>(map);
  wake_fd_ = wake;
  for (size_t i = kGuardPendingSlots; i > 0; --i) free_slots_.push_back(static_cast<int>(i - 1));
  return {};
}

ContentGuard::~ContentGuard() {
  stop_listening();
  finish();
  if (table_ != nullptr && ::munmap(table_, kGuardPendingSlots * sizeof(std::atomic<int32_t>)) != 0) {
    DSCACHE_LOG(warn, "kernel guard: munmap: %s", std::strerror(errno));
  }
  close_fd(table_fd_, "the pending table");
  close_fd(wake_fd_, "the listener's eventfd");
}

size_t ContentGuard::guarded_files() const {
  std::lock_guard lock(mutex_);
  return files_.size();
}

Status ContentGuard::guard(int fd, uint64_t mount_id, const std::string& path) {
  if (!on()) return {};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::error(errno, path + ": fstat: " + errno_name(errno));
  if (::fanotify_mark(group_fd_, FAN_MARK_ADD, fanotify::kPreAccess, fd, nullptr) != 0) {
    return Status::error(errno, path + ": cannot put a pre-content mark on it: " + errno_name(errno));
  }
  std::lock_guard lock(mutex_);
  files_[FileId{st.st_dev, st.st_ino}] = Guarded{mount_id, path};
  return {};
}

void ContentGuard::release_complete(int fd) {
  if (!on()) return;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    DSCACHE_LOG(warn, "kernel guard: fstat of a completed file: %s", std::strerror(errno));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (files_.count(FileId{st.st_dev, st.st_ino}) == 0) return;
  }
  // Unmarked first: an event queued meanwhile finds no entry, and a complete
  // file has no holes, so it is allowed.
  if (::fanotify_mark(group_fd_, FAN_MARK_REMOVE, fanotify::kPreAccess, fd, nullptr) != 0 && errno != ENOENT) {
    DSCACHE_LOG(warn, "kernel guard: removing the mark of a completed file: %s", std::strerror(errno));
  }
  std::lock_guard lock(mutex_);
  files_.erase(FileId{st.st_dev, st.st_ino});
}

void ContentGuard::forget_replaced(int dir_fd, const char* name) {
  if (!on()) return;
  struct stat st {};
  if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;  // nothing there yet
  std::lock_guard lock(mutex_);
  files_.erase(FileId{st.st_dev, st.st_ino});
}

void ContentGuard::refuse_fills() {
  std::lock_guard lock(hooks_mutex_);
  fills_refused_ = true;
}

void ContentGuard::listen() {
  pollfd fds[2] = {{group_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  alignas(fanotify_event_metadata) char buffer[64 << 10];
  while (true) {
    int n = ::poll(fds, 2, 250);
    if (n < 0 && errno != EINTR) {
      DSCACHE_LOG(error, "kernel guard: poll: %s: the listener stops", std::strerror(errno));
      return;
    }
    if (n > 0 && (fds[1].revents & POLLIN) != 0) return;
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      ssize_t length = ::read(group_fd_, buffer, sizeof buffer);
      if (length < 0 && errno != EINTR && errno != EAGAIN) {
        DSCACHE_LOG(error, "kernel guard: reading events: %s", std::strerror(errno));
      }
      if (length > 0) {
        fanotify::for_each_event(buffer, length, [this](const fanotify::Event& ev) {
          if (ev.fd < 0) {
            if ((ev.mask & FAN_Q_OVERFLOW) != 0) DSCACHE_LOG(error, "kernel guard: the event queue overflowed");
            return;
          }
          on_event(ev.fd, ev.pid, ev.offset, ev.count);
        });
      }
    }
    expire_overdue();
  }
}

void ContentGuard::on_event(int fd, int32_t pid, uint64_t offset, uint64_t count) {
  // The daemon's own writes and read-backs of marked files: it knows what it does.
  if (pid == self_) return respond(fd, fanotify::kAllow);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return respond(fd, fanotify::deny(EIO));
  Guarded file;
  bool known = false, sequential = false;
  {
    std::lock_guard lock(mutex_);
    if (auto it = files_.find(FileId{st.st_dev, st.st_ino}); it != files_.end()) {
      file = it->second;
      known = true;
      // Ranges come rounded to pages: a read that starts where the last one
      // stopped starts at most a page before its rounded end.
      sequential = offset <= it->second.read_end && offset + 4096 >= it->second.read_end && offset > 0;
      it->second.read_end = count > UINT64_MAX - offset ? UINT64_MAX : offset + count;
    }
  }
  // Not ours to fill (replaced, or completed a moment ago): its written parts
  // are the object's bytes; its holes are not.
  if (!known) return respond(fd, fanotify::range_has_hole(fd, offset, count) ? fanotify::deny(EIO) : fanotify::kAllow);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset >= size || count == 0) return respond(fd, fanotify::kAllow);
  const uint64_t length = std::min(count, size - offset);

  std::unique_lock hooks_lock(hooks_mutex_);
  if (fills_refused_) {
    hooks_lock.unlock();
    return respond(fd, fanotify::range_has_hole(fd, offset, length) ? fanotify::deny(EIO) : fanotify::kAllow);
  }
  if (hooks_.present(file.mount_id, file.path, offset, length)) {
    hooks_lock.unlock();
    return respond(fd, fanotify::kAllow);
  }
  uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    if (!free_slots_.empty()) {
      ticket = next_ticket_++;
      Pending& p = pending_[ticket];
      p.fd = fd;
      p.slot = free_slots_.back();
      free_slots_.pop_back();
      p.deadline = Clock::now() + kFillBound + std::chrono::seconds(length / kBytesPerExtraSecond);
      p.path = file.path;
      table_[p.slot].store(fd + 1, std::memory_order_release);
    }
  }
  if (ticket == 0) {
    hooks_lock.unlock();
    DSCACHE_LOG(warn, "kernel guard: %zu reads already wait for fills: a read of %s fails with EIO",
                kGuardPendingSlots, file.path.c_str());
    return respond(fd, fanotify::deny(EIO));
  }
  hooks_.fill(file.mount_id, file.path, offset, length, sequential, [this, ticket](Status s) { settle(ticket, s); });
}

void ContentGuard::settle(uint64_t ticket, const Status& status) {
  Pending p;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;  // overdue: already denied
    p = std::move(it->second);
    pending_.erase(it);
  }
  respond(p.fd, status.ok() ? fanotify::kAllow : fanotify::deny(status.code()));
  std::lock_guard lock(mutex_);
  table_[p.slot].store(0, std::memory_order_release);
  free_slots_.push_back(p.slot);
}

void ContentGuard::expire_overdue() {
  std::vector<Pending> overdue;
  const auto now = Clock::now();
  {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        overdue.push_back(std::move(it->second));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Pending& p : overdue) {
    respond(p.fd, fanotify::deny(EIO));
    std::lock_guard lock(mutex_);
    table_[p.slot].store(0, std::memory_order_release);
    free_slots_.push_back(p.slot);
    if (overdue_logged_.insert(p.path).second) {
      DSCACHE_LOG(warn, "kernel guard: a read of %s waited too long for its blocks: it fails with EIO", p.path.c_str());
    }
  }
}

void ContentGuard::respond(int fd, uint32_t response) {
  if (!fanotify::answer(group_fd_, fd, response)) {
    DSCACHE_LOG(error, "kernel guard: answering an event: %s", std::strerror(errno));
  }
  if (::close(fd) != 0) DSCACHE_LOG(warn, "kernel guard: closing an event fd: %s", std::strerror(errno));
}

void ContentGuard::take_over() {
  if (!on()) return;
  CacheLayout layout(root_);
  retire_previous_keeper(layout);
  spawn_keeper();
}

void ContentGuard::spawn_keeper() {
  if (options_.keeper_exe.empty()) return;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    DSCACHE_LOG(warn, "kernel guard: no keeper (pipe: %s): if the daemon dies, reads of partial files see zeros",
                std::strerror(errno));
    return;
  }
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  // Everything the child needs is prepared here: between fork and exec only
  // async-signal-safe calls (the daemon has threads).
  char group_arg[16], pipe_arg[16], table_arg[16];
  std::snprintf(group_arg, sizeof group_arg, "%d", group_fd_);
  std::snprintf(pipe_arg, sizeof pipe_arg, "%d", pipe_fds[0]);
  std::snprintf(table_arg, sizeof table_arg, "%d", table_fd_);
  const std::string exe = options_.keeper_exe;
  std::string name = exe == kSelfExe ? self_exe_name() : exe;
  std::string root = root_;
  char* argv[] = {name.data(), const_cast<char*>(kGuardKeeperCommand), group_arg, pipe_arg, table_arg, root.data(),
                  nullptr};
  const int keep[] = {group_fd_, pipe_fds[0], table_fd_};
  pid_t child = ::fork();
  if (child == 0) {
    // Twice forked: the keeper belongs to init, not to the daemon, and has
    // its own session, so neither a reap nor a terminal's Ctrl-C ties it to us.
    // After the second fork a failure has nobody to tell (126, 127): the
    // keeper does not start and the daemon guards alone.
    const pid_t keeper = ::fork();
    if (keeper != 0) ::_exit(keeper > 0 ? 0 : 125);
    sigset_t none;
    sigemptyset(&none);
    if (::setsid() < 0 || ::sigprocmask(SIG_SETMASK, &none, nullptr) != 0 || null_fd < 0 ||
        ::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 || ::dup2(log_fd >= 0 ? log_fd : null_fd, 2) < 0) {
      ::_exit(126);
    }
    // Nothing else crosses the exec: a daemon started on demand inherits its
    // client's fds (a pipe a caller waits on), and the keeper may outlive both.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) ::_exit(126);
    for (int fd : keep) {
      if (::fcntl(fd, F_SETFD, 0) != 0) ::_exit(126);
    }
    ::execv(exe.c_str(), argv);
    ::_exit(127);
  }
  close_fd(null_fd, "/dev/null");
  close_fd(log_fd, "daemon.log");
  close_fd(pipe_fds[0], "the keeper's pipe");
  if (child < 0) {
    DSCACHE_LOG(warn, "kernel guard: no keeper (fork: %s): if the daemon dies, reads of partial files see zeros",
                std::strerror(errno));
    close_fd(pipe_fds[1], "the keeper's pipe");
    return;
  }
  int status = 0;
  pid_t reaped;
  while ((reaped = ::waitpid(child, &status, 0)) < 0 && errno == EINTR) {
  }
  if (reaped < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    DSCACHE_LOG(warn, "kernel guard: no keeper (its start failed): if the daemon dies, reads of partial files see zeros");
    close_fd(pipe_fds[1], "the keeper's pipe");
    return;
  }
  keeper_pipe_ = pipe_fds[1];
}

void ContentGuard::stop_listening() {
  if (!listener_.joinable()) return;
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) != sizeof one) {
    DSCACHE_LOG(error, "kernel guard: cannot wake the listener: %s", std::strerror(errno));
  }
  listener_.join();
}

void ContentGuard::finish() {
  if (group_fd_ < 0) return;
  std::map<uint64_t, Pending> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(pending_);
  }
  for (auto& [ticket, p] : left) {
    respond(p.fd, fanotify::deny(EIO));
    table_[p.slot].store(0, std::memory_order_release);
  }
  if (keeper_pipe_ >= 0) {
    // Nothing marked is left: the keeper may go. Otherwise it keeps the
    // marks, also those on replaced files a reader still holds open (which
    // the table no longer lists: hence the kernel's count).
    const int marks = fanotify::mark_count(group_fd_);
    if ((marks >= 0 ? marks : static_cast<int>(guarded_files())) == 0 && ::write(keeper_pipe_, "q", 1) != 1) {
      DSCACHE_LOG(warn, "kernel guard: cannot release the keeper: %s", std::strerror(errno));
    }
    close_fd(keeper_pipe_, "the keeper's pipe");
    keeper_pipe_ = -1;
  }
  close_fd(group_fd_, "the fanotify group");
  group_fd_ = -1;
}

}  // namespace dscache
