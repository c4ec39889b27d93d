// The shim's start, its routing of paths into the mirror, and opening
// mapped files. libc only: no C++ runtime, no allocation on the paths a warm
// hit takes.
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "internal.h"
#include "real.h"

namespace dscache::shim {

// Read by the inline fast path of route() (core.h).
bool g_active = false;
std::atomic<int> g_init{0};  // 0: not yet, 1: in progress, 2: done
bool g_first_char[256];      // first byte after '/' of any mount prefix
std::atomic<bool> g_cwd_relevant{false};  // under a mount, or an ancestor of one

thread_local int t_depth __attribute__((tls_model("initial-exec"))) = 0;

Config g_config;
MirrorRoot g_roots[kMaxMounts];
std::atomic<uint32_t> g_fork_generation{0};

void log_line(const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return;
  const size_t len = static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1;
  // Paths come from programs and the store: control characters become \xNN
  // (as in the daemon's log), so a name cannot forge a line.
  char out[4 * sizeof buf + 1];
  size_t o = 0;
  for (size_t i = 0; i < len; ++i) {
    const auto c = static_cast<unsigned char>(buf[i]);
    if (c < 0x20 || c == 0x7f) {
      static const char kHex[] = "0123456789abcdef";
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = kHex[c >> 4];
      out[o++] = kHex[c & 15];
    } else if (c == '\\') {
      out[o++] = '\\';
      out[o++] = '\\';
    } else {
      out[o++] = static_cast<char>(c);
    }
  }
  out[o++] = '\n';
  [[maybe_unused]] ssize_t w = ::write(2, out, o);
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

constexpr int kOpenAttempts = 8;

// ---- the working directory, as the program sees it ------------------------

char g_cwd[kMaxPathLength];
std::atomic<uint64_t> g_cwd_seq{0};
// Set by a child sharing our memory that changed its directory (cleared at
// this process's next chdir): relative paths then check who is asking.
std::atomic<bool> g_child_chdir{false};

// ---- small helpers ---------------------------------------------------------

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
  // (An empty view may have no data: memcpy must not see its null pointer.)
  if (!a.empty()) std::memcpy(out, a.data(), a.size());
  if (!b.empty()) std::memcpy(out + a.size(), b.data(), b.size());
  if (!c.empty()) std::memcpy(out + a.size() + b.size(), c.data(), c.size());
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
  g_pid.store(static_cast<int>(syscall(SYS_getpid)));
  reset_connections_after_fork();
  reset_partials_after_fork();
}

}  // namespace

void after_missed_fork() { child_after_fork(); }

namespace {

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
        g_first_char[0] = true;  // "/", the directory above every mount
        int n = std::snprintf(g_roots[i].path, sizeof g_roots[i].path, "%s/mirror/%s", g_config.cache_dir, m.id_hex);
        g_roots[i].length = static_cast<size_t>(n);
      }
      init_above();
      init_daemon_link();
      g_pid.store(static_cast<int>(syscall(SYS_getpid)));
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
    if (!mirror_to_user(target, user, sizeof user)) continue;
    // A directory anchors *at() calls; a file is complete (exec completes
    // every inherited partial fd) and fstat shows it as its path's stat.
    struct stat st {};
    if (REAL(fstat)(fd, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) set_bit(g_dir_bits, fd, true);
    if (S_ISREG(st.st_mode)) mark_mirror_file_fd(fd, st);
  }
  ::closedir(dir);
}

// Does `absolute` go into a mount, or into a directory above one that is
// missing on disk, before its first ".." segment? (Then the ".." is resolved
// lexically: the kernel would not find that path on disk.)
bool leaves_a_mount(const char* absolute) {
  const char* dots = absolute;
  while ((dots = std::strstr(dots, "/..")) != nullptr && dots[3] != '\0' && dots[3] != '/') ++dots;
  if (dots == nullptr) return false;
  char before[kMaxPathLength], normal[kMaxPathLength];
  const size_t n = static_cast<size_t>(dots - absolute);
  if (n + 1 > sizeof before) return false;
  std::memcpy(before, absolute, n);
  before[n] = '\0';
  const char* rel = nullptr;
  return normalize(before, normal, sizeof normal) &&
         (find_mount(g_config, normal, &rel) != nullptr || in_missing_above(normal));
}

