// libc only: no C++ runtime, no allocation on the paths a warm hit takes.
#include "core.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <string_view>
#include <cstdlib>
#include <cstring>
#include <new>

#include "index/index_key.h"
#include "index/index_reader.h"
#include "ipc/client.h"
#include "real.h"

namespace dscache::shim {

// Read by the inline fast path of route() (core.h).
bool g_active = false;
std::atomic<int> g_init{0};  // 0: not yet, 1: in progress, 2: done
bool g_first_char[256];      // first byte after '/' of any mount prefix
std::atomic<bool> g_cwd_relevant{false};  // under a mount, or an ancestor of one
std::atomic<uint64_t> g_dir_bits[kBitmapFds / 64];

thread_local int t_depth __attribute__((tls_model("initial-exec"))) = 0;

namespace {

constexpr int kMaxPartials = 256;
constexpr int kOpenAttempts = 8;

// ---- configuration and layout (written once, by init) ---------------------

Config g_config;
struct MirrorRoot {
  char path[kMaxPathLength + 64];  // <cache dir>/mirror/<mount id>
  size_t length;
  std::atomic<int> fd{-1};         // O_PATH on it, opened on first use; -1: not yet
};
// Own fds are placed at or above this (below it, the program's own numbers
// are handed out first and never collide), and never below g_lowest_own_fd.
constexpr int kOwnFdFloor = 900;
std::atomic<int> g_lowest_own_fd{INT32_MAX};
MirrorRoot g_roots[kMaxMounts];
char g_daemon_binary[kMaxPathLength + 64];

// ---- the index and the daemon ---------------------------------------------

// The index, mapped lazily; a new one if a daemon replaces it (a few times at
// most: the old mappings stay for threads that may still be reading them).
constexpr int kIndexGenerations = 4;
alignas(IndexReader) unsigned char g_index_storage[kIndexGenerations][sizeof(IndexReader)];
std::atomic<IndexReader*> g_index{nullptr};
int g_index_generations = 0;  // storages used; changed only by the thread holding state 1
std::atomic<int> g_index_state{0};  // 0: not tried, 1: opening, 2: open
std::atomic<uint32_t> g_fork_generation{0};

thread_local ipc::Connection t_conn __attribute__((tls_model("initial-exec")));
thread_local uint32_t t_conn_generation __attribute__((tls_model("initial-exec"))) = 0;
pthread_key_t g_conn_key;

// Pins go through one process-wide connection, so that a pin and its unpin
// meet the same client id in the daemon whichever thread sends them.
ipc::Connection g_pin_conn;
uint32_t g_pin_generation = 0;
std::atomic_flag g_pin_lock = ATOMIC_FLAG_INIT;

// ---- the working directory, as the program sees it ------------------------

char g_cwd[kMaxPathLength];
std::atomic<uint64_t> g_cwd_seq{0};

// ---- file descriptors ------------------------------------------------------

std::atomic<uint64_t> g_partial_bits[kBitmapFds / 64];
std::atomic<uint64_t> g_own_bits[kBitmapFds / 64];  // the shim's own fds (roots, daemon sockets)

struct PartialFile {
  std::atomic<int> fd{-1};
  int mount = -1;
  uint64_t slot = 0;
  uint64_t size = 0;
  uint64_t etag_hash = 0;
  std::atomic<uint32_t> generation{0};
  std::atomic<uint64_t> next_offset{0};  // where a sequential reader continues
  std::atomic<uint32_t> pinned_in{0};    // fork generation of the pin
  char* rel = nullptr;                   // malloc'd, the path below the mount
};
PartialFile g_partials[kMaxPartials];

// ---- small helpers ---------------------------------------------------------

void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log_line(const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(buf, sizeof buf - 1, format, args);
  va_end(args);
  if (n < 0) return;
  size_t len = static_cast<size_t>(n) < sizeof buf - 1 ? static_cast<size_t>(n) : sizeof buf - 2;
  buf[len++] = '\n';
  [[maybe_unused]] ssize_t w = ::write(2, buf, len);
}

bool test_bit(const std::atomic<uint64_t>* bits, int fd) {
  return fd >= 0 && fd < kBitmapFds && (bits[fd / 64].load(std::memory_order_acquire) >> (fd % 64) & 1) != 0;
}
void set_bit(std::atomic<uint64_t>* bits, int fd, bool on) {
  if (fd < 0 || fd >= kBitmapFds) return;
  uint64_t mask = uint64_t{1} << (fd % 64);
  if (on) {
    bits[fd / 64].fetch_or(mask, std::memory_order_release);
  } else {
    bits[fd / 64].fetch_and(~mask, std::memory_order_release);
  }
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Lexically normalises an absolute path into out ("//", ".", ".." resolved).
bool normalize(const char* in, char* out, size_t size) {
  size_t len = 0;
  const char* p = in;
  while (*p != '\0') {
    while (*p == '/') ++p;
    if (*p == '\0') break;
    const char* seg = p;
    while (*p != '\0' && *p != '/') ++p;
    size_t n = static_cast<size_t>(p - seg);
    if (n == 1 && seg[0] == '.') continue;
    if (n == 2 && seg[0] == '.' && seg[1] == '.') {
      while (len > 0 && out[len - 1] != '/') --len;
      if (len > 0) --len;  // the slash before it
      continue;
    }
    if (len + 1 + n + 1 > size) return false;
    out[len++] = '/';
    std::memcpy(out + len, seg, n);
    len += n;
  }
  if (len == 0) out[len++] = '/';
  out[len] = '\0';
  return true;
}

// out = a + b + c (snprintf's "%s%s%s" without its cost, which a stat
// through the shim used to spend a tenth of its time in). false if too long.
bool concat(char* out, size_t size, std::string_view a, std::string_view b, std::string_view c = {}) {
  if (a.size() + b.size() + c.size() + 1 > size) return false;
  std::memcpy(out, a.data(), a.size());
  std::memcpy(out + a.size(), b.data(), b.size());
  std::memcpy(out + a.size() + b.size(), c.data(), c.size());
  out[a.size() + b.size() + c.size()] = '\0';
  return true;
}

const char* parent_end(const char* rel) {
  const char* slash = std::strrchr(rel, '/');
  return slash != nullptr ? slash : rel;
}

void child_after_fork() {
  // Connections and the pin lock belong to the parent's threads.
  g_fork_generation.fetch_add(1);
  g_pin_lock.clear();
}

void close_thread_connection(void* conn) {
  auto* c = static_cast<ipc::Connection*>(conn);
  if (c->fd >= 0) {
    set_bit(g_own_bits, c->fd, false);
    REAL(close)(c->fd);
  }
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

void scan_inherited_fds();

void initialize() {
  int expected = 0;
  if (!g_init.compare_exchange_strong(expected, 1)) {
    while (g_init.load() != 2) {
    }
    return;
  }
  Guard guard;
  resolve_real_functions();
  char error[1024];
  const char* mounts = std::getenv("DSCACHE_MOUNTS");
  if (mounts != nullptr && mounts[0] != '\0') {
    if (!parse_config(g_config, [](const char* n) -> const char* { return std::getenv(n); }, error, sizeof error)) {
      log_line("dscache: %s: libdscache.so serves no path", error);
    } else if (g_config.mount_count > 0) {
      for (int i = 0; i < g_config.mount_count; ++i) {
        const MountConfig& m = g_config.mounts[i];
        g_first_char[static_cast<unsigned char>(m.prefix[1])] = true;
        int n = std::snprintf(g_roots[i].path, sizeof g_roots[i].path, "%s/mirror/%s", g_config.cache_dir, m.id_hex);
        g_roots[i].length = static_cast<size_t>(n);
      }
      find_daemon_binary();
      pthread_key_create(&g_conn_key, close_thread_connection);
      pthread_atfork(nullptr, nullptr, child_after_fork);
      g_active = true;
    }
  }
  g_init.store(2);
  if (g_active) {
    refresh_cwd();
    scan_inherited_fds();
  }
}

__attribute__((constructor(101))) void on_load() { initialize(); }

// ---- the daemon --------------------------------------------------------------

void mark_own(int fd) {
  set_bit(g_own_bits, fd, true);
  int lowest = g_lowest_own_fd.load();
  while (fd < lowest && !g_lowest_own_fd.compare_exchange_weak(lowest, fd)) {
  }
}

// Moves an fd the shim opened above the program's usual numbers and marks it
// the shim's: the program cannot close or replace it by accident (a loop that
// closes every fd, dup2 onto it), and its own fds never collide with it.
int to_own_fd(int fd) {
  if (fd < 0) return fd;
  struct rlimit limit {};
  int floor = kOwnFdFloor;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur < static_cast<rlim_t>(2 * kOwnFdFloor)) {
    floor = static_cast<int>(limit.rlim_cur / 2);
  }
  int high = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, floor);
  if (high >= 0) {
    REAL(close)(fd);
    fd = high;
  }
  mark_own(fd);
  return fd;
}

void close_own_fd(int fd) {
  if (fd < 0) return;
  set_bit(g_own_bits, fd, false);
  REAL(close)(fd);
}

// A daemon connection, made the shim's own fd. 0 or -errno.
int connect_own(ipc::Connection& conn, char* error, size_t error_size) {
  int rc = ipc::connect_daemon(conn, g_config, g_daemon_binary, 30000, error, error_size);
  if (rc == 0) conn.fd = to_own_fd(conn.fd);
  return rc;
}

// After a call: if the client closed a broken connection, the fd is not ours.
void after_call(ipc::Connection& conn, int fd_before) {
  if (conn.fd != fd_before && fd_before >= 0) set_bit(g_own_bits, fd_before, false);
}

ipc::Connection* thread_connection(char* error, size_t error_size) {
  if (t_conn.fd >= 0 && t_conn_generation == g_fork_generation.load()) return &t_conn;
  Guard guard;
  if (t_conn.fd >= 0) {
    close_own_fd(t_conn.fd);  // inherited from the parent across fork
    t_conn.fd = -1;
  }
  if (connect_own(t_conn, error, error_size) != 0) return nullptr;
  t_conn_generation = g_fork_generation.load();
  pthread_setspecific(g_conn_key, &t_conn);
  return &t_conn;
}

// This mount's counters in the index's stats block (the daemon assigns the
// slot), remembered per index mapping; null before a daemon has run.
MountStats* stats_of(IndexReader* idx, int mount) {
  static std::atomic<IndexReader*> cached_for{nullptr};
  static std::atomic<MountStats*> cached[kMaxMounts];
  if (idx == nullptr) return nullptr;
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

void count_wait(int mount, int64_t since_ns) {
  IndexReader* idx = g_index_state.load(std::memory_order_acquire) == 2 ? g_index.load(std::memory_order_acquire)
                                                                         : nullptr;
  if (MountStats* ms = stats_of(idx, mount)) {
    ms->wait_ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, now_ns() - since_ns)), std::memory_order_relaxed);
  }
}

