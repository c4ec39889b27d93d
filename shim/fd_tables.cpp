// Which file descriptors the shim knows: its own (mirror roots, daemon
// sockets), which the program must not close or replace, and the program's
// fds on mirror directories, for *at() calls relative to them.
#include <sys/resource.h>

#include <cstdio>

#include "internal.h"
#include "real.h"

namespace dscache::shim {

std::atomic<uint64_t> g_dir_bits[kBitmapFds / 64];
std::atomic<uint64_t> g_file_bits[kBitmapFds / 64];
std::atomic<uint64_t> g_file_inodes[kBitmapFds];
std::atomic<uint64_t> g_own_bits[kBitmapFds / 64];

namespace {

// Own fds are placed at or above this (below it, the program's own numbers
// are handed out first and never collide), and never below g_lowest_own_fd.
constexpr int kOwnFdFloor = 900;
std::atomic<int> g_lowest_own_fd{INT32_MAX};

void mark_own(int fd) {
  set_bit(g_own_bits, fd, true);
  int lowest = g_lowest_own_fd.load();
  while (fd < lowest && !g_lowest_own_fd.compare_exchange_weak(lowest, fd)) {
  }
}

}  // namespace

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

int root_fd(int mount) {
  MirrorRoot& root = g_roots[mount];
  int fd = root.fd.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  // A child sharing our memory (vfork, clone(CLONE_VM)) must not store an fd
  // that only its own fd table holds: the parent would then use that number
  // for a mount's root (another file's, or none). It goes by paths.
  if (in_shared_memory_child()) return -1;
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

// The old fds stay open (and the shim's), as other threads may be using them.
void reset_root_fds() {
  for (int i = 0; i < g_config.mount_count; ++i) g_roots[i].fd.store(-1);
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
  renumber_connection(fd, moved);
  set_bit(g_own_bits, fd, false);
}

dev_t mirror_device() {
  static std::atomic<dev_t> device{0};
  dev_t d = device.load(std::memory_order_relaxed);
  if (d != 0) return d;
  const int root = root_fd(0);
  struct stat st {};
  Guard guard;
  if (root < 0 || REAL(fstat)(root, &st) != 0) return 0;
  device.store(st.st_dev, std::memory_order_relaxed);
  return st.st_dev;
}

bool is_mirror_fd(int fd) {
  if (!active() || fd < 0) return false;
  // (Not the directory bits: they also mark real directories above mounts,
  // which are the user's to change.)
  if (is_partial(fd)) return true;
  struct stat st {};
  char link[64], target[kMaxPathLength], user[kMaxPathLength];
  Guard guard;
  if (REAL(fstat)(fd, &st) != 0 || st.st_dev != mirror_device()) return false;
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = REAL(readlink)(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return mirror_to_user(target, user, sizeof user);
}

bool names_a_mirror_file(const char* path) {
  char target[kMaxPathLength], user[kMaxPathLength];
  Guard guard;
  const ssize_t n = REAL(readlink)(path, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return mirror_to_user(target, user, sizeof user);
}

void mark_mapped_dirfd(int fd) {
  if (!in_shared_memory_child()) set_bit(g_dir_bits, fd, true);  // (the parent's table, in a vfork child)
}

// (No check for a child sharing our memory: a mark only counts for the file
// whose identity it carries, so one the parent's fd is not on is inert.)
void mark_mirror_file_fd(int fd, const struct stat& st) {
  if (fd < 0 || fd >= kBitmapFds) return;
  g_file_inodes[fd].store(file_identity(st.st_dev, st.st_ino), std::memory_order_relaxed);
  set_bit(g_file_bits, fd, true);
}

void note_dup(int from, int to) {
  if (to < 0) return;
  // Most duplicates (pipes, sockets, plain files) carry nothing of ours.
  const bool ours = test_bit(g_dir_bits, from) || test_bit(g_dir_bits, to) || test_bit(g_file_bits, from) ||
                    test_bit(g_file_bits, to) || has_above_listing(from) || has_above_listing(to);
  if (!ours || in_shared_memory_child()) {
    note_partial_dup(from, to);
    return;
  }
  set_bit(g_dir_bits, to, test_bit(g_dir_bits, from));
  if (from >= 0 && from < kBitmapFds && to < kBitmapFds) {
    g_file_inodes[to].store(g_file_inodes[from].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  set_bit(g_file_bits, to, test_bit(g_file_bits, from));
  copy_above_listing(from, to);
  note_partial_dup(from, to);
}

}  // namespace dscache::shim
