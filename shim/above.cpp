// The directories above the mounts ("/" and "/data" for a mount at /data/m),
// as a local copy of the tree would show them: they list the mounts' names
// (ls /data, glob /data/*, find /), *at() calls relative to an fd on one reach
// into the mounts (tar -C /data, dir_fd=), and those missing on disk exist
// all the same, read-only (stat, realpath, chdir, opendir of /data when there
// is no /data). Those are real directories the shim makes on first need, one
// tree per set of mount paths (a system daemon's users each choose theirs):
// <cache dir>/above/<hash>/data/m for a user daemon's cache (or as root),
// else /tmp/dscache-<uid>-above/<hash>/data/m, both checked as private
// (common/private_dir.h). Paths at or below a missing directory are served
// from there, and every change to them is refused as on a read-only mount.
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "common/private_dir.h"
#include "internal.h"
#include "real.h"

namespace dscache::shim {

std::atomic<uint64_t> g_above_bits[kBitmapFds / 64];
std::atomic<int> g_above_listings{0};

namespace {

// One directory above a mount: the first `length` bytes of its prefix (0: "/").
struct Above {
  int mount;
  uint32_t length;
};
constexpr int kMaxAbove = 256;
Above g_above[kMaxAbove];
int g_above_count = 0;
// Whether each exists on disk (0 not asked yet, 1 there, 2 missing), and
// when that was seen: asked again after a second.
std::atomic<int64_t> g_checked_ns[kMaxAbove];
std::atomic<uint8_t> g_exists[kMaxAbove];

char g_above_base[kMaxPathLength + 16];  // <cache dir>/above, or /tmp/dscache-<uid>-above
char g_above_root[kMaxPathLength + 40];  // <base>/<hash of the mount paths>
size_t g_above_root_length = 0;
std::atomic<int> g_above_built{0};  // 0 not yet, 1 made, 2 cannot be made (logged)

std::string_view name_of(int i) {
  const Above& a = g_above[i];
  return {g_config.mounts[a.mount].prefix, a.length};
}

// The name below directory `i` on the way to mount `m` (empty if `m` is not below it).
std::string_view child_toward(int i, int m) {
  const std::string_view dir = name_of(i);
  const char* prefix = g_config.mounts[m].prefix;
  const size_t n = std::strlen(prefix);
  if (n <= dir.size() + 1 || std::strncmp(prefix, dir.data(), dir.size()) != 0 || prefix[dir.size()] != '/') return {};
  const char* start = prefix + dir.size() + 1;
  const char* end = std::strchr(start, '/');
  return {start, end != nullptr ? static_cast<size_t>(end - start) : std::strlen(start)};
}

int64_t coarse_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Is directory `i` on disk? Asked at most once a second.
bool exists_on_disk(int i) {
  const int64_t now = coarse_ns();
  const uint8_t known = g_exists[i].load(std::memory_order_relaxed);
  if (known != 0 && now - g_checked_ns[i].load(std::memory_order_relaxed) < 1'000'000'000) return known == 1;
  char path[kMaxPathLength];
  const std::string_view name = name_of(i);
  std::memcpy(path, name.data(), name.size());
  path[name.size()] = '\0';
  struct stat st {};
  bool there;
  {
    Guard guard;
    // (Anything there counts, a dangling link too: it is the user's, and
    // no stand-in may hide it.)
    there = REAL(fstatat)(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
  }
  g_exists[i].store(there ? 1 : 2, std::memory_order_relaxed);
  g_checked_ns[i].store(now, std::memory_order_relaxed);
  return there;
}

// Calls fn(path) for each directory of the tree rooted at `root` that the
// mounts make (every component of every mount path), deepest last per mount.
template <class Fn>
bool for_each_stand_in(const char* root, Fn fn) {
  char path[sizeof g_above_root + kMaxPathLength];
  for (int m = 0; m < g_config.mount_count; ++m) {
    const char* prefix = g_config.mounts[m].prefix;
    for (const char* slash = std::strchr(prefix + 1, '/');; slash = std::strchr(slash + 1, '/')) {
      const int n = slash != nullptr ? static_cast<int>(slash - prefix) : static_cast<int>(std::strlen(prefix));
      std::snprintf(path, sizeof path, "%s%.*s", root, n, prefix);
      if (!fn(path)) return false;
      if (slash == nullptr) break;
    }
  }
  return true;
}

// Makes the stand-ins of this process's directories above the mounts, once
// per set of mount paths: built read-only (0555) under a temporary name and
// renamed into place, so that no process sees it half made; a process that
// loses the race to another uses the other's. Changes made through the shim
// are refused anyway; the modes stop those made past it (a program without
// the shim, a call no hook sees).
void ensure_above_built() {
  if (g_above_built.load(std::memory_order_relaxed) != 0) return;
  Guard guard;
  struct stat st {};
  if (REAL(fstatat)(AT_FDCWD, g_above_root, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
    g_above_built.store(1);
    return;
  }
  char error[512];
  PrivateDirOptions options;
  options.owner = geteuid();
  options.create = true;
  const int fd = open_private_dir(g_above_base, options, error, sizeof error);
  if (fd < 0) {
    log_line("dscache: %s: the directories above the mounts that are missing on disk are not shown", error);
    g_above_built.store(2);
    return;
  }
  REAL(close)(fd);
  static std::atomic<unsigned> counter{0};
  char fresh[sizeof g_above_base + 64];
  std::snprintf(fresh, sizeof fresh, "%s/.new-%d-%u", g_above_base, static_cast<int>(getpid()), counter.fetch_add(1));
  bool ok = REAL(mkdir)(fresh, 0755) == 0 &&
            for_each_stand_in(fresh, [](const char* p) { return REAL(mkdir)(p, 0755) == 0 || errno == EEXIST; });
  const int err = errno;
  for_each_stand_in(fresh, [](const char* p) { return REAL(chmod)(p, 0555) == 0 || true; });
  REAL(chmod)(fresh, 0555);
  if (ok && REAL(rename)(fresh, g_above_root) == 0) {
    g_above_built.store(1);
    return;
  }
  const bool lost_race = ok && (errno == EEXIST || errno == ENOTEMPTY);
  if (!lost_race) log_line("dscache: %s: %s: the directories above the mounts are not shown", fresh, std::strerror(ok ? errno : err));
  // Ours goes (made writable again, then removed deepest first).
  REAL(chmod)(fresh, 0755);
  for_each_stand_in(fresh, [](const char* p) { return REAL(chmod)(p, 0755) == 0 || true; });
  for (int pass = 0; pass < 64; ++pass) {
    for_each_stand_in(fresh, [](const char* p) { return REAL(rmdir)(p) == 0 || true; });
    if (REAL(rmdir)(fresh) == 0 || errno == ENOENT) break;
  }
  g_above_built.store(lost_race ? 1 : 2);
}

struct Listing {
  std::atomic<int> fd{-1};
  int above = -1;
  uint32_t missing = 0;  // one mount per name below `above` that the disk lacks
  uint32_t given = 0;    // of those, given out since the stream began
  long end = -1;         // telldir() where the disk's entries end, once seen
  struct dirent64 entry;
};
constexpr int kListings = 64;
Listing g_listings[kListings];

Listing* find_listing(int fd) {
  if (g_above_listings.load(std::memory_order_relaxed) == 0) return nullptr;
  for (Listing& l : g_listings) {
    if (l.fd.load(std::memory_order_acquire) == fd) return &l;
  }
  return nullptr;
}

Listing* claim_listing() {
  for (Listing& l : g_listings) {
    int expected = -1;
    if (l.fd.compare_exchange_strong(expected, -2)) {  // -2: being filled
      g_above_listings.fetch_add(1);
      return &l;
    }
  }
  return nullptr;
}

void publish_listing(Listing& l, int fd) {
  l.fd.store(fd, std::memory_order_release);
  set_bit(g_above_bits, fd, true);
}

}  // namespace

void init_above() {
  // Where: in the cache directory when it is this user's (a user daemon's,
  // made by whichever comes first), else in a private directory of this
  // user's (a system daemon's cache is root's). Decided without looking at
  // the disk, so that every process of the user agrees.
  const uid_t me = geteuid();
  if (!g_config.system_daemon || me == 0) {
    std::snprintf(g_above_base, sizeof g_above_base, "%s/above", g_config.cache_dir);
  } else {
    std::snprintf(g_above_base, sizeof g_above_base, "/tmp/dscache-%u-above", static_cast<unsigned>(me));
  }
  // One tree per set of mount paths (FNV-1a of them, in order).
  uint64_t hash = 14695981039346656037ull;
  for (int m = 0; m < g_config.mount_count; ++m) {
    for (const char* c = g_config.mounts[m].prefix;; ++c) {
      hash = (hash ^ static_cast<unsigned char>(*c)) * 1099511628211ull;
      if (*c == '\0') break;
    }
  }
  const int n = std::snprintf(g_above_root, sizeof g_above_root, "%s/%016llx", g_above_base,
                              static_cast<unsigned long long>(hash));
  g_above_root_length = n > 0 && static_cast<size_t>(n) < sizeof g_above_root ? static_cast<size_t>(n) : 0;
  for (int m = 0; m < g_config.mount_count; ++m) {
    const char* prefix = g_config.mounts[m].prefix;
    for (const char* slash = prefix; slash != nullptr; slash = std::strchr(slash + 1, '/')) {
      const auto length = static_cast<uint32_t>(slash - prefix);
      bool seen = false;
      for (int i = 0; i < g_above_count && !seen; ++i) {
        seen = name_of(i) == std::string_view(prefix, length);
      }
      if (!seen && g_above_count < kMaxAbove) g_above[g_above_count++] = {m, length};
    }
  }
}

namespace {

// The deepest directory above a mount (not "/") that `user` is or lies
// below, -1 if none; *exact: the one `user` is (-1 if none, "/" included).
int deepest_above(const char* user, int* exact) {
  const size_t n = std::strlen(user);
  int deepest = -1;
  size_t deepest_length = 0;
  *exact = -1;
  for (int i = 0; i < g_above_count; ++i) {
    const std::string_view dir = name_of(i);
    if (dir.empty()) {
      if (n == 1) *exact = i;  // "/"
      continue;
    }
    if (n < dir.size() || std::strncmp(user, dir.data(), dir.size()) != 0) continue;
    if (n == dir.size()) *exact = i;
    if ((n == dir.size() || user[dir.size()] == '/') && dir.size() > deepest_length) {
      deepest = i;
      deepest_length = dir.size();
    }
  }
  return deepest;
}

}  // namespace

bool in_missing_above(const char* user) {
  int exact;
  const int deepest = deepest_above(user, &exact);
  return deepest >= 0 && !exists_on_disk(deepest);
}

bool is_above_a_mount(const char* user) {
  int exact;
  deepest_above(user, &exact);
  return exact >= 0;
}

bool stand_in_of(const char* user, char* out, size_t size, int* above) {
  int exact;
  const int deepest = deepest_above(user, &exact);
  if (above != nullptr) *above = exact;
  if (deepest < 0 || g_above_root_length == 0 || exists_on_disk(deepest)) return false;
  // Missing on disk: served from its stand-in under <cache dir>/above.
  const size_t n = std::strlen(user);
  if (g_above_root_length + n + 1 > size) return false;
  ensure_above_built();
  if (g_above_built.load(std::memory_order_relaxed) != 1) return false;
  std::memcpy(out, g_above_root, g_above_root_length);
  std::memcpy(out + g_above_root_length, user, n + 1);
  return true;
}

void route_above(Target& t) {
  if (stand_in_of(t.user, t.mirror, sizeof t.mirror, &t.above)) {
    t.real_path = t.mirror;
    t.synthetic = true;
  }
}

bool above_to_user(const char* path, char* out, size_t size) {
  if (g_above_root_length == 0 || std::strncmp(path, g_above_root, g_above_root_length) != 0) return false;
  const char* rest = path + g_above_root_length;
  if (rest[0] != '/' && rest[0] != '\0') return false;
  const int n = std::snprintf(out, size, "%s", rest[0] != '\0' ? rest : "/");
  return n >= 0 && static_cast<size_t>(n) < size;
}

void note_above_fd(int fd, const Target& t) {
  if (fd < 0 || (t.above < 0 && !t.synthetic) || t_depth != 0 || in_shared_memory_child()) return;
  struct stat st {};
  {
    Guard guard;
    if (REAL(fstat)(fd, &st) != 0 || !S_ISDIR(st.st_mode)) return;
  }
  // *at() calls relative to it go through route_slow, which reads where it is.
  mark_mapped_dirfd(fd);
  // A stand-in under above/ holds its names itself; a directory on disk may lack them.
  if (t.synthetic || t.above < 0) return;
  uint32_t missing = 0;
  for (int m = 0; m < g_config.mount_count; ++m) {
    const std::string_view child = child_toward(t.above, m);
    if (child.empty()) continue;
    bool seen = false;  // the name is asked for once (/data/x/a and /data/x/b)
    for (int earlier = 0; earlier < m && !seen; ++earlier) seen = child_toward(t.above, earlier) == child;
    if (seen) continue;
    char name[NAME_MAX + 1];
    if (child.size() > NAME_MAX) continue;
    std::memcpy(name, child.data(), child.size());
    name[child.size()] = '\0';
    Guard guard;
    if (REAL(fstatat)(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT) missing |= uint32_t{1} << m;
  }
  if (missing == 0) return;
  Listing* l = claim_listing();
  if (l == nullptr) return;  // 64 such streams open at once: the disk's names only
  l->above = t.above;
  l->missing = missing;
  l->given = 0;
  l->end = -1;
  publish_listing(*l, fd);
}

struct dirent64* above_next_entry(int fd, long end) {
  Listing* l = find_listing(fd);
  if (l == nullptr) return nullptr;
  l->end = end;
  const uint32_t left = l->missing & ~l->given;
  if (left == 0) return nullptr;
  const int m = __builtin_ctz(left);
  l->given |= uint32_t{1} << m;
  const std::string_view child = child_toward(l->above, m);
  struct dirent64& e = l->entry;
  std::memset(&e, 0, offsetof(struct dirent64, d_name));
  std::memcpy(e.d_name, child.data(), child.size());
  e.d_name[child.size()] = '\0';
  e.d_type = DT_DIR;
  e.d_reclen = static_cast<unsigned short>((offsetof(struct dirent64, d_name) + child.size() + 1 + 7) & ~size_t{7});
  // The inode the name leads to: the mount's mirror root, or a stand-in above.
  const std::string_view dir = name_of(l->above);
  char path[kMaxPathLength + 64];
  const bool is_mount = dir.size() + 1 + child.size() == std::strlen(g_config.mounts[m].prefix);
  if (is_mount) {
    std::snprintf(path, sizeof path, "%s", g_roots[m].path);
  } else {
    std::snprintf(path, sizeof path, "%s%.*s/%.*s", g_above_root, static_cast<int>(dir.size()), dir.data(),
                  static_cast<int>(child.size()), child.data());
  }
  struct stat st {};
  Guard guard;
  e.d_ino = REAL(fstatat)(AT_FDCWD, path, &st, 0) == 0 ? st.st_ino : 1;
  e.d_off = 0;
  return &e;
}

void rewind_above_listing(int fd, long position) {
  Listing* l = find_listing(fd);
  if (l == nullptr) return;
  // Back before the end: the names come again after it. At the end (a
  // position telldir gave there): they were given.
  l->given = position >= 0 && position == l->end ? l->missing : 0;
}

void forget_above_listing(int fd) {
  if (!test_bit(g_above_bits, fd)) return;
  set_bit(g_above_bits, fd, false);
  if (Listing* l = find_listing(fd)) {
    l->fd.store(-1, std::memory_order_release);
    g_above_listings.fetch_sub(1);
  }
}

void copy_above_listing(int from, int to) {
  forget_above_listing(to);
  Listing* src = find_listing(from);
  if (src == nullptr || to < 0) return;
  Listing* l = claim_listing();
  if (l == nullptr) return;
  l->above = src->above;
  l->missing = src->missing;
  l->given = 0;
  l->end = -1;
  publish_listing(*l, to);
}

}  // namespace dscache::shim
