// The shim's one dispatch point and the state behind it.
//
// Every hook does the same three things: route() its path (is it under a
// mount? a prefix check on the raw string, no allocation, no syscall when it
// is not); prepare what the operation needs (the directory listed, the file
// fetched); then call the real libc function on the mirror path, which runs
// natively from there on. Hooks on file descriptors only act on the few fds
// this library registered (partial large files, mirror directories).
//
// Nothing here needs a destructor (DataLoader workers leave with _exit), no
// lock is held across a call into libc, and the library starts no thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "libc_headers.h"

namespace dscache::shim {

// Set while the shim itself is inside libc, so that hooks reached from there
// pass straight through.
extern thread_local int t_depth __attribute__((tls_model("initial-exec")));
struct Guard {
  Guard() { ++t_depth; }
  ~Guard() { --t_depth; }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
};

// True once the library is initialised with a valid DSCACHE_MOUNTS.
bool active();

// One line on stderr, control characters escaped.
void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));

struct Target {
  int mount = -1;                          // index into the configuration's mounts
  char user[kMaxPathLength];               // normalised absolute path as the program sees it
  const char* rel = nullptr;               // into `user`: the path below the mount ("" for its root)
  char mirror[kMaxPathLength + 64];        // the same place in the cache's mirror
  // The same place for *at() calls: (the mirror root's fd, the path below it),
  // a shorter walk for the kernel than `mirror`; (AT_FDCWD, mirror) until the
  // root can be opened.
  int at_fd = AT_FDCWD;
  const char* at_path = nullptr;
  // Set (to `user`) when the route is `pass` but the program's path went
  // into a mount and `..` took it out again ("/data/m/../x", "../.." from a
  // cwd inside a mount): the kernel would look for the mount's path on disk,
  // or walk up from the mirror; the lexical result is what a local copy gives.
  const char* real_path = nullptr;
  // Not in a mount: the directory above mounts (shim/above.cpp) the path is,
  // -1 if none ("/" and "/data" for a mount at /data/m).
  int above = -1;
  // Set when the path is at or below a directory above a mount that is
  // missing on disk: real_path is then its stand-in under <cache dir>/above
  // (in `mirror`), read-only like a mount.
  bool synthetic = false;
};

// What a passed-through call gets: (dirfd, path) as the program gave them,
// or (AT_FDCWD, the lexical path) when `..` left a mount.
inline const char* pass_path(const Target& t, const char* path) { return t.real_path != nullptr ? t.real_path : path; }
inline int pass_dirfd(const Target& t, int dirfd) { return t.real_path != nullptr ? AT_FDCWD : dirfd; }

enum class Route : uint8_t { pass, mapped };

// Is (dirfd, path) under a mount? `pass` means: call the real function with
// the original arguments.
Route route_slow(int dirfd, const char* path, Target& target);
inline Route route(int dirfd, const char* path, Target& target);

// Make what an operation on `target` needs present. 0 or -errno.
int prepare_lookup(const Target& target);     // its directory is listed
int prepare_directory(const Target& target);  // and, if it is a directory, its own listing
// Opens a mapped path for reading. Complete files come back as plain fds;
// large files not yet complete are registered as partial (unless
// need_complete, which makes them complete first). fd, or -errno.
int open_mapped(const Target& target, int flags, mode_t mode, bool need_complete);
// The mirror directory of a mapped path as a DIR stream (listed or not: the
// caller prepares it). null with errno set.
DIR* open_mirror_dir(const Target& target);

// Partial files (large objects filled by block).
bool is_partial(int fd);
// The daemon guards partial files in the kernel (kIndexFlagKernelGuard).
bool kernel_guard_on();
// A large file still filling has its mtime and ctime moved by every block
// written; stat reports the object's mtime for both instead, as a file that
// never changes would (tar compares ctime around a read, cp -p and make the
// mtime). True, with that time, for a file of `size` at `target` that is not
// complete, or for a partial fd.
bool filling_mtime(const Target& target, uint64_t size, timespec* mtime);
bool partial_mtime(int fd, timespec* mtime);
// Makes [offset, offset + length) of a partial fd readable. 0 or -errno.
// `recycles`: the file's BlockRecord::recycles as read before the bitmap
// said the range was present (kNoRecycleCheck when the file is complete or
// not partial): a read made after is good only while it is unchanged.
inline constexpr uint64_t kNoRecycleCheck = ~uint64_t{0};
int ensure_readable(int fd, uint64_t offset, uint64_t length, uint64_t* recycles = nullptr);
// Makes [offset, offset + length) readable for a read the shim cannot check
// afterwards (POSIX aio): the daemon also keeps its blocks from being
// recycled for a while (ipc::kAioHoldMs). 0 or -errno.
int ensure_readable_held(int fd, uint64_t offset, uint64_t length);
// A read of a partial fd at `offset` (pread, preadv): makes the range present,
// calls do_read (a positioned read at `offset`), and calls it again if the
// daemon recycled blocks meanwhile (the read may have met a punched hole).
// do_read's result (-1 with errno set on failure). For an fd that is not
// partial: do_read.
ssize_t read_range(int fd, uint64_t offset, uint64_t length,
                   ssize_t (*do_read)(int fd, void* context, off_t offset), void* context);
