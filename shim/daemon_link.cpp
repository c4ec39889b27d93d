// The shim's side of the daemon: its connections (one per thread for
// requests, one per process for pins), the shared index it maps, the stats it
// counts into, and directory listings.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "internal.h"
#include "ipc/client.h"
#include "real.h"

namespace dscache::shim {

char g_daemon_binary[kMaxPathLength + 64];

namespace {

// The index, mapped lazily; a new one if a daemon replaces it (a few times at
// most: the old mappings stay for threads that may still be reading them).
constexpr int kIndexGenerations = 4;
alignas(IndexReader) unsigned char g_index_storage[kIndexGenerations][sizeof(IndexReader)];
std::atomic<IndexReader*> g_index{nullptr};
int g_index_generations = 0;  // storages used; changed only by the thread holding state 1
std::atomic<int> g_index_state{0};  // 0: not tried, 1: opening, 2: open

thread_local ipc::Connection t_conn __attribute__((tls_model("initial-exec")));
thread_local uint32_t t_conn_generation __attribute__((tls_model("initial-exec"))) = 0;
pthread_key_t g_conn_key;

// Pins go through one process-wide connection, so that a pin and its unpin
// meet the same client id in the daemon whichever thread sends them.
ipc::Connection g_pin_conn;
uint32_t g_pin_generation = 0;
std::atomic_flag g_pin_lock = ATOMIC_FLAG_INIT;

// Signals wait while a thread talks to the daemon: a handler that reads a
// partial file or pins one would otherwise send its request on the same
// connection in the middle of the one it interrupted (and wait forever for
// a reply that is not its own), or spin on the pin lock its own thread
// holds. A read of a local disk is not interruptible either.
class SignalsDeferred {
 public:
  SignalsDeferred() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~SignalsDeferred() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsDeferred(const SignalsDeferred&) = delete;
  SignalsDeferred& operator=(const SignalsDeferred&) = delete;

 private:
  sigset_t saved_;
};

void close_thread_connection(void* conn) {
  auto* c = static_cast<ipc::Connection*>(conn);
  if (c->fd >= 0) close_own_fd(c->fd);
  c->fd = -1;
}

// This library's own directory: where to look for the dscache binary.
void find_daemon_binary() {
  if (const char* bin = std::getenv("DSCACHE_BIN"); bin != nullptr && bin[0] == '/') {
    std::snprintf(g_daemon_binary, sizeof g_daemon_binary, "%s", bin);
    return;
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&find_daemon_binary), &info) != 0 && info.dli_fname != nullptr) {
    char dir[kMaxPathLength];
    std::snprintf(dir, sizeof dir, "%s", info.dli_fname);
    if (char* slash = std::strrchr(dir, '/')) *slash = '\0';
    const char* candidates[] = {"/../tools/dscache", "/../bin/dscache", "/dscache"};
    for (const char* c : candidates) {
      char path[kMaxPathLength + 32];
      std::snprintf(path, sizeof path, "%s%s", dir, c);
      if (REAL(access)(path, X_OK) == 0) {
        std::snprintf(g_daemon_binary, sizeof g_daemon_binary, "%s", path);
        return;
      }
    }
  }
  std::snprintf(g_daemon_binary, sizeof g_daemon_binary, "/usr/local/bin/dscache");
}

// A daemon connection, made the shim's own fd. 0 or -errno.
int connect_own(ipc::Connection& conn, char* error, size_t error_size) {
  int rc = ipc::connect_daemon(conn, g_config, g_daemon_binary, 30000, error, error_size);
  if (rc == 0) {
    conn.fd = to_own_fd(conn.fd);
    // The daemon's heartbeat: a hung daemon is noticed, not only a stopped one.
    if (IndexReader* idx = index()) {
      conn.heartbeat = reinterpret_cast<const int64_t*>(&idx->header().heartbeat_ns);
    }
  }
  return rc;
}

// After a call: if the client closed a broken connection, the fd is not ours.
void after_call(ipc::Connection& conn, int fd_before) {
  if (conn.fd != fd_before && fd_before >= 0) set_bit(g_own_bits, fd_before, false);
}

