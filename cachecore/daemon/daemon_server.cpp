#include "daemon/daemon_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "cache/cache_manager.h"
#include "common/log.h"
#include "ipc/client.h"
#include "ipc/protocol.h"

namespace dscache {
namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  uint64_t id = 0;
  uid_t uid = 0;  // the client's
  // The file its last whole-file fetch filled, pinned until its next request
  // (by then the reader opened it: the shim asks one thing at a time).
  bool holds = false;
  uint64_t held_mount = 0;
  std::string held_path;
  std::string in;
  std::string out;
  bool want_write = false;
};

struct Completion {
  uint64_t connection;
  uint32_t request_id;
  int error;
  uint64_t value;
  std::string text;
};

class Server {
 public:
  Server(const Config& config, std::unique_ptr<CacheManager> cache)
      : config_(config), cache_(std::move(cache)), last_activity_(Clock::now()) {}

  int run(int listen_fd, int signal_fd, int lock_fd);

 private:
  void accept_all();
  void on_readable(Connection& c);
  void dispatch(Connection& c, const ipc::MessageHeader& header, const char* body);
  void complete(uint64_t connection, uint32_t request_id, const Status& status, uint64_t value = 0,
                std::string text = {});
  void drain_completions();
  void flush(Connection& c);
  void close_connection(uint64_t id);
  void update_interest(Connection& c);

  const Config& config_;
  std::unique_ptr<CacheManager> cache_;
  int epoll_fd_ = -1;
  std::vector<std::thread> verifiers_;  // fsck runs, joined before the server goes
  int listen_fd_ = -1;
  int event_fd_ = -1;
  std::map<uint64_t, Connection> connections_;
  std::map<int, uint64_t> by_fd_;
  uint64_t next_id_ = 1;
  std::mutex completions_mutex_;
  std::deque<Completion> completions_;
  Clock::time_point last_activity_;
  bool stopping_ = false;
};

constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kEventTag = ~uint64_t{0} - 1;
constexpr uint64_t kSignalTag = ~uint64_t{0} - 2;

void Server::complete(uint64_t connection, uint32_t request_id, const Status& status, uint64_t value,
                      std::string text) {
  if (!status.ok()) text = status.message();
  bool wake = false;
  {
    std::lock_guard lock(completions_mutex_);
    // The loop takes the whole queue at once: only the first completion of a batch needs to wake it.
    wake = completions_.empty();
    completions_.push_back(Completion{connection, request_id, status.code(), value, std::move(text)});
  }
  if (wake) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
  }
}

void Server::drain_completions() {
  uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(event_fd_, &count, sizeof count);
  std::deque<Completion> ready;
  {
    std::lock_guard lock(completions_mutex_);
    ready.swap(completions_);
  }
  // Replies to one client go out in one send.
  std::vector<Connection*> touched;
  for (Completion& done : ready) {
    auto it = connections_.find(done.connection);
    if (it == connections_.end()) continue;  // the client left; nothing to answer
    char buffer[ipc::kMaxMessage];
    size_t len = ipc::encode_reply(buffer, done.request_id, done.error, done.value, done.text.data(),
                                   std::min(done.text.size(), ipc::kMaxReplyText * 6));
    if (it->second.out.empty()) touched.push_back(&it->second);
    it->second.out.append(buffer, len);
  }
  for (Connection* c : touched) flush(*c);
}

void Server::flush(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      c.out.clear();  // the peer is gone; the read side will notice
      break;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
  bool want = !c.out.empty();
  if (want != c.want_write) {
    c.want_write = want;
    update_interest(c);
  }
}

void Server::update_interest(Connection& c) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  if (c.want_write) ev.events |= EPOLLOUT;
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Server::close_connection(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  ::close(it->second.fd);
  by_fd_.erase(it->second.fd);
  connections_.erase(it);
  cache_->release_client(id);  // a client that died releases everything it held
  last_activity_ = Clock::now();
}

void Server::accept_all() {
  while (true) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    // Only the cache directory's owner (and root) may talk to its daemon; a
    // system daemon serves every local user (what they may ask: dispatch()).
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != ::getuid() && cred.uid != 0 && !config_.system_daemon)) {
      ::close(fd);
      continue;
    }
    Connection c;
    c.fd = fd;
    c.uid = cred.uid;
    c.id = next_id_++;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    by_fd_[fd] = c.id;
    connections_.emplace(c.id, std::move(c));
    last_activity_ = Clock::now();
  }
}