// One request; reconnects once if the daemon went away. Returns the reply's
// errno (0), or EIO when no daemon can be reached (logged once per process).
int ask_daemon(ipc::MessageType type, int mount, const char* path, uint64_t offset, uint64_t length, uint32_t flags) {
  static std::atomic<bool> logged{false};
  char text[ipc::kMaxReplyText];
  char error[512];
  for (int attempt = 0; attempt < 2; ++attempt) {
    ipc::Connection* conn = thread_connection(error, sizeof error);
    if (conn == nullptr) {
      if (!logged.exchange(true)) log_line("dscache: %s: reads of uncached files fail with EIO", error);
      return EIO;
    }
    Guard guard;
    const int fd_before = conn->fd;
    const int64_t started = now_ns();
    int rc = ipc::call_daemon(*conn, type, g_config.mounts[mount].id, path, offset, length, flags, nullptr, text,
                              sizeof text);
    after_call(*conn, fd_before);
    count_wait(mount, started);
    if (rc >= 0) {
      if (rc != 0 && rc != ENOENT && rc != EISDIR && rc != ENOTDIR) {
        log_line("dscache: %s%s%s: %s", g_config.mounts[mount].prefix, path[0] != '\0' ? "/" : "", path, text);
      }
      return rc;
    }
  }
  return EIO;
}