ipc::Connection* thread_connection(char* error, size_t error_size, int* failure) {
  if (t_conn.fd >= 0 && t_conn_generation == g_fork_generation.load()) return &t_conn;
  Guard guard;
  if (t_conn.fd >= 0) {
    close_own_fd(t_conn.fd);  // inherited from the parent across fork
    t_conn.fd = -1;
  }
  if (int rc = connect_own(t_conn, error, error_size); rc != 0) {
    *failure = -rc;
    return nullptr;
  }
  t_conn_generation = g_fork_generation.load();
  pthread_setspecific(g_conn_key, &t_conn);
  return &t_conn;
}

void count_wait(int mount, int64_t since_ns) {
  IndexReader* idx = g_index_state.load(std::memory_order_acquire) == 2 ? g_index.load(std::memory_order_acquire)
                                                                         : nullptr;
  if (MountStats* ms = stats_of(idx, mount)) {
    ms->wait_ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, now_ns() - since_ns)), std::memory_order_relaxed);
  }
}

// 1: listed and fresh; 0: listed once, stale now; -1: never listed (or no index).
int dir_listing(int mount, const char* dir, size_t dir_length) {
  IndexReader* idx = index();
  if (idx == nullptr) return -1;
  SlotSnapshot s;
  IndexKey key = index_key(g_config.mounts[mount].id, dir, dir_length);
  if (idx->find(key, s, nullptr) != LookupResult::found || s.kind() != SlotKind::directory || s.mtime_ns <= 0) {
    return -1;
  }
  return g_config.meta_ttl_ns == INT64_MAX || now_ns() - s.mtime_ns < g_config.meta_ttl_ns ? 1 : 0;
}

// Whether this thread's last ask_daemon failed to reach a daemon at all.
thread_local bool t_unreachable __attribute__((tls_model("initial-exec"))) = false;

// Once per cause: the hashes of the causes logged lately (a lossy set). The
// cause is the errno and the message's last part ("...: Couldn't connect to
// server"): an outage is one line, not one per file.
bool first_time(int rc, const char* text) {
  static std::atomic<uint64_t> seen[64];
  static std::atomic<unsigned> next{0};
  // (A store's request id, and numbers, differ from one request to the next.)
  const char* end = std::strstr(text, "request id");
  end = end != nullptr ? end : text + std::strlen(text);
  const char* cause = text;
  for (const char* p = text; p < end; ++p) {
    if (*p == ':') cause = p;
  }
  uint64_t h = 0xcbf29ce484222325ull ^ static_cast<uint64_t>(rc);
  for (const char* p = cause; p < end; ++p) {
    if (*p >= '0' && *p <= '9') continue;
    h = (h ^ static_cast<unsigned char>(*p)) * 0x100000001b3ull;
  }
  h |= 1;
  for (auto& s : seen) {
    if (s.load(std::memory_order_relaxed) == h) return false;
  }
  seen[next.fetch_add(1, std::memory_order_relaxed) % 64].store(h, std::memory_order_relaxed);
  return true;
}

}  // namespace

void init_daemon_link() {
  find_daemon_binary();
  pthread_key_create(&g_conn_key, close_thread_connection);
}

void reset_connections_after_fork() {
  g_pin_lock.clear();
  // Forked while another thread was mapping the index: that thread is not
  // in the child, which would otherwise never map it (every lookup asking
  // the daemon instead: a DataLoader worker forked at the wrong moment).
  int initialising = 1;
  g_index_state.compare_exchange_strong(initialising, 0);
}

void renumber_connection(int from, int to) {
  if (t_conn.fd == from) t_conn.fd = to;
  if (g_pin_conn.fd == from) g_pin_conn.fd = to;
}

// This mount's counters, remembered per index mapping.
MountStats* stats_of(IndexReader* idx, int mount) {
  static std::atomic<IndexReader*> cached_for{nullptr};
  static std::atomic<MountStats*> cached[kMaxMounts];
  if (idx == nullptr || idx->read_only()) return nullptr;
  if (cached_for.load(std::memory_order_acquire) == idx) {
    if (MountStats* ms = cached[mount].load(std::memory_order_relaxed)) return ms;
  } else {
    for (auto& c : cached) c.store(nullptr, std::memory_order_relaxed);
    cached_for.store(idx, std::memory_order_release);
  }
  for (MountStats& ms : idx->stats().mounts) {
    if (ms.mount_id.load(std::memory_order_relaxed) == g_config.mounts[mount].id) {
      cached[mount].store(&ms, std::memory_order_relaxed);
      return &ms;
    }
  }
  return nullptr;
}