// A read at the fd's current offset (read, readv): as read_range at that
// offset, which then moves past what was read; one thread at a time per
// partial fd.
ssize_t read_at_offset(int fd, uint64_t length, ssize_t (*do_read)(int fd, void* context, off_t offset),
                       void* context);
// A file a spawn's actions open by its mirror path (on): kept from eviction
// (a pin) and made complete; off: let go. 0 or an errno.
int hold_for_spawn(int mount, const char* rel, bool on);
// Makes the whole file present; the fd then leaves the partial table. 0 or -errno.
int complete_fd(int fd);
// Before running another program (exec, spawn, system, popen), whose reads
// the shim does not check until it loads it itself: completes every partial
// fd it will inherit (open and not close-on-exec), or every open one when
// `every_open_fd` (spawn file actions may dup any fd into the child).
// 0, or -errno when one could not be completed (the program must not run).
int complete_inherited(bool every_open_fd);
// Partial fds in the table (while none, opens pay nothing for note_reopen).
extern std::atomic<int> g_partial_count;
// `fd` was just opened by a path the shim did not map: if it is on a partial
// file's inode (a reopen through /proc/self/fd/N, /dev/stdin, a link to
// them), it is guarded as one too; if the path names another process's fd,
// the file is looked up in the mirror (adopt_fd). 0 or -errno.
int note_reopen(int fd, bool names_an_open_fd);
// An fd that came from elsewhere (SCM_RIGHTS, pidfd_getfd, another
// process's /proc/PID/fd/N): a mirror file still filling enters the table.
// 0 or -errno.
int adopt_fd(int fd);
// The same for an fd that may be on any mirror file, a small one's
// placeholder too (open_by_handle_at): that is fetched whole first.
int adopt_any_fd(int fd);
// `to` is a duplicate of `from` (dup, dup2, dup3, F_DUPFD): guarded alike.
void note_partial_dup(int from, int to);
// Before duplicating `fd`: 0, or -errno if a partial file could not be made
// complete where it must be (in a vfork child).
int prepare_dup(int fd);
inline bool names_an_open_fd(const char* path) {
  return path[0] == '/' && ((path[1] == 'p' && __builtin_strncmp(path, "/proc/", 6) == 0) ||
                            (path[1] == 'd' && __builtin_strncmp(path, "/dev/fd/", 8) == 0));
}
// The fd is closing: forget what we knew about it.
void forget_fd(int fd);
// The shim's own fds (mirror roots), which the program must not close or
// replace: is_own_fd says which; move_own_fd moves one out of the way.
bool is_own_fd(int fd);
void move_own_fd(int fd);
constexpr int kMaxOwnFds = 80;
int own_fds(int* out, int max);  // in increasing order; how many
void forget_fd_range(unsigned first, unsigned last);  // close_range, closefrom

// Directories above the mounts (above.cpp). An fd just opened on `t` (not
// mapped): if it is on a directory above a mount, *at() calls relative to it
// are routed, and reading it lists the mounts' names the disk lacks.
void note_above_fd(int fd, const Target& t);
// After the disk's entries of such a directory (`end`: telldir there), the
// names it lacks, one per call; null when all are given.
struct dirent64* above_next_entry(int fd, long end);
// rewinddir (position -1) or seekdir(position) of such a directory.
void rewind_above_listing(int fd, long position);
extern std::atomic<uint64_t> g_above_bits[];
extern std::atomic<int> g_above_listings;
inline bool has_above_listing(int fd) {
  return g_above_listings.load(std::memory_order_relaxed) != 0 && fd >= 0 && fd < 65536 &&
         (g_above_bits[fd / 64].load(std::memory_order_acquire) >> (fd % 64) & 1) != 0;
}