void Server::on_readable(Connection& c) {
  char buffer[65536];
  while (true) {
    ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      c.in.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return close_connection(c.id);  // EOF or error
  }
  const uint64_t id = c.id;
  size_t pos = 0;
  while (true) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection& conn = it->second;
    if (conn.in.size() - pos < sizeof(ipc::MessageHeader)) break;
    ipc::MessageHeader header{};
    std::memcpy(&header, conn.in.data() + pos, sizeof header);
    if (!ipc::header_valid(header)) {
      DSCACHE_LOG(warn, "closing a connection that sent a malformed message (protocol version %u, expected %u)",
                  header.version, ipc::kVersion);
      return close_connection(id);
    }
    if (conn.in.size() - pos < sizeof header + header.length) break;
    std::string body = conn.in.substr(pos + sizeof header, header.length);
    pos += sizeof header + header.length;
    last_activity_ = Clock::now();
    dispatch(conn, header, body.data());
  }
  if (auto it = connections_.find(id); it != connections_.end()) it->second.in.erase(0, pos);
}

void Server::dispatch(Connection& c, const ipc::MessageHeader& header, const char* body) {
  const uint64_t conn = c.id;
  const uint32_t rid = header.request_id;
  auto type = static_cast<ipc::MessageType>(header.type);
  if (type == ipc::MessageType::hello) return complete(conn, rid, {}, static_cast<uint64_t>(::getpid()));
  if (type == ipc::MessageType::status) return complete(conn, rid, {}, 0, cache_->status_text());
  ipc::RequestBody request{};
  const char* path_start = nullptr;
  if (const char* why = ipc::decode_request(header, body, request, &path_start)) {
    return complete(conn, rid, Status::error(EPROTO, why));
  }
  std::string path(path_start, request.path_length);
  const Priority priority = (request.flags & ipc::kFlagBackground) != 0 ? Priority::background : Priority::demand;
  if (c.holds) {
    cache_->unpin(conn, c.held_mount, c.held_path);
    c.holds = false;
  }
  CacheManager::Reply reply = [this, conn, rid](Status s) { complete(conn, rid, s); };
  if ((type == ipc::MessageType::evict || type == ipc::MessageType::verify) && c.uid != 0 && c.uid != ::getuid()) {
    // A system daemon's other users read; they do not drop or repair what every user shares.
    return complete(conn, rid,
                    Status::error(EPERM, "evict and fsck of the system daemon's cache are for root (this is uid " +
                                             std::to_string(c.uid) + ")"));
  }
  switch (type) {
    case ipc::MessageType::ensure_listed: return cache_->ensure_listed(request.mount_id, path, priority, reply);
    case ipc::MessageType::fetch_object: {
      // A reader's file stays until it opened it: another reader's fill in a
      // full cache would otherwise evict it first, again and again (EIO).
      if (priority == Priority::demand) {
        c.holds = true;
        c.held_mount = request.mount_id;
        c.held_path = path;
        reply = [this, conn, rid, mount = request.mount_id, path](Status s) {
          if (s.ok()) cache_->pin(conn, mount, path);
          complete(conn, rid, s);
        };
      }
      if ((request.flags & ipc::kFlagRepair) != 0) return cache_->refetch_damaged(request.mount_id, path, priority, reply);
      return cache_->fetch_object(request.mount_id, path, priority, reply);
    }
    case ipc::MessageType::fetch_range:
      if ((request.flags & ipc::kFlagHold) != 0) {
        reply = [this, reply, mount = request.mount_id, path, offset = request.offset,
                 length = request.length](Status s) {
          if (s.ok()) cache_->hold_range(mount, path, offset, length, ipc::kAioHoldMs);
          reply(std::move(s));
        };
      }
      return cache_->fetch_range(request.mount_id, path, request.offset, request.length,
                                 (request.flags & ipc::kFlagSequential) != 0, priority, reply);
    case ipc::MessageType::complete_file: return cache_->complete_file(request.mount_id, path, priority, reply);
    case ipc::MessageType::pin:
      cache_->pin(conn, request.mount_id, path);
      return complete(conn, rid, {});
    case ipc::MessageType::unpin:
      cache_->unpin(conn, request.mount_id, path);
      return complete(conn, rid, {});
    case ipc::MessageType::evict: return complete(conn, rid, cache_->evict_file(request.mount_id, path));
    case ipc::MessageType::verify: {
      // Reads every cached byte: off the event loop. The reply carries the
      // summary; each bad file is in the log.
      const bool repair = (request.flags & ipc::kFlagRepair) != 0;
      verifiers_.emplace_back([this, conn, rid, repair] {
        std::string report;
        const uint64_t bad = cache_->verify_all(repair, &report);
        size_t start = 0;
        for (size_t end; (end = report.find('\n', start)) != std::string::npos; start = end + 1) {
          if (report.compare(start, 17, "checksum mismatch") == 0) {
            DSCACHE_LOG(warn, "fsck: %s", report.substr(start, end - start).c_str());
          }
        }
        std::string summary = report.substr(report.rfind('\n', report.size() - 2) + 1);
        if (bad > 0) {
          const std::string first = report.substr(0, report.find('\n'));
          summary = first + (bad > 1 ? " (and " + std::to_string(bad - 1) + " more; each is in daemon.log)\n" : "\n") +
                    summary;
        }
        complete(conn, rid, {}, bad, summary);
      });
      return;
    }
    default: return complete(conn, rid, Status::error(EPROTO, "unknown request type " + std::to_string(header.type)));
  }
}