int pin(int mount, const char* rel, bool on) {
  while (g_pin_lock.test_and_set(std::memory_order_acquire)) {
  }
  int rc = 0;
  char text[256], error[256];
  {
    Guard guard;
    if (g_pin_conn.fd >= 0 && g_pin_generation != g_fork_generation.load()) {
      close_own_fd(g_pin_conn.fd);
      g_pin_conn.fd = -1;
    }
    if (g_pin_conn.fd < 0 && connect_own(g_pin_conn, error, sizeof error) != 0) {
      rc = EIO;
    } else {
      g_pin_generation = g_fork_generation.load();
      const int fd_before = g_pin_conn.fd;
      rc = ipc::call_daemon(g_pin_conn, on ? ipc::MessageType::pin : ipc::MessageType::unpin,
                            g_config.mounts[mount].id, rel, 0, 0, 0, nullptr, text, sizeof text);
      after_call(g_pin_conn, fd_before);
    }
  }
  g_pin_lock.clear(std::memory_order_release);
  return rc < 0 ? EIO : rc;
}

// An fd for a mount's mirror root, moved out of the program's low numbers;
// -1 while the root does not exist (no daemon has made it yet).
int root_fd(int mount) {
  MirrorRoot& root = g_roots[mount];
  int fd = root.fd.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  Guard guard;
  int opened = REAL(open)(root.path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (opened < 0) return -1;
  opened = to_own_fd(opened);
  int expected = -1;
  if (!root.fd.compare_exchange_strong(expected, opened)) {
    close_own_fd(opened);  // another thread was first
    return expected;
  }
  return opened;
}

// After a daemon replaced the cache (a new index, a new mirror): the roots
// are opened again. The old fds stay open (and the shim's), as other threads
// may be using them.
void reset_root_fds() {
  for (int i = 0; i < g_config.mount_count; ++i) g_roots[i].fd.store(-1);
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

bool dir_is_fresh(int mount, const char* dir, size_t dir_length) {
  IndexReader* idx = index();
  if (idx == nullptr) return false;
  SlotSnapshot s;
  IndexKey key = index_key(g_config.mounts[mount].id, dir, dir_length);
  if (idx->find(key, s, nullptr) != LookupResult::found || s.kind() != SlotKind::directory || s.mtime_ns <= 0) {
    return false;
  }
  return g_config.meta_ttl_ns == INT64_MAX || now_ns() - s.mtime_ns < g_config.meta_ttl_ns;
}

int ensure_listed(int mount, const char* dir, size_t dir_length) {
  if (dir_is_fresh(mount, dir, dir_length)) return 0;
  char buf[kMaxPathLength];
  std::memcpy(buf, dir, dir_length);
  buf[dir_length] = '\0';
  int rc = ask_daemon(ipc::MessageType::ensure_listed, mount, buf, 0, 0, 0);
  if (rc == 0) return 0;
  if (rc == EIO) {
    // No daemon: a directory listed before still serves (stale beats failing).
    char mirror[kMaxPathLength + 64];
    std::snprintf(mirror, sizeof mirror, "%s%s%s", g_roots[mount].path, dir_length > 0 ? "/" : "", buf);
    struct stat st {};
    Guard guard;
    if (REAL(stat)(mirror, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  }
  return -rc;
}

// ---- partial files -----------------------------------------------------------

PartialFile* find_partial(int fd) {
  if (fd < 0) return nullptr;
  if (fd < kBitmapFds && !test_bit(g_partial_bits, fd)) return nullptr;
  for (PartialFile& p : g_partials) {
    if (p.fd.load(std::memory_order_acquire) == fd) return &p;
  }
  return nullptr;
}

int register_partial(int fd, int mount, const char* rel, uint64_t slot, const SlotSnapshot& s) {
  for (PartialFile& p : g_partials) {
    int expected = -1;
    if (p.fd.load() != -1) continue;
    // Reserve with an fd value no real descriptor has, fill in, then publish.
    if (!p.fd.compare_exchange_strong(expected, -2)) continue;
    size_t n = std::strlen(rel);
    p.rel = static_cast<char*>(std::malloc(n + 1));
    if (p.rel == nullptr) {
      p.fd.store(-1);
      return -ENOMEM;
    }
    std::memcpy(p.rel, rel, n + 1);
    p.mount = mount;
    p.slot = slot;
    p.size = s.size;
    p.etag_hash = s.etag_hash;
    p.generation.store(s.generation());
    p.next_offset.store(0);
    p.pinned_in.store(g_fork_generation.load());
    p.fd.store(fd, std::memory_order_release);
    set_bit(g_partial_bits, fd, true);
    pin(mount, rel, true);
    return 0;
  }
  return -EMFILE;  // more large files open at once than the table holds
}

void drop_partial(PartialFile& p, bool unpin) {
  int fd = p.fd.load();
  set_bit(g_partial_bits, fd, false);
  if (unpin) pin(p.mount, p.rel, false);
  std::free(p.rel);
  p.rel = nullptr;
  p.fd.store(-1, std::memory_order_release);
}

// Scans the fds this process inherited for directories inside a mirror: an
// *at() call relative to one must still be checked.
void scan_inherited_fds() {
  Guard guard;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  int self = dirfd(dir);
  while (struct dirent* e = ::readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == self) continue;
    char link[64], target[kMaxPathLength];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    char user[kMaxPathLength];
    if (mirror_to_user(target, user, sizeof user)) set_bit(g_dir_bits, fd, true);
  }
  ::closedir(dir);
}

bool is_ancestor_of_mount(const char* path) {
  size_t n = std::strlen(path);
  for (int i = 0; i < g_config.mount_count; ++i) {
    const MountConfig& m = g_config.mounts[i];
    if (n == 1 && path[0] == '/') return true;
    if (n < m.prefix_length && std::strncmp(m.prefix, path, n) == 0 && m.prefix[n] == '/') return true;
  }
  return false;
}

}  // namespace

bool active() {
  if (g_init.load(std::memory_order_acquire) != 2) initialize();
  return g_active;
}

Route route_slow(int dirfd, const char* path, Target& target) {
  if (!active()) return Route::pass;
  char joined[2 * kMaxPathLength];
  const char* absolute = path;
  if (path[0] == '/') {
    // The fast reject: no mount prefix starts with this byte.
    if (path[1] != '/' && !g_first_char[static_cast<unsigned char>(path[1])]) return Route::pass;
  } else if (dirfd == AT_FDCWD) {
    if (!g_cwd_relevant.load(std::memory_order_relaxed)) return Route::pass;
    uint64_t seq;
    do {
      seq = g_cwd_seq.load(std::memory_order_acquire);
      if (!concat(joined, sizeof joined, g_cwd, "/", path)) return Route::pass;
    } while ((seq & 1) != 0 || g_cwd_seq.load(std::memory_order_acquire) != seq);
    absolute = joined;
  } else {
    if (!is_mapped_dirfd(dirfd)) return Route::pass;
    char link[64], target_path[kMaxPathLength], user[kMaxPathLength];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    Guard guard;
    ssize_t n = REAL(readlink)(link, target_path, sizeof target_path - 1);
    if (n <= 0) return Route::pass;
    target_path[n] = '\0';
    const char* base = mirror_to_user(target_path, user, sizeof user) ? user : target_path;
    std::snprintf(joined, sizeof joined, "%s/%s", base, path);
    absolute = joined;
  }
  if (!normalize(absolute, target.user, sizeof target.user)) return Route::pass;
  const char* rel = nullptr;
  const MountConfig* m = find_mount(g_config, target.user, &rel);
  if (m == nullptr) return Route::pass;
  target.mount = static_cast<int>(m - g_config.mounts);
  target.rel = rel;
  const MirrorRoot& root = g_roots[target.mount];
  if (!concat(target.mirror, sizeof target.mirror, std::string_view(root.path, root.length),
              rel[0] != '\0' ? "/" : "", rel)) {
    return Route::pass;
  }
  const int fd = root_fd(target.mount);
  target.at_fd = fd >= 0 ? fd : AT_FDCWD;
  target.at_path = fd >= 0 ? (rel[0] != '\0' ? rel : ".") : target.mirror;
  return Route::mapped;
}

int prepare_lookup(const Target& t) {
  const char* end = parent_end(t.rel);
  return ensure_listed(t.mount, t.rel, static_cast<size_t>(end - t.rel));
}

int prepare_directory(const Target& t) {
  if (int rc = prepare_lookup(t); rc != 0) return rc;
  struct stat st {};
  {
    Guard guard;
    if (REAL(fstatat)(t.at_fd, t.at_path, &st, 0) != 0) return -errno;
  }
  if (!S_ISDIR(st.st_mode)) return 0;
  return ensure_listed(t.mount, t.rel, std::strlen(t.rel));
}

DIR* open_mirror_dir(const Target& t) {
  Guard guard;
  int fd = REAL(openat)(t.at_fd, t.at_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    REAL(close)(fd);
    errno = err;
  }
  return dir;
}

int open_mapped(const Target& t, int flags, mode_t mode, bool need_complete) {
  const int access = flags & O_ACCMODE;
  // (O_TMPFILE includes O_DIRECTORY's bit: test it whole.)
  if ((flags & O_TMPFILE) == O_TMPFILE) return -EROFS;
  if ((flags & O_CREAT) != 0) {
    // As the kernel orders it: an existing name is EEXIST under O_EXCL and
    // otherwise opens as it is (read-only); a new one is EROFS.
    if (int rc = prepare_lookup(t); rc != 0) return rc;  // no parent directory
    struct stat st {};
    int found;
    {
      Guard guard;
      found = REAL(fstatat)(t.at_fd, t.at_path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    }
    if (found != 0) return found == -ENOENT ? -EROFS : found;
    if ((flags & O_EXCL) != 0) return -EEXIST;
    flags &= ~O_CREAT;
  }
  if (access != O_RDONLY || (flags & (O_TRUNC | O_APPEND)) != 0) return -EROFS;
  if (int rc = prepare_lookup(t); rc != 0) return rc;
  if ((flags & O_PATH) != 0) {
    Guard guard;
    int fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
    return fd >= 0 ? fd : -errno;
  }
  const IndexKey key = key_of(t.mount, t.rel);
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    IndexReader* idx = index();
    SlotSnapshot s;
    uint64_t slot = 0;
    LookupResult found = idx != nullptr ? idx->find(key, s, &slot) : LookupResult::busy;
    if (found == LookupResult::busy) {
      int rc = ask_daemon(ipc::MessageType::fetch_object, t.mount, t.rel, 0, 0, 0);
      if (rc != 0) return -rc;
      continue;
    }
    if (found == LookupResult::not_found || s.kind() == SlotKind::directory) {
      // A directory (or nothing): it opens natively, and a directory is
      // listed so that reading it shows its entries.
      int fd;
      {
        Guard guard;
        fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
      }
      if (fd < 0) return -errno;
      struct stat st {};
      {
        Guard guard;
        REAL(fstat)(fd, &st);
      }
      if (S_ISDIR(st.st_mode)) {
        if (int rc = ensure_listed(t.mount, t.rel, std::strlen(t.rel)); rc != 0) {
          Guard guard;
          REAL(close)(fd);
          return rc;
        }
        set_bit(g_dir_bits, fd, true);
        return fd;
      }
      // A file the index does not know: never read it unchecked.
      {
        Guard guard;
        REAL(close)(fd);
      }
      int rc = ask_daemon(ipc::MessageType::fetch_object, t.mount, t.rel, 0, 0, 0);
      if (rc != 0) return -rc;
      continue;
    }
    if (s.state() == FileState::complete) {
      int fd;
      {
        Guard guard;
        fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
      }
      if (fd < 0) return -errno;
      // The file may have been replaced between the check and the open: the
      // daemon bumps the generation before it renames anything over a file.
      SlotSnapshot again;
      if (idx->read(slot, again) == LookupResult::found && again.key == key &&
          again.generation() == s.generation() && again.state() == FileState::complete) {
        idx->touch(slot, now_ns() / 1'000'000'000);
        if (MountStats* ms = stats_of(idx, t.mount)) {
          if (attempt == 0) ms->hits.fetch_add(1, std::memory_order_relaxed);  // else the daemon counted it
          ms->bytes_served.fetch_add(s.size, std::memory_order_relaxed);
        }
        return fd;
      }
      Guard guard;
      REAL(close)(fd);
      continue;
    }
    if (s.size <= g_config.whole_file_max || need_complete) {
      int rc = ask_daemon(s.size <= g_config.whole_file_max ? ipc::MessageType::fetch_object
                                                            : ipc::MessageType::complete_file,
                          t.mount, t.rel, 0, 0, 0);
      if (rc != 0) return -rc;
      continue;
    }
    // A large file: it opens now and fills block by block as it is read.
    int fd;
    {
      Guard guard;
      fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
    }
    if (fd < 0) return -errno;
    if (int rc = register_partial(fd, t.mount, t.rel, slot, s); rc != 0) {
      Guard guard;
      REAL(close)(fd);
      return rc;
    }
    return fd;
  }
  log_line("dscache: %s: the file kept changing while it was opened", t.user);
  return -EIO;
}

bool is_partial(int fd) { return find_partial(fd) != nullptr; }

int ensure_readable(int fd, uint64_t offset, uint64_t length) {
  PartialFile* p = find_partial(fd);
  if (p == nullptr) return 0;
  if (length == 0 || offset >= p->size) return 0;
  const uint64_t end = offset + length < p->size ? offset + length : p->size;
  const IndexKey key = key_of(p->mount, p->rel);
  if (p->pinned_in.load() != g_fork_generation.load()) {
    pin(p->mount, p->rel, true);  // a child of fork pins with its own connection
    p->pinned_in.store(g_fork_generation.load());
  }
  const bool sequential = p->next_offset.load(std::memory_order_relaxed) == offset;
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    IndexReader* idx = index();
    SlotSnapshot s;
    if (idx == nullptr || idx->read(p->slot, s) != LookupResult::found) return -EIO;
    if (!(s.key == key) || s.kind() != SlotKind::file || s.etag_hash != p->etag_hash) {
      log_line("dscache: %s%s%s: the object changed in the store while it was open", g_config.mounts[p->mount].prefix,
               "/", p->rel);
      return -ESTALE;
    }
    if (s.generation() != p->generation.load()) {
      // The same object, placed again (evicted and refetched, or completed
      // elsewhere): move this descriptor onto the current file.
      char mirror[kMaxPathLength + 64];
      std::snprintf(mirror, sizeof mirror, "%s/%s", g_roots[p->mount].path, p->rel);
      Guard guard;
      int fresh = REAL(open)(mirror, O_RDONLY | O_CLOEXEC, 0);
      if (fresh < 0) return -errno;
      int fd_flags = REAL(fcntl)(fd, F_GETFD);
      int rc = REAL(dup3)(fresh, fd, (fd_flags & FD_CLOEXEC) != 0 ? O_CLOEXEC : 0);
      REAL(close)(fresh);
      if (rc < 0) return -errno;
      p->generation.store(s.generation());
      continue;
    }
    if (s.state() == FileState::complete) break;
    const BlockRecord* record = s.blocks() ? idx->block_record(s.aux) : nullptr;
    const uint64_t bs = g_config.block_size;
    if (record != nullptr && IndexReader::blocks_present(*record, offset / bs, (end - 1) / bs)) break;
    int rc = ask_daemon(ipc::MessageType::fetch_range, p->mount, p->rel, offset, end - offset,
                        sequential ? ipc::kFlagSequential : 0);
    if (rc != 0) return -rc;
  }
  p->next_offset.store(end, std::memory_order_relaxed);
  if (MountStats* ms = stats_of(index(), p->mount)) ms->bytes_served.fetch_add(end - offset, std::memory_order_relaxed);
  return 0;
}

int complete_fd(int fd) {
  PartialFile* p = find_partial(fd);
  if (p == nullptr) return 0;
  if (int rc = ensure_readable(fd, 0, p->size); rc != 0) return rc;
  drop_partial(*p, true);
  return 0;
}

void complete_all() {
  for (PartialFile& p : g_partials) {
    int fd = p.fd.load();
    if (fd >= 0) complete_fd(fd);
  }
}

void forget_fd(int fd) {
  if (PartialFile* p = find_partial(fd)) drop_partial(*p, true);
  if (is_mapped_dirfd(fd)) set_bit(g_dir_bits, fd, false);  // (no locked write for the common fd)
}

void forget_fd_range(unsigned first, unsigned last) {
  for (PartialFile& p : g_partials) {
    int fd = p.fd.load(std::memory_order_acquire);
    if (fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) drop_partial(p, true);
  }
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kBitmapFds); ++fd) {
    if ((fd % 64) == 0 && fd + 63 <= last && g_dir_bits[fd / 64].load(std::memory_order_relaxed) == 0) {
      fd += 63;  // a clear word at a time
      continue;
    }
    set_bit(g_dir_bits, static_cast<int>(fd), false);
  }
}

