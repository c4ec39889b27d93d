#include "cache/guard_keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cache/fanotify_events.h"
#include "common/log.h"

namespace dscache {
namespace {

constexpr int kTickMs = 2000;  // how often a waiting keeper looks whether its cache still exists

bool parse_fd(const char* text, int* out) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 1 << 20) return false;
  *out = static_cast<int>(v);
  return true;
}

// The cache directory was deleted (a test's or an operator's rm -rf): nothing left to guard.
bool cache_gone(int root_fd) {
  struct stat st {};
  return ::fstat(root_fd, &st) != 0 || st.st_nlink == 0;
}

void close_fd(int fd, const char* what) {
  if (fd >= 0 && ::close(fd) != 0) DSCACHE_LOG(warn, "guard keeper: closing %s: %s", what, std::strerror(errno));
}

// SIGUSR1: a new daemon guards the files in the mirror now (retire_previous_keeper).
volatile sig_atomic_t g_superseded = 0;
void on_superseded(int) { g_superseded = 1; }

// Superseded: a file still linked in the mirror is the new daemon's to guard
// (this group's mark goes); an unlinked one, a replaced file a reader still
// holds open, is answered from the file alone, until the kernel has dropped
// every mark of this group (the last such reader closed it).
void drop_linked_marks(int group, int root_fd) {
  fanotify::for_each_mark(group, [&](file_handle* handle) {
    // (fanotify_mark refuses O_PATH fds; opening raises no pre-content event.)
    int fd = ::open_by_handle_at(root_fd, handle, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;  // freed meanwhile: its mark went with it
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_nlink > 0 &&
        ::fanotify_mark(group, FAN_MARK_REMOVE, fanotify::kPreAccess, fd, nullptr) != 0 && errno != ENOENT) {
      DSCACHE_LOG(warn, "guard keeper: unmarking a file the new daemon guards: %s", std::strerror(errno));
    }
    close_fd(fd, "a marked file");
  });
}

uint32_t superseded_answer(int group, const fanotify::Event& ev) {
  struct stat st {};
  if (::fstat(ev.fd, &st) == 0 && st.st_nlink > 0) {
    if (::fanotify_mark(group, FAN_MARK_REMOVE, fanotify::kPreAccess, ev.fd, nullptr) != 0 && errno != ENOENT) {
      DSCACHE_LOG(warn, "guard keeper: unmarking a file the new daemon guards: %s", std::strerror(errno));
    }
    return fanotify::kAllow;
  }
  return fanotify::range_has_hole(ev.fd, ev.offset, ev.count) ? fanotify::deny(EIO) : fanotify::kAllow;
}

}  // namespace

std::string guard_keeper_pid_path(const CacheLayout& layout) { return layout.run_dir() + "/guard-keeper.pid"; }