int ask_daemon(ipc::MessageType type, int mount, const char* path, uint64_t offset, uint64_t length, uint32_t flags) {
  static std::atomic<bool> logged{false};
  char text[ipc::kMaxReplyText];
  char error[512];
  // A connection that breaks mid-request (the daemon stopped or was
  // restarted) is made again, a few times with a growing pause, within a
  // bounded time: a restart takes well under a second.
  constexpr int kAttempts = 5;
  SignalsDeferred deferred;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 1) {
      const timespec pause{0, (50'000'000L << (attempt - 2))};  // 50, 100, 200 ms
      nanosleep(&pause, nullptr);
    }
    int failure = EIO;
    t_unreachable = false;
    // A child that shares this process's memory (vfork, clone(CLONE_VM)) or
    // inherited its connections without its fork handlers (a raw clone()
    // system call) must not use them: the parent may be waiting on the same
    // socket (replies would cross: their request ids are the same copied
    // counter). Its requests each get a connection of their own, closed
    // after, and nothing of the parent's tables is changed.
    ipc::Connection transient;
    const bool foreign = in_shared_memory_child();
    ipc::Connection* conn = nullptr;
    if (foreign) {
      Guard guard;
      const int rc = ipc::connect_daemon(transient, g_config, g_daemon_binary, 30000, error, sizeof error);
      if (rc == 0) conn = &transient;
      if (rc == 0 && g_index_state.load(std::memory_order_acquire) == 2) {  // (never made here: only read)
        transient.heartbeat = reinterpret_cast<const int64_t*>(&g_index.load()->header().heartbeat_ns);
      }
      failure = -rc;
    } else {
      conn = thread_connection(error, sizeof error, &failure);
    }
    if (conn == nullptr) {
      // A directory or daemon of another user is refused (EACCES), never
      // mistaken for a stopped daemon (EIO: what was listed before serves).
      const int rc = failure == EPERM || failure == EACCES ? EACCES : EIO;
      t_unreachable = rc == EIO;
      if (!logged.exchange(true)) {
        log_line("dscache: %s: reads of uncached files fail with %s", error, rc == EACCES ? "EACCES" : "EIO");
      }
      return rc;
    }
    Guard guard;
    const int fd_before = conn->fd;
    const int64_t started = now_ns();
    int rc = ipc::call_daemon(*conn, type, g_config.mounts[mount].id, path, offset, length, flags, nullptr, text,
                              sizeof text);
    if (foreign) {
      if (transient.fd >= 0) REAL(close)(transient.fd);
      transient.fd = -1;
    } else {
      after_call(*conn, fd_before);
    }
    count_wait(mount, started);
    if (rc == -ETIMEDOUT) {
      // Stopped or hung: waiting again would only wait again.
      if (first_time(ETIMEDOUT, text)) log_line("dscache: %s: EIO", text);
      return EIO;
    }
    if (rc >= 0) {
      // Every failure but "no such name here" is logged, once per cause; a
      // mount root that does not exist (a missing bucket) is such a cause.
      const bool plain = (rc == ENOENT || rc == EISDIR || rc == ENOTDIR) && path[0] != '\0';
      if (rc != 0 && !plain && first_time(rc, text)) {
        // The daemon's message may name the file itself: not twice.
        const char* prefix = g_config.mounts[mount].prefix;
        const size_t prefix_length = std::strlen(prefix);
        const bool named = std::strncmp(text, prefix, prefix_length) == 0 &&
                           (path[0] == '\0' || (text[prefix_length] == '/' &&
                                                 std::strncmp(text + prefix_length + 1, path, std::strlen(path)) == 0));
        if (named) {
          log_line("dscache: %s", text);
        } else {
          log_line("dscache: %s%s%s: %s", prefix, path[0] != '\0' ? "/" : "", path, text);
        }
      }
      return rc;
    }
  }
  log_line("dscache: %s%s%s: the daemon went away %d times while serving the request: EIO",
           g_config.mounts[mount].prefix, path[0] != '\0' ? "/" : "", path, kAttempts);
  return EIO;
}

