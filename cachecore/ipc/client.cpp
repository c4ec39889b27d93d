// libc only: this file is also compiled into libdscache.so.
#include "ipc/client.h"

#include <alloca.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/private_dir.h"

extern char** environ;

namespace dscache::ipc {
namespace {

bool write_all(int fd, const char* data, size_t length) {
  while (length > 0) {
    ssize_t n = ::send(fd, data, length, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

int64_t monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The state letter of /proc/<pid>/stat ('R', 'S', 'T' stopped, 'Z'...), or 0 if gone.
char process_state(int pid) {
  char path[64], stat[512];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = ::read(fd, stat, sizeof stat - 1);
  ::close(fd);
  if (n <= 0) return 0;
  stat[n] = '\0';
  const char* close_paren = std::strrchr(stat, ')');  // "pid (comm) S ..."
  return close_paren != nullptr && close_paren[1] == ' ' ? close_paren[2] : '?';
}

// The daemon a wait last gave up on: while it stays stopped or hung, later
// requests fail at once instead of waiting the whole timeout again each (a
// loader touching 1,000 files would wait 1,000 timeouts).
int g_stuck_pid = 0;

// How long the daemon's event loop has been silent (its heartbeat, where the
// caller maps the index; 0 when unknown).
int64_t silent_ms(const Connection& conn) {
  const int64_t beat = conn.heartbeat != nullptr ? __atomic_load_n(conn.heartbeat, __ATOMIC_ACQUIRE) : 0;
  return beat > 0 ? (realtime_ns() - beat) / 1'000'000 : 0;
}

bool stopped(char state) { return state == 'T' || state == 't'; }

// Waits until the daemon's reply can be read. A slow answer is waited for as
// long as the daemon lives (a 10 GiB fill takes what it takes); one that is
// gone, stopped (SIGSTOP, a debugger) or whose event loop has not beaten for
// conn.timeout_ms fails the wait: -ECONNRESET or -ETIMEDOUT, with the reason
// in `why`.
int wait_readable(const Connection& conn, char* why, size_t why_size) {
  if (conn.peer_pid > 0 && __atomic_load_n(&g_stuck_pid, __ATOMIC_RELAXED) == conn.peer_pid) {
    const bool silent = silent_ms(conn) >= conn.timeout_ms;
    if (silent || stopped(process_state(conn.peer_pid))) {
      std::snprintf(why, why_size, "the dscache daemon (pid %d) is still %s", conn.peer_pid,
                    silent ? "hung (its event loop does not run)" : "stopped (SIGSTOP or a debugger)");
      return -ETIMEDOUT;
    }
    __atomic_store_n(&g_stuck_pid, 0, __ATOMIC_RELAXED);  // it runs again
  }
  int64_t stopped_since = -1;
  while (true) {
    pollfd p{conn.fd, POLLIN, 0};
    int n = ::poll(&p, 1, 1000);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return -errno;
    if (conn.peer_pid <= 0 || conn.timeout_ms <= 0) continue;
    const char state = process_state(conn.peer_pid);
    if (state == 0 || state == 'Z' || state == 'X') {
      std::snprintf(why, why_size, "the dscache daemon (pid %d) exited while serving the request", conn.peer_pid);
      return -ECONNRESET;
    }
    const int64_t now = monotonic_ms();
    stopped_since = stopped(state) ? (stopped_since < 0 ? now : stopped_since) : -1;
    const int64_t silent = silent_ms(conn);
    if (stopped_since >= 0 && now - stopped_since >= conn.timeout_ms) {
      std::snprintf(why, why_size,
                    "the dscache daemon (pid %d) is stopped (SIGSTOP or a debugger) and has not answered for %lld s",
                    conn.peer_pid, static_cast<long long>((now - stopped_since) / 1000));
    } else if (stopped_since < 0 && silent >= conn.timeout_ms) {
      std::snprintf(why, why_size, "the dscache daemon (pid %d) is hung: its event loop has not run for %lld s",
                    conn.peer_pid, static_cast<long long>(silent / 1000));
    } else {
      continue;
    }
    __atomic_store_n(&g_stuck_pid, conn.peer_pid, __ATOMIC_RELAXED);
    return -ETIMEDOUT;
  }
}

bool read_all(const Connection& conn, char* data, size_t length, char* why, size_t why_size) {
  const int fd = conn.fd;
  while (length > 0) {
    if (int rc = wait_readable(conn, why, why_size); rc != 0) {
      errno = -rc;
      return false;
    }
    ssize_t n = ::recv(fd, data, length, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ECONNRESET;
      return false;
    }
    data += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

int try_connect(const char* path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

// The size of the daemon's log before a daemon is started: what that daemon
// writes comes after it (-1 if there is no log yet).
off_t log_size(const Config& config) {
  char path[kMaxPathLength + 32];
  std::snprintf(path, sizeof path, "%s/daemon.log", config.cache_dir);
  struct stat st {};
  return ::stat(path, &st) == 0 ? st.st_size : -1;
}

// What the daemon started after the log had `start` bytes wrote there (its
// last lines, "; "-joined), for "cannot start" messages: never an older
// daemon's line. If it wrote nothing, says so, and whether the file system is
// full (a daemon that cannot write its log cannot explain itself).
void log_since(const Config& config, off_t start, char* out, size_t size) {
  out[0] = '\0';
  char path[kMaxPathLength + 32];
  std::snprintf(path, sizeof path, "%s/daemon.log", config.cache_dir);
  char buf[2048];
  ssize_t n = 0;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (start < 0) start = 0;
    off_t end = ::lseek(fd, 0, SEEK_END);
    off_t from = end - start > static_cast<off_t>(sizeof buf - 1) ? end - static_cast<off_t>(sizeof buf - 1) : start;
    n = end > start ? ::pread(fd, buf, sizeof buf - 1, from) : 0;
    ::close(fd);
  }
  if (n < 0) n = 0;
  buf[n] = '\0';
  // The last three lines, oldest first.
  const char* lines[3] = {nullptr, nullptr, nullptr};
  int count = 0;
  for (char* line = buf; *line != '\0';) {
    char* newline = std::strchr(line, '\n');
    if (newline != nullptr) *newline = '\0';
    if (*line != '\0') {
      if (count == 3) {
        lines[0] = lines[1];
        lines[1] = lines[2];
        count = 2;
      }
      lines[count++] = line;
    }
    if (newline == nullptr) break;
    line = newline + 1;
  }
  if (count == 0) {
    struct statvfs fs {};
    const bool full = ::statvfs(config.cache_dir, &fs) == 0 && ((fs.f_blocks > 0 && fs.f_bavail == 0) ||
                                                                 (fs.f_files > 0 && fs.f_favail == 0));
    std::snprintf(out, size, "it wrote nothing to its log%s", full ? " (the file system of the cache is full: no space left on it)" : "");
    return;
  }
  size_t used = 0;
  for (int i = 0; i < count && used + 1 < size; ++i) {
    int w = std::snprintf(out + used, size - used, "%s%s", i > 0 ? "; " : "", lines[i]);
    if (w < 0) break;
    used += static_cast<size_t>(w);
  }
}

// fork, setsid, fork, exec: the daemon belongs to no process group of the
// caller's and is no child the caller must reap. Only async-signal-safe calls
// happen between fork and exec; the environment is prepared before. A
// close-on-exec pipe brings back the daemon's pid and, if exec fails, its
// errno. Returns the daemon's pid or -errno.
int spawn_daemon(const Config& config, const char* binary) {
  // On this thread's stack, whole: two threads may start a daemon at once.
  size_t count = 0;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) ++count;
  char** env_copy = static_cast<char**>(alloca((count + 1) * sizeof(char*)));
  size_t n = 0;
  for (char** e = environ; e != nullptr && *e != nullptr && n < count; ++e) {
    if (std::strncmp(*e, "LD_PRELOAD=", 11) == 0) continue;  // the daemon is not a client
    env_copy[n++] = *e;
  }
  env_copy[n] = nullptr;
  char log_path[kMaxPathLength + 32];
  std::snprintf(log_path, sizeof log_path, "%s/daemon.log", config.cache_dir);
  char* const argv[] = {const_cast<char*>(binary), const_cast<char*>("daemon"), const_cast<char*>("--detached"),
                        nullptr};
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return -errno;
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return -err;
  }
  if (pid == 0) {
    ::close(report[0]);
    ::setsid();
    pid_t daemon_pid = ::fork();
    if (daemon_pid != 0) {
      [[maybe_unused]] ssize_t w = ::write(report[1], &daemon_pid, sizeof daemon_pid);
      ::_exit(0);
    }
    // The caller may have signals blocked while it waits for the daemon (the
    // shim does): the mask survives exec, and the daemon must start clean.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int null_fd = ::open("/dev/null", O_RDONLY);
    int log_fd = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    ::execve(binary, argv, env_copy);
    int err = errno;
    [[maybe_unused]] ssize_t w = ::write(report[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(report[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // Until EOF: the pid, then an errno only if exec failed.
  int words[2] = {0, 0};
  size_t got = 0;
  while (got < sizeof words) {
    ssize_t r = ::read(report[0], reinterpret_cast<char*>(words) + got, sizeof words - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(report[0]);
  if (got < sizeof(int) || words[0] <= 0) return -ECHILD;
  if (got >= sizeof words) return -(words[1] != 0 ? words[1] : ENOEXEC);
  return words[0];
}

// Whether a process is gone (or a zombie waiting for its reaper).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  return process_state(pid) == 'Z';
}

}  // namespace

bool socket_path(const Config& config, char* out, size_t size) {
  int n = std::snprintf(out, size, "%s/run/daemon.sock", config.cache_dir);
  return n > 0 && static_cast<size_t>(n) < size && static_cast<size_t>(n) < sizeof(sockaddr_un::sun_path);
}

namespace {

// The daemon at the other end runs as this user (or as root, for a system
// daemon the configuration names): a daemon of another user in a directory
// we were pointed at (a shared /tmp, /dev/shm) would otherwise serve our
// reads with its bytes. 0, or -EACCES with the reason in error.
int check_daemon_user(int fd, const Config& config, const char* path, int* peer_pid, char* error, size_t error_size) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    const int err = errno;
    std::snprintf(error, error_size, "%s: cannot tell which user the daemon runs as: %s", path, std::strerror(err));
    ::close(fd);
    return -err;
  }
  if (cred.uid == ::geteuid() || cred.uid == cache_owner(config)) {
    *peer_pid = cred.pid;
    return 0;
  }
  std::snprintf(error, error_size,
                "the dscache daemon on %s runs as uid %u, not as this user (uid %u)%s: not trusting it (is "
                "DSCACHE_CACHE_DIR another user's?)",
                path, static_cast<unsigned>(cred.uid), static_cast<unsigned>(::geteuid()),
                config.system_daemon ? " or root" : "");
  ::close(fd);
  return -EACCES;
}

// Takes `fd`, connected to the daemon's socket, as `conn` if the daemon
// passes check_daemon_user. 0 or -errno.
int adopt(Connection& conn, int fd, const Config& config, const char* path, char* error, size_t error_size) {
  if (int refused = check_daemon_user(fd, config, path, &conn.peer_pid, error, error_size); refused != 0) {
    return refused;
  }
  conn.fd = fd;
  conn.timeout_ms = config.daemon_timeout_ns / 1'000'000;
  return 0;
}

}  // namespace

int check_cache_dir(const Config& config, bool create, char* error, size_t error_size) {
  // Once it passed, no other user can change it (private_dir.h): one check a
  // process (per directory and owner).
  static uint64_t passed = 0;
  const uint64_t which =
      fnv1a64(config.cache_dir, std::strlen(config.cache_dir)) ^ (uint64_t{cache_owner(config)} + 1) * 0x9e3779b97f4a7c15ull;
  if (__atomic_load_n(&passed, __ATOMIC_ACQUIRE) == which) return 0;
  PrivateDirOptions options;
  options.owner = cache_owner(config);
  options.create = create && ::geteuid() == options.owner;
  options.mode = 0700;
  int fd = open_private_dir(config.cache_dir, options, error, error_size);
  if (fd < 0) return fd;
  ::close(fd);
  __atomic_store_n(&passed, which, __ATOMIC_RELEASE);
  return 0;
}

int connect_daemon(Connection& conn, const Config& config, const char* daemon_binary, int wait_ms, char* error,
                   size_t error_size) {
  disconnect(conn);
  char path[sizeof(sockaddr_un::sun_path)];
  if (!socket_path(config, path, sizeof path)) {
    std::snprintf(error, error_size,
                  "DSCACHE_CACHE_DIR='%s' is too long for the daemon's socket path (about 90 bytes at most)",
                  config.cache_dir);
    return -ENAMETOOLONG;
  }
  // Nothing in a directory another user could change is trusted, the socket included.
  int rc = check_cache_dir(config, false, error, error_size);
  if (rc != 0 && (rc != -ENOENT || daemon_binary == nullptr || config.system_daemon)) {
    if (rc == -ENOENT) {
      std::snprintf(error, error_size, "no dscache daemon is running for %s (it does not exist)%s", config.cache_dir,
                    config.system_daemon ? "; DSCACHE_SYSTEM_DAEMON=1: start the system daemon (as root)" : "");
    }
    return rc;
  }
  int fd = rc == 0 ? try_connect(path) : -ENOENT;
  if (fd >= 0) return adopt(conn, fd, config, path, error, error_size);
  if (daemon_binary == nullptr || config.system_daemon) {
    std::snprintf(error, error_size, "no dscache daemon is running for %s (%s)%s", config.cache_dir,
                  std::strerror(-fd),
                  config.system_daemon ? "; DSCACHE_SYSTEM_DAEMON=1: start the system daemon (as root)" : "");
    return fd;
  }
  // The cache directory must exist, safely, for the daemon's log.
  if (rc != 0 && (rc = check_cache_dir(config, true, error, error_size)) != 0) return rc;
  const off_t log_start = log_size(config);
  const int pid = spawn_daemon(config, daemon_binary);
  if (pid < 0) {
    std::snprintf(error, error_size, "cannot start the dscache daemon %s (DSCACHE_BIN): %s", daemon_binary,
                  std::strerror(-pid));
    return pid;
  }
  // Wait for its socket. If it exits first (a bad configuration, or another
  // daemon won the race to start), give the winner a second, not the whole wait.
  bool exited = false;
  for (int waited = 0; waited < wait_ms; waited += 10) {
    fd = try_connect(path);
    if (fd >= 0) return adopt(conn, fd, config, path, error, error_size);
    if (!exited && process_gone(pid)) {
      exited = true;
      wait_ms = waited + 1000 < wait_ms ? waited + 1000 : wait_ms;
    }
    timespec ts{0, 10'000'000};
    ::nanosleep(&ts, nullptr);
  }
  char last[512];
  log_since(config, log_start, last, sizeof last);
  std::snprintf(error, error_size, "the dscache daemon %s%s%s (log: %s/daemon.log)",
                exited ? "exited at start" : "did not start in time", last[0] != '\0' ? ": " : "", last,
                config.cache_dir);
  return -EHOSTDOWN;
}

void disconnect(Connection& conn) {
  if (conn.fd >= 0) ::close(conn.fd);
  conn.fd = -1;
}

int call_daemon(Connection& conn, MessageType type, uint64_t mount_id, const char* path, uint64_t offset,
                uint64_t length, uint32_t flags, uint64_t* value, char* text, size_t text_size) {
  if (text_size > 0) text[0] = '\0';
  if (conn.fd < 0) return -ENOTCONN;
  char buffer[kMaxMessage];
  const uint32_t id = conn.next_id++;
  size_t path_length = path != nullptr ? std::strlen(path) : 0;
  size_t n = encode_request(buffer, type, id, mount_id, path, path_length, offset, length, flags);
  if (n == 0) return ENAMETOOLONG;
  if (!write_all(conn.fd, buffer, n)) {
    int err = errno;
    disconnect(conn);
    return -err;
  }
  MessageHeader header{};
  errno = 0;
  if (!read_all(conn, reinterpret_cast<char*>(&header), sizeof header, text, text_size) ||
      !reply_header_valid(header, id) || !read_all(conn, buffer, header.length, text, text_size)) {
    int err = errno != 0 ? errno : EPROTO;
    disconnect(conn);
    return -err;
  }
  const ReplyBody body = decode_reply(header, buffer, text, text_size);
  if (value != nullptr) *value = body.value;
  return body.error;
}

}  // namespace dscache::ipc