// Each ".." segment in `absolute` steps out of the directory before it, which
// the kernel requires to exist and be a directory ("file/.." is ENOTDIR,
// "missing/.." ENOENT). Lexical normalisation would skip that check for
// whatever lies in a mount or a stand-in above one: made here, where the
// kernel cannot. 0, ENOENT or ENOTDIR.
int dotdot_error(const char* absolute) {
  char before[kMaxPathLength], normal[kMaxPathLength];
  for (const char* dots = std::strstr(absolute, "/.."); dots != nullptr; dots = std::strstr(dots + 1, "/..")) {
    if (dots[3] != '\0' && dots[3] != '/') continue;  // "/..name"
    const size_t n = static_cast<size_t>(dots - absolute);
    if (n + 1 > sizeof before) return 0;
    std::memcpy(before, absolute, n);
    before[n] = '\0';
    if (!normalize(before, normal, sizeof normal)) return 0;
    struct stat st {};
    int rc;
    const char* rel = nullptr;
    if (const MountConfig* m = find_mount(g_config, normal, &rel)) {
      const int mount = static_cast<int>(m - g_config.mounts);
      const char* end = parent_end(rel);
      if (int listed = ensure_listed(mount, rel, static_cast<size_t>(end - rel)); listed != 0) return -listed;
      const int root = root_fd(mount);
      char mirror[kMaxPathLength + 64];
      std::snprintf(mirror, sizeof mirror, "%s/%s", g_roots[mount].path, rel);
      Guard guard;
      rc = root >= 0 ? REAL(fstatat)(root, rel[0] != '\0' ? rel : ".", &st, 0) : REAL(fstatat)(AT_FDCWD, mirror, &st, 0);
    } else {
      char stand_in[kMaxPathLength + 64];
      const bool synthetic = stand_in_of(normal, stand_in, sizeof stand_in, nullptr);
      Guard guard;
      rc = REAL(fstatat)(AT_FDCWD, synthetic ? stand_in : normal, &st, 0);
    }
    if (rc != 0) return errno == ENOTDIR ? ENOTDIR : ENOENT;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  }
  return 0;
}

// Paths whose lookup fails with that errno whatever the call (stat, open,
// mkdir, ...): how a `..` error reaches the hooks, through pass_path().
const char* failing_path(int err) { return err == ENOTDIR ? "/dev/null/dscache-not-a-directory" : "/proc/self/fd/-1/x"; }

}  // namespace

bool active() {
  if (g_init.load(std::memory_order_acquire) != 2) initialize();
  return g_active;
}