int Server::run(int listen_fd, int signal_fd, int lock_fd) {
  listen_fd_ = listen_fd;
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = kEventTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev);
  ev.data.u64 = kSignalTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd, &ev);

  auto last_capacity_check = Clock::now(), last_revive = Clock::now();
  while (!stopping_) {
    epoll_event events[64];
    int n = ::epoll_wait(epoll_fd_, events, 64, 1000);
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        accept_all();
      } else if (tag == kEventTag) {
        drain_completions();
      } else if (tag == kSignalTag) {
        signalfd_siginfo info{};
        [[maybe_unused]] ssize_t r = ::read(signal_fd, &info, sizeof info);
        DSCACHE_LOG(info, "signal %u: shutting down", info.ssi_signo);
        stopping_ = true;
      } else if (auto it = connections_.find(tag); it != connections_.end()) {
        if ((events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) on_readable(it->second);
        if (auto again = connections_.find(tag); again != connections_.end() && (events[i].events & EPOLLOUT) != 0) {
          flush(again->second);
        }
      }
    }
    cache_->publish_gauges();
    auto now = Clock::now();
    if (now - last_revive > std::chrono::seconds(1)) {
      last_revive = now;
      cache_->revive_stalled_waiters();
    }
    if (now - last_capacity_check > std::chrono::seconds(5)) {
      last_capacity_check = now;
      cache_->enforce_capacity();  // the file system may have filled up from outside
      // Its directory deleted under it (rm -rf): nothing here can be found by
      // clients again, and a new daemon would start beside this one.
      struct stat lock {};
      if (::fstat(lock_fd, &lock) == 0 && lock.st_nlink == 0) {
        DSCACHE_LOG(warn, "%s/daemon.lock was deleted (the cache directory removed?): exiting", config_.cache_dir);
        stopping_ = true;
      }
    }
    if (config_.idle_timeout_ns != INT64_MAX && connections_.empty() && cache_->idle() &&
        now - last_activity_ > std::chrono::nanoseconds(config_.idle_timeout_ns)) {
      DSCACHE_LOG(info, "idle for %lld s: exiting", static_cast<long long>(config_.idle_timeout_ns / 1'000'000'000));
      stopping_ = true;
    }
  }
  // Let fills in flight finish (bounded), so their bytes are not wasted.
  for (int i = 0; i < 300 && !cache_->idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (std::thread& t : verifiers_) t.join();
  cache_->shutdown();
  for (auto& [id, c] : connections_) ::close(c.fd);
  connections_.clear();
  cache_.reset();
  ::close(event_fd_);
  ::close(epoll_fd_);
  return 0;
}

// The lock file, in a cache directory that passed check_cache_dir.
int open_lock(const Config& config, bool create) {
  CacheLayout layout(config.cache_dir);
  return ::open(layout.lock_path().c_str(), (create ? O_RDWR | O_CREAT : O_RDWR) | O_NOFOLLOW | O_CLOEXEC, 0600);
}

}  // namespace

int daemon_pid(const Config& config) {
  // A pid from a directory another user could write is not believed (nor signalled).
  char error[1024];
  if (int rc = ipc::check_cache_dir(config, false, error, sizeof error); rc != 0) return rc == -ENOENT ? 0 : -1;
  CacheLayout layout(config.cache_dir);
  int fd = ::open(layout.lock_path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);  // flock needs no more
  if (fd < 0) return 0;
  int pid = 0;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char buf[32] = {};
    if (::pread(fd, buf, sizeof buf - 1, 0) > 0) pid = std::atoi(buf);
    if (pid <= 0) pid = -1;  // locked, pid unknown
  }
  ::close(fd);
  return pid;
}