bool is_own_fd(int fd) { return fd >= g_lowest_own_fd.load(std::memory_order_relaxed) && test_bit(g_own_bits, fd); }

int own_fds(int* out, int max) {
  int n = 0;
  const int lowest = g_lowest_own_fd.load(std::memory_order_relaxed);
  if (lowest >= kBitmapFds) return 0;
  for (int word = lowest / 64; word < kBitmapFds / 64 && n < max; ++word) {
    uint64_t bits = g_own_bits[word].load(std::memory_order_relaxed);
    while (bits != 0 && n < max) {
      out[n++] = word * 64 + __builtin_ctzll(bits);
      bits &= bits - 1;
    }
  }
  return n;
}

void move_own_fd(int fd) {
  Guard guard;
  int moved = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, fd + 1);
  if (moved >= 0) mark_own(moved);
  // Whoever holds the number gets the new one; the old number is the
  // program's to replace (dup2 does so next).
  for (int i = 0; i < g_config.mount_count; ++i) {
    int expected = fd;
    g_roots[i].fd.compare_exchange_strong(expected, moved);
  }
  if (t_conn.fd == fd) t_conn.fd = moved;
  if (g_pin_conn.fd == fd) g_pin_conn.fd = moved;
  set_bit(g_own_bits, fd, false);
}