int pin(int mount, const char* rel, bool on) {
  // A pin lasts as long as its connection, which in such a child (above)
  // would be the parent's: the child's partial files go unpinned (a file
  // evicted meanwhile is fetched again, and reads check its generation).
  if (in_shared_memory_child()) return 0;
  SignalsDeferred deferred;
  while (g_pin_lock.test_and_set(std::memory_order_acquire)) {
  }
  int rc = EIO;
  char text[256], error[256];
  {
    Guard guard;
    if (g_pin_conn.fd >= 0 && g_pin_generation != g_fork_generation.load()) {
      close_own_fd(g_pin_conn.fd);
      g_pin_conn.fd = -1;
    }
    // Twice: a connection to a daemon that has since stopped fails once and
    // is made again (to the daemon that runs now).
    for (int attempt = 0; attempt < 2 && rc == EIO; ++attempt) {
      if (g_pin_conn.fd < 0 && connect_own(g_pin_conn, error, sizeof error) != 0) break;
      g_pin_generation = g_fork_generation.load();
      const int fd_before = g_pin_conn.fd;
      int r = ipc::call_daemon(g_pin_conn, on ? ipc::MessageType::pin : ipc::MessageType::unpin,
                               g_config.mounts[mount].id, rel, 0, 0, 0, nullptr, text, sizeof text);
      after_call(g_pin_conn, fd_before);
      rc = r < 0 ? EIO : r;
    }
  }
  g_pin_lock.clear(std::memory_order_release);
  return rc;
}

uint32_t current_daemon() {
  IndexReader* idx = index();
  return idx != nullptr ? idx->header().daemon_pid.load(std::memory_order_acquire) : 0;
}

IndexReader* index() {
  int state = g_index_state.load(std::memory_order_acquire);
  if (state == 2) {
    IndexReader* current = g_index.load(std::memory_order_acquire);
    if (!current->retired()) return current;
    // A daemon replaced the index (another version or block size): open the
    // new one. The old mapping stays, as other threads may be reading it; its
    // lookups all come back busy now.
    int expected = 2;
    if (!g_index_state.compare_exchange_strong(expected, 0)) return nullptr;
    log_line("dscache: the cache index %s/index was replaced by a new daemon: opening the new one", g_config.cache_dir);
    reset_root_fds();
  }
  int expected = 0;
  if (g_index_state.load(std::memory_order_acquire) != 0 || !g_index_state.compare_exchange_strong(expected, 1)) {
    return nullptr;
  }
  const int used = g_index_generations;
  if (used == kIndexGenerations) {
    g_index_state.store(0, std::memory_order_release);
    return nullptr;  // replaced again and again: lookups go to the daemon
  }
  Guard guard;
  // Bytes are served from the index and the mirror only in a cache directory
  // no other user can change (the daemon connection checks it too).
  char error[1024];
  // (The daemon connection, which is asked next, says why in one line.)
  if (ipc::check_cache_dir(g_config, false, error, sizeof error) != 0) {
    g_index_state.store(0, std::memory_order_release);
    return nullptr;
  }
  char path[kMaxPathLength + 16];
  std::snprintf(path, sizeof path, "%s/index", g_config.cache_dir);
  auto* reader = new (g_index_storage[used]) IndexReader();
  if (reader->open(path) != 0 || reader->retired()) {
    g_index_state.store(0, std::memory_order_release);  // the daemon creates it: try again later
    return nullptr;
  }
  g_index_generations = used + 1;
  g_index.store(reader, std::memory_order_release);
  g_index_state.store(2, std::memory_order_release);
  return reader;
}

IndexKey key_of(int mount, const char* rel) { return index_key(g_config.mounts[mount].id, rel, std::strlen(rel)); }

int ensure_listed(int mount, const char* dir, size_t dir_length) {
  if (dir_listing(mount, dir, dir_length) == 1) return 0;
  char buf[kMaxPathLength];
  std::memcpy(buf, dir, dir_length);
  buf[dir_length] = '\0';
  int rc = ask_daemon(ipc::MessageType::ensure_listed, mount, buf, 0, 0, 0);
  if (rc == 0) return 0;
  // No daemon to be had: a directory listed before still serves (stale beats
  // failing; the daemon itself does the same when the store fails). One never
  // listed is an error, never an empty directory.
  if (rc == EIO && t_unreachable && dir_listing(mount, dir, dir_length) == 0) return 0;
  return -rc;
}

}  // namespace dscache::shim