int stop_daemon(const Config& config, int wait_ms) {
  char error[1024];
  if (int rc = ipc::check_cache_dir(config, false, error, sizeof error); rc != 0 && rc != -ENOENT) {
    DSCACHE_LOG(error, "%s", error);
    return 1;
  }
  int pid = daemon_pid(config);
  if (pid == 0) return 0;
  if (pid < 0 || ::kill(pid, SIGTERM) != 0) {
    DSCACHE_LOG(error, "cannot signal the daemon of %s", config.cache_dir);
    return 1;
  }
  for (int waited = 0; waited < wait_ms; waited += 20) {
    if (daemon_pid(config) == 0) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 1;
}

int run_daemon(const Config& config, const Env& env, const DaemonOptions& options) {
  CacheLayout layout(config.cache_dir);
  if (config.system_daemon && ::geteuid() != 0) {
    DSCACHE_LOG(error, "DSCACHE_SYSTEM_DAEMON=1: the system daemon runs as root (this is uid %u)",
                static_cast<unsigned>(::geteuid()));
    return 1;
  }
  // Before anything is opened in it: a directory another user could change
  // (a planted daemon.log link, a swapped tmp/) is refused.
  char error[1024];
  if (ipc::check_cache_dir(config, true, error, sizeof error) != 0) {
    DSCACHE_LOG(error, "DSCACHE_CACHE_DIR: %s", error);
    return 1;
  }
  int lock_fd = open_lock(config, true);
  if (lock_fd < 0) {
    DSCACHE_LOG(error, "%s: %s", layout.lock_path().c_str(), std::strerror(errno));
    return 1;
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    // Exactly one daemon per cache directory: another one won, and serves us.
    if (options.detached) return 0;
    DSCACHE_LOG(error, "a daemon already serves %s (pid %d)", config.cache_dir, daemon_pid(config));
    return 1;
  }
  if (config.system_daemon) ::fchmod(lock_fd, 0644);  // its users' `dscache status` reads the pid
  char pid_text[32];
  int len = std::snprintf(pid_text, sizeof pid_text, "%d\n", static_cast<int>(::getpid()));
  [[maybe_unused]] int t = ::ftruncate(lock_fd, 0);
  [[maybe_unused]] ssize_t w = ::pwrite(lock_fd, pid_text, static_cast<size_t>(len), 0);

  // Signals arrive through a signalfd; block them before any thread starts.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  int signal_fd = ::signalfd(-1, &mask, SFD_CLOEXEC);

  CacheManager::Options cache_options;
  cache_options.kernel_guard = true;
  if (auto uring = env.get("DSCACHE_IO_URING"); uring && *uring == "0") cache_options.use_io_uring = false;
  auto cache = CacheManager::open(config, env, cache_options);
  if (!cache.ok()) {
    DSCACHE_LOG(error, "cannot start: %s", cache.status().message().c_str());
    ::close(lock_fd);
    return 1;
  }

  char path[sizeof(sockaddr_un::sun_path)];
  if (!ipc::socket_path(config, path, sizeof path)) {
    DSCACHE_LOG(error, "DSCACHE_CACHE_DIR='%s' is too long for a Unix socket path", config.cache_dir);
    return 1;
  }
  ::unlink(path);  // a dead daemon's socket: we hold the lock, so nobody else owns it
  int listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, std::strlen(path) + 1);  // socket_path() checked the length
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::chmod(path, config.system_daemon ? 0666 : 0600) != 0 ||
      ::listen(listen_fd, 512) != 0) {
    DSCACHE_LOG(error, "%s: cannot listen: %s", path, std::strerror(errno));
    return 1;
  }
  DSCACHE_LOG(info, "serving %s on %s (pid %d)", config.cache_dir, path, static_cast<int>(::getpid()));

  Server server(config, std::move(*cache));
  int rc = server.run(listen_fd, signal_fd, lock_fd);
  ::close(listen_fd);
  ::unlink(path);
  ::ftruncate(lock_fd, 0);
  ::close(lock_fd);  // releases the lock last: a successor finds a clean index
  DSCACHE_LOG(info, "stopped");
  return rc;
}

}  // namespace dscache