Route route_slow(int dirfd, const char* path, Target& target) {
  if (!active()) return Route::pass;
  // The empty path names nothing (ENOENT, or the dirfd itself under
  // AT_EMPTY_PATH): the kernel's to answer, never the cwd inside a mount.
  if (path[0] == '\0') return Route::pass;
  char joined[2 * kMaxPathLength];
  const char* absolute = path;
  if (names_an_open_fd(path)) {
    // /proc/self/fd/N/rest, /dev/fd/N/rest: `rest` relative to the fd N,
    // which the kernel resolves from where N is (a mirror directory: its
    // placeholders); routed as openat(N, rest) would be.
    const char* p = path[1] == 'd' ? path + 8 : path + 6;  // after "/dev/fd/" or "/proc/"
    if (path[1] == 'p') {
      if (std::strncmp(p, "self/fd/", 8) == 0) {
        p += 8;
      } else if (std::strncmp(p, "thread-self/fd/", 15) == 0) {
        p += 15;
      } else {
        char* end = nullptr;
        const long pid = std::strtol(p, &end, 10);
        if (end == p || pid != g_pid.load(std::memory_order_relaxed) || std::strncmp(end, "/fd/", 4) != 0) {
          return Route::pass;
        }
        p = end + 4;
      }
    }
    char* end = nullptr;
    const long fd = std::strtol(p, &end, 10);
    if (end == p || *end != '/' || fd < 0 || fd > INT32_MAX) return Route::pass;  // the fd itself (note_reopen)
    while (*end == '/') ++end;
    if (*end == '\0' || !is_mapped_dirfd(static_cast<int>(fd))) return Route::pass;
    return route_slow(static_cast<int>(fd), end, target);
  }
  if (path[0] == '/') {
    // The fast reject: no mount prefix starts with this byte.
    if (path[1] != '/' && !g_first_char[static_cast<unsigned char>(path[1])]) return Route::pass;
  } else if (dirfd == AT_FDCWD) {
    if (!g_cwd_relevant.load(std::memory_order_relaxed)) return Route::pass;
    if (g_child_chdir.load(std::memory_order_relaxed) && in_shared_memory_child()) {
      // Its cwd is its own (a vfork child's chdir), the record the parent's.
      char real_cwd[kMaxPathLength], user[kMaxPathLength];
      {
        Guard guard;
        if (REAL(getcwd)(real_cwd, sizeof real_cwd) == nullptr) return Route::pass;
      }
      const char* cwd = mirror_to_user(real_cwd, user, sizeof user) ? user : real_cwd;
      if (!concat(joined, sizeof joined, cwd, "/", path)) return Route::pass;
    } else {
      uint64_t seq;
      do {
        seq = g_cwd_seq.load(std::memory_order_acquire);
        if (!concat(joined, sizeof joined, g_cwd, "/", path)) return Route::pass;
      } while ((seq & 1) != 0 || g_cwd_seq.load(std::memory_order_acquire) != seq);
    }
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
  if (m == nullptr) {
    if (leaves_a_mount(absolute)) target.real_path = target.user;
    route_above(target);
    if (target.real_path != nullptr && std::strstr(absolute, "/..") != nullptr) {
      if (const int err = dotdot_error(absolute); err != 0) {
        target.real_path = failing_path(err);
        target.synthetic = false;
      }
    }
    return Route::pass;
  }
  if (std::strstr(absolute, "/..") != nullptr) {
    if (const int err = dotdot_error(absolute); err != 0) {
      target.real_path = failing_path(err);
      return Route::pass;
    }
  }
  target.mount = static_cast<int>(m - g_config.mounts);
  target.rel = rel;
  const MirrorRoot& root = g_roots[target.mount];
  // A trailing "/" or "/." asks for a directory: kept on the mirror path, so
  // that the kernel answers ENOTDIR for a file as it would here.
  const size_t length = std::strlen(path);
  const bool directory = (length >= 1 && path[length - 1] == '/') ||
                         (length >= 2 && path[length - 1] == '.' && path[length - 2] == '/');
  if (!concat(target.mirror, sizeof target.mirror, std::string_view(root.path, root.length),
              rel[0] != '\0' ? "/" : "", rel) ||
      (directory && rel[0] != '\0' &&
       !concat(target.mirror + root.length + 1 + std::strlen(rel), sizeof target.mirror - root.length - 1 -
               std::strlen(rel), "/", ""))) {
    return Route::pass;
  }
  const int fd = root_fd(target.mount);
  target.at_fd = fd >= 0 ? fd : AT_FDCWD;
  target.at_path = fd >= 0 ? (rel[0] != '\0' ? target.mirror + root.length + 1 : ".") : target.mirror;
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
  // O_TRUNC asks for write access, as the kernel counts it (O_APPEND alone does not).
  const bool writes = access != O_RDONLY || (flags & O_TRUNC) != 0;
  if ((flags & O_CREAT) != 0 || writes) {
    // As the kernel orders it on a read-only mount: no parent directory is
    // ENOENT; an existing name is EEXIST under O_CREAT|O_EXCL, EISDIR for a
    // directory opened to write or created, and otherwise opens as it is
    // (read-only) or is EROFS (to write); a new name is EROFS to create,
    // ENOENT without O_CREAT.
    if (int rc = prepare_lookup(t); rc != 0) return rc;  // no parent directory
    struct stat st {};
    int found;
    {
      Guard guard;
      found = REAL(fstatat)(t.at_fd, t.at_path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    }
    if (found != 0) return found == -ENOENT && (flags & O_CREAT) != 0 ? -EROFS : found;
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return -EEXIST;
    if (S_ISDIR(st.st_mode) && (writes || (flags & O_CREAT) != 0)) return -EISDIR;
    if (writes) return -EROFS;
    flags &= ~O_CREAT;
  }
  if (int rc = prepare_lookup(t); rc != 0) return rc;
  const IndexKey key = key_of(t.mount, t.rel);
  if ((flags & O_PATH) != 0) {
    int fd;
    {
      Guard guard;
      fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
    }
    if (fd < 0) return -errno;
    // An O_PATH fd on a directory anchors *at() calls, which must be routed
    // (else openat(fd, "file") reads its placeholder).
    struct stat st {};
    {
      Guard guard;
      if (REAL(fstat)(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        mark_mapped_dirfd(fd);
        return fd;
      }
    }
    // An O_PATH fd reads nothing, but a reopen through /proc/self/fd does:
    // a large file still filling is tracked like any partial fd.
    IndexReader* idx = index();
    SlotSnapshot s;
    uint64_t slot = 0;
    if (idx != nullptr && idx->find(key, s, &slot) == LookupResult::found && s.kind() == SlotKind::file &&
        s.state() != FileState::complete && s.size > g_config.whole_file_max) {
      if (int rc = register_partial(fd, t.mount, t.rel, slot, s); rc != 0) {
        Guard guard;
        REAL(close)(fd);
        if (rc != -EMFILE) return rc;
        // No entry for it (a full table, a child sharing our memory): the
        // file is made complete, and then needs none.
        if (int fetched = ask_daemon(ipc::MessageType::complete_file, t.mount, t.rel, 0, 0, 0); fetched != 0) {
          return -fetched;
        }
        fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
        if (fd < 0) return -errno;
      }
    }
    return fd;
  }
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
        mark_mapped_dirfd(fd);
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
      struct stat st {};
      {
        Guard guard;
        fd = REAL(openat)(t.at_fd, t.at_path, flags, mode);
        if (fd >= 0 && (REAL(fstat)(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != s.size)) {
          REAL(close)(fd);
          fd = -2;  // truncated (or grown) behind the daemon's back
        }
      }
      if (fd == -2 || (fd < 0 && errno == ENOENT)) {
        // A file the index calls complete, missing or of the wrong size: never
        // served short or as absent; the daemon checks, then fetches it again.
        int rc = ask_daemon(ipc::MessageType::fetch_object, t.mount, t.rel, 0, 0, ipc::kFlagRepair);
        if (rc != 0) return -rc;
        continue;
      }
      if (fd < 0) return -errno;
      // The file may have been replaced between the check and the open: the
      // daemon bumps the generation before it renames anything over a file.
      SlotSnapshot again;
      if (idx->read(slot, again) == LookupResult::found && again.key == key &&
          again.generation() == s.generation() && again.state() == FileState::complete) {
        idx->touch(slot, now_ns() / 1'000'000'000);
        mark_mirror_file_fd(fd, st);
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
      {
        Guard guard;
        REAL(close)(fd);
      }
      if (rc != -EMFILE) return rc;
      // More large files open at once than the table holds: this one is
      // made complete, and then needs no entry.
      if (int fetched = ask_daemon(ipc::MessageType::complete_file, t.mount, t.rel, 0, 0, 0); fetched != 0) {
        return -fetched;
      }
      continue;
    }
    return fd;
  }
  log_line("dscache: %s: the file kept changing while it was opened", t.user);
  return -EIO;
}

bool mirror_to_user(const char* path, char* out, size_t size) {
  if (!g_active) return false;
  for (int i = 0; i < g_config.mount_count; ++i) {
    const MirrorRoot& r = g_roots[i];
    if (std::strncmp(path, r.path, r.length) != 0 || (path[r.length] != '\0' && path[r.length] != '/')) continue;
    int n = std::snprintf(out, size, "%s%s", g_config.mounts[i].prefix, path + r.length);
    return n >= 0 && static_cast<size_t>(n) < size;
  }
  return above_to_user(path, out, size);
}

void refresh_cwd() {
  if (in_shared_memory_child()) {
    // A vfork child's chdir: the record is the parent's, and stays its; the
    // child's relative paths go by its own cwd (route_slow asks the kernel,
    // once g_child_chdir says a child moved: until then none pays getpid).
    g_child_chdir.store(true, std::memory_order_relaxed);
    g_cwd_relevant.store(true, std::memory_order_relaxed);
    return;
  }
  g_child_chdir.store(false, std::memory_order_relaxed);
  char real_cwd[kMaxPathLength], user[kMaxPathLength];
  {
    Guard guard;
    if (REAL(getcwd)(real_cwd, sizeof real_cwd) == nullptr) return;
  }
  const char* cwd = mirror_to_user(real_cwd, user, sizeof user) ? user : real_cwd;
  const char* rel = nullptr;
  bool relevant = find_mount(g_config, cwd, &rel) != nullptr || is_above_a_mount(cwd);
  g_cwd_seq.fetch_add(1, std::memory_order_acq_rel);
  std::snprintf(g_cwd, sizeof g_cwd, "%s", cwd);
  g_cwd_seq.fetch_add(1, std::memory_order_acq_rel);
  g_cwd_relevant.store(relevant, std::memory_order_relaxed);
}

}  // namespace dscache::shim