int run_guard_keeper(int argc, char** argv) {
  int group = -1, pipe_fd = -1, table_fd = -1;
  if (argc != 5 || !parse_fd(argv[1], &group) || !parse_fd(argv[2], &pipe_fd) || !parse_fd(argv[3], &table_fd)) {
    DSCACHE_LOG(error, "%s is started by the daemon, not by hand", kGuardKeeperCommand);
    return 2;
  }
  for (int fd : {group, pipe_fd, table_fd}) {
    if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
      DSCACHE_LOG(error, "guard keeper: fd %d: %s", fd, std::strerror(errno));
      return 1;
    }
  }
  CacheLayout layout(argv[4]);
  int root_fd = ::open(layout.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    DSCACHE_LOG(error, "guard keeper: %s: %s", layout.root.c_str(), std::strerror(errno));
    return 1;
  }
  // One keeper per cache: the lock says which, and a successor daemon reads our pid here.
  const std::string pid_path = guard_keeper_pid_path(layout);
  int lock_fd = ::open(pid_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  bool locked = false;
  for (int i = 0; lock_fd >= 0 && i < 50 && !locked; ++i) {
    locked = ::flock(lock_fd, LOCK_EX | LOCK_NB) == 0;
    if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!locked) {
    DSCACHE_LOG(error, "guard keeper: %s: another keeper holds it; this one exits", pid_path.c_str());
    return 1;
  }
  char pid_text[32];
  int len = std::snprintf(pid_text, sizeof pid_text, "%d\n", static_cast<int>(::getpid()));
  if (::ftruncate(lock_fd, 0) != 0 || ::pwrite(lock_fd, pid_text, static_cast<size_t>(len), 0) != len) {
    DSCACHE_LOG(warn, "guard keeper: %s: %s", pid_path.c_str(), std::strerror(errno));
  }
  const size_t table_bytes = kGuardPendingSlots * sizeof(std::atomic<int32_t>);
  void* map = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, table_fd, 0);
  if (map == MAP_FAILED) {
    DSCACHE_LOG(error, "guard keeper: mapping the pending table: %s", std::strerror(errno));
    return 1;
  }
  auto* table = static_cast<std::atomic<int32_t>*>(map);
  struct sigaction sa {};
  sa.sa_handler = on_superseded;
  ::sigaction(SIGUSR1, &sa, nullptr);

  // While the daemon lives: wait. A 'q' means it left nothing to guard.
  while (true) {
    pollfd p{pipe_fd, POLLIN, 0};
    int n = ::poll(&p, 1, kTickMs);
    if (n < 0 && errno != EINTR) {
      DSCACHE_LOG(error, "guard keeper: poll: %s", std::strerror(errno));
      return 1;
    }
    if (n == 0) {
      if (cache_gone(root_fd)) return 0;
      continue;
    }
    if (n < 0) continue;
    char c = 0;
    ssize_t r = ::read(pipe_fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 1 && c == 'q') return 0;
    break;  // EOF: the daemon is gone and left partial files
  }
  DSCACHE_LOG(warn,
              "guard keeper %d: the daemon of %s is gone; reads of the unfilled parts of large files fail with EIO "
              "until a daemon runs again",
              static_cast<int>(::getpid()), layout.root.c_str());

  // Events the daemon read and never answered: their readers wait on them.
  // Answered before any new event is read, so no fd number can mean two events.
  for (size_t i = 0; i < kGuardPendingSlots; ++i) {
    int32_t v = table[i].exchange(0);
    if (v > 0 && !fanotify::answer(group, v - 1, fanotify::deny(EIO)) && errno != ENOENT) {
      DSCACHE_LOG(warn, "guard keeper: answering a pending event: %s", std::strerror(errno));
    }
  }
  alignas(fanotify_event_metadata) char buffer[64 << 10];
  while (true) {
    pollfd p{group, POLLIN, 0};
    int n = ::poll(&p, 1, kTickMs);
    if (n < 0 && errno != EINTR) {
      DSCACHE_LOG(error, "guard keeper: poll: %s", std::strerror(errno));
      return 1;
    }
    if (n == 0 && cache_gone(root_fd)) return 0;
    if (g_superseded == 1 && lock_fd >= 0) {
      // The successor's keeper takes the lock; this one only answers for
      // the replaced files it still marks, and lets go of the rest now.
      drop_linked_marks(group, root_fd);
      close_fd(lock_fd, pid_path.c_str());
      lock_fd = -1;
      DSCACHE_LOG(info, "guard keeper %d: handed over to a new daemon; guarding replaced files still open",
                  static_cast<int>(::getpid()));
    }
    if (n == 0 && g_superseded == 1 && fanotify::mark_count(group) == 0) return 0;
    if (n <= 0) continue;
    ssize_t length = ::read(group, buffer, sizeof buffer);
    if (length < 0) {
      if (errno != EINTR && errno != EAGAIN) DSCACHE_LOG(error, "guard keeper: reading events: %s", std::strerror(errno));
      continue;
    }
    fanotify::for_each_event(buffer, length, [group](const fanotify::Event& ev) {
      if (ev.fd < 0) return;
      uint32_t response = g_superseded == 1 ? superseded_answer(group, ev)
                          : fanotify::range_has_hole(ev.fd, ev.offset, ev.count) ? fanotify::deny(EIO)
                                                                                  : fanotify::kAllow;
      if (!fanotify::answer(group, ev.fd, response)) {
        DSCACHE_LOG(error, "guard keeper: answering an event: %s", std::strerror(errno));
      }
      if (::close(ev.fd) != 0) DSCACHE_LOG(warn, "guard keeper: closing an event fd: %s", std::strerror(errno));
    });
  }
}

void retire_previous_keeper(const CacheLayout& layout) {
  const std::string path = guard_keeper_pid_path(layout);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return;  // no keeper ever ran here
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    close_fd(fd, path.c_str());  // its keeper is gone
    return;
  }
  char text[32] = {};
  const int pid = ::pread(fd, text, sizeof text - 1, 0) > 0 ? std::atoi(text) : 0;
  // The lock's holder wrote that pid; its command line confirms it is a keeper.
  bool keeper = false;
  if (pid > 0) {
    char proc[64], cmdline[256] = {};
    std::snprintf(proc, sizeof proc, "/proc/%d/cmdline", pid);
    int c = ::open(proc, O_RDONLY | O_CLOEXEC);
    if (c >= 0) {
      ssize_t n = ::read(c, cmdline, sizeof cmdline - 1);
      close_fd(c, proc);
      for (ssize_t i = 0; i + 1 < n; ++i) {
        if (cmdline[i] == '\0') cmdline[i] = ' ';
      }
      keeper = n > 0 && std::strstr(cmdline, kGuardKeeperCommand) != nullptr;
    }
  }
  // SIGUSR1, not SIGTERM: it lets go of the lock but keeps answering for
  // replaced files that readers still hold open, which only its group marks.
  if (!keeper || ::kill(pid, SIGUSR1) != 0) {
    DSCACHE_LOG(warn, "kernel guard: %s is locked by pid %d, which is not a guard keeper we can stop", path.c_str(), pid);
    close_fd(fd, path.c_str());
    return;
  }
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (gone) {
    DSCACHE_LOG(info, "kernel guard: the previous daemon's keeper (pid %d) handed over", pid);
  } else {
    DSCACHE_LOG(warn, "kernel guard: the previous daemon's keeper (pid %d) did not exit within 2 s", pid);
  }
  close_fd(fd, path.c_str());
}

}  // namespace dscache