// Directory fds under a mount (or above one), for *at() calls relative to them.
inline bool is_mapped_dirfd(int fd);
void mark_mapped_dirfd(int fd);
// Complete mirror files opened through a mount: fstat shows them as stat of
// their path does (times and blocks that a fetch does not change).
// The fd may have been closed past the hooks since (fclose, a raw close)
// and its number reused: the inode the mark was made for must match.
extern std::atomic<uint64_t> g_file_bits[];
extern std::atomic<uint64_t> g_file_inodes[];
void mark_mirror_file_fd(int fd, const struct stat& st);  // st: fstat of fd
inline uint64_t file_identity(uint64_t dev, uint64_t ino) { return ino * 0x9E3779B97F4A7C15ull ^ dev; }
inline bool is_mirror_file_fd(int fd, uint64_t dev, uint64_t ino) {
  return fd >= 0 && fd < 65536 && (g_file_bits[fd / 64].load(std::memory_order_relaxed) >> (fd % 64) & 1) != 0 &&
         g_file_inodes[fd].load(std::memory_order_relaxed) == file_identity(dev, ino);
}
// Is fd on a file or directory in a mount's mirror (however the program got
// it: opened through a mount, inherited, received, duplicated)? Cheap for fds
// the shim tracks and for files on other file systems; otherwise an fstat
// and a readlink. For the calls that would change the cache (EROFS).
bool is_mirror_fd(int fd);
// Does the magic link `path` (/proc/self/fd/N, /dev/fd/N) lead into a mirror?
bool names_a_mirror_file(const char* path);
void note_dup(int from, int to);

// Rewrites a path inside a mount's mirror into the path the program knows;
// false if `path` is not inside a mirror.
bool mirror_to_user(const char* path, char* out, size_t size);

// The working directory changed (or may have): re-read it.
void refresh_cwd();

// The environment for a new program: the caller's, plus LD_PRELOAD and the
// DSCACHE_* settings if it dropped them (never AWS_* credentials).
// exec_environment_length says how many entries that takes (0: envp as it
// is); build_exec_environment fills `out`, room for length + 1, which the
// caller allocates on its stack (no lock, no static buffer, no limit: two
// threads spawning at once, or a vfork child, each use their own).
size_t exec_environment_length(char* const* envp);
char* const* build_exec_environment(char* const* envp, char** out, size_t length);

// A statfs/statvfs result `r` whose flags (f_flags, f_flag) get ST_RDONLY
// when `read_only`: a mount is a read-only file system.
template <class Flags>
inline int read_only_if(int r, bool read_only, Flags& flags) {
  if (r == 0 && read_only) flags |= ST_RDONLY;
  return r;
}

// Sets errno from a -errno result and returns -1 (for the int-returning hooks).
inline int fail(int negative_errno);

}  // namespace dscache::shim

inline int dscache::shim::fail(int negative_errno) {
  errno = -negative_errno;
  return -1;
}

// ---- the fast path, inline in every hook ----------------------------------

namespace dscache::shim {

constexpr int kBitmapFds = 65536;  // fds below this are tracked in bitmaps
extern bool g_active;
extern std::atomic<int> g_init;
extern bool g_first_char[256];
extern std::atomic<bool> g_cwd_relevant;
extern std::atomic<uint64_t> g_dir_bits[kBitmapFds / 64];

inline bool is_mapped_dirfd(int fd) {
  return fd >= 0 && fd < kBitmapFds && (g_dir_bits[fd / 64].load(std::memory_order_acquire) >> (fd % 64) & 1) != 0;
}

// A path no mount can hold is passed on after a byte comparison (absolute), a
// relaxed load (relative, the cwd outside every mount) or a bitmap test (*at()
// with a dirfd): no call, no allocation, no syscall. Hooks test this first,
// before they set up a Target (whose 12 KiB frame costs stack probes).
inline bool surely_unmapped(int dirfd, const char* path) {
  if (path == nullptr || t_depth > 0) return true;
  if (g_init.load(std::memory_order_acquire) != 2) return false;  // route_slow initialises
  if (!g_active) return true;
  // (/proc/self/fd/N/name and /dev/fd/N/name: relative to the fd N.)
  if (path[0] == '/') {
    return path[1] != '/' && !g_first_char[static_cast<unsigned char>(path[1])] && !names_an_open_fd(path);
  }
  if (dirfd == AT_FDCWD) return !g_cwd_relevant.load(std::memory_order_relaxed);
  return !is_mapped_dirfd(dirfd);
}

inline Route route(int dirfd, const char* path, Target& target) {
  return surely_unmapped(dirfd, path) ? Route::pass : route_slow(dirfd, path, target);
}

}  // namespace dscache::shim