void mark_mapped_dirfd(int fd) { set_bit(g_dir_bits, fd, true); }

void note_dup(int from, int to) {
  if (to < 0) return;
  set_bit(g_dir_bits, to, test_bit(g_dir_bits, from));
}

void fix_blocks(uint64_t size, uint64_t* blocks512) {
  uint64_t dense = (size + 511) / 512;
  if (*blocks512 < dense) *blocks512 = dense;
}

bool mirror_to_user(const char* path, char* out, size_t size) {
  if (!g_active) return false;
  for (int i = 0; i < g_config.mount_count; ++i) {
    const MirrorRoot& r = g_roots[i];
    if (std::strncmp(path, r.path, r.length) != 0 || (path[r.length] != '\0' && path[r.length] != '/')) continue;
    int n = std::snprintf(out, size, "%s%s", g_config.mounts[i].prefix, path + r.length);
    return n >= 0 && static_cast<size_t>(n) < size;
  }
  return false;
}

void refresh_cwd() {
  char real_cwd[kMaxPathLength], user[kMaxPathLength];
  {
    Guard guard;
    if (REAL(getcwd)(real_cwd, sizeof real_cwd) == nullptr) return;
  }
  const char* cwd = mirror_to_user(real_cwd, user, sizeof user) ? user : real_cwd;
  const char* rel = nullptr;
  bool relevant = find_mount(g_config, cwd, &rel) != nullptr || is_ancestor_of_mount(cwd);
  g_cwd_seq.fetch_add(1, std::memory_order_acq_rel);
  std::snprintf(g_cwd, sizeof g_cwd, "%s", cwd);
  g_cwd_seq.fetch_add(1, std::memory_order_acq_rel);
  g_cwd_relevant.store(relevant, std::memory_order_relaxed);
}

char* const* exec_environment(char* const* envp) {
  if (!g_active || envp == nullptr) return envp;
  bool has_preload = false, has_mounts = false;
  for (char* const* e = envp; *e != nullptr; ++e) {
    has_preload = has_preload || std::strncmp(*e, "LD_PRELOAD=", 11) == 0;
    has_mounts = has_mounts || std::strncmp(*e, "DSCACHE_MOUNTS=", 15) == 0;
  }
  if (has_preload && has_mounts) return envp;
  // The caller replaced the environment: carry ours along, so that the new
  // program still sees the mounts (its working directory may be in one).
  static char* merged[4096];
  size_t n = 0;
  for (char* const* e = envp; *e != nullptr && n < 4000; ++e) merged[n++] = *e;
  for (char** e = environ; e != nullptr && *e != nullptr && n < 4094; ++e) {
    bool ours = std::strncmp(*e, "DSCACHE_", 8) == 0 || std::strncmp(*e, "AWS_", 4) == 0;
    bool preload = std::strncmp(*e, "LD_PRELOAD=", 11) == 0;
    if ((ours && !has_mounts) || (preload && !has_preload)) merged[n++] = *e;
  }
  merged[n] = nullptr;
  return merged;
}

}  // namespace dscache::shim
