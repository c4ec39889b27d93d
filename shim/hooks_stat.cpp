// File status: stat and friends, statx, access. Placeholders are sparse: the
// block count is reported as a dense file's, which du and cp rely on.
#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

// A mirror file shows what a local copy's would, whatever the cache did to
// it: the blocks a dense file of its size takes (a placeholder has none, du
// and cp read that as sparse; a fetch would change them), and a ctime equal
// to its mtime (the daemon's writes move the real one).
uint64_t dense_blocks(uint64_t size, uint64_t block_size) {
  const uint64_t bs = block_size >= 512 ? block_size : 4096;
  return (size + bs - 1) / bs * (bs / 512);
}

template <class Stat>
void fix(Stat* st) {
  if (!S_ISREG(st->st_mode)) return;
  st->st_blocks = static_cast<decltype(st->st_blocks)>(
      dense_blocks(static_cast<uint64_t>(st->st_size), static_cast<uint64_t>(st->st_blksize)));
  st->st_ctim = st->st_mtim;
}

// A file still filling: the object's mtime, not the block writes' times.
template <class Stat>
void fix_filling(Stat* st, const timespec& mtime) {
  st->st_mtim = mtime;
  st->st_ctim = mtime;
}

// stat-like calls on (dirfd, path): `call` runs the real function on the path
// it is given (the mirror path, or the original).
template <class Stat, class Call>
__attribute__((noinline)) int stat_maybe_mapped(int dirfd, const char* path, Stat* st, Call call) {
  Target t;
  if (route(dirfd, path, t) != Route::mapped) return call(pass_dirfd(t, dirfd), pass_path(t, path));
  if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
  int r = call(t.at_fd, t.at_path);
  if (r == 0) {
    fix(st);
    timespec mtime{};
    if (S_ISREG(st->st_mode) && filling_mtime(t, static_cast<uint64_t>(st->st_size), &mtime)) fix_filling(st, mtime);
  }
  return r;
}

template <class Stat, class Call>
inline int stat_path(int dirfd, const char* path, Stat* st, Call call) {
  if (surely_unmapped(dirfd, path)) return call(dirfd, path);
  return stat_maybe_mapped(dirfd, path, st, call);
}

template <class Stat>
void fix_if_partial(int fd, int rc, Stat* st) {
  timespec mtime{};
  if (rc != 0) return;
  if (is_mirror_file_fd(fd, static_cast<uint64_t>(st->st_dev), static_cast<uint64_t>(st->st_ino))) {
    fix(st);
  } else if (partial_mtime(fd, &mtime)) {
    fix(st);
    fix_filling(st, mtime);
  }
}

int access_path(int dirfd, const char* path, int mode, int flags, bool effective) {
  Target t;
  // Write access on a read-only mount: EROFS for a name that exists (the
  // lookup's error first), whoever asks (root too).
  const int lookup_flags = flags & AT_SYMLINK_NOFOLLOW;
  if (route(dirfd, path, t) != Route::mapped) {
    if (t.synthetic && (mode & W_OK) != 0) {
      return REAL(faccessat)(AT_FDCWD, t.real_path, F_OK, lookup_flags) != 0 ? -1 : fail(-EROFS);
    }
    if (effective) return REAL(euidaccess)(pass_path(t, path), mode);
    return REAL(faccessat)(pass_dirfd(t, dirfd), pass_path(t, path), mode, flags);
  }
  if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
  if ((mode & W_OK) != 0) return REAL(faccessat)(t.at_fd, t.at_path, F_OK, lookup_flags) != 0 ? -1 : fail(-EROFS);
  return REAL(faccessat)(t.at_fd, t.at_path, mode, flags | (effective ? AT_EACCESS : 0));
}

bool empty_path(const char* path, int flags) { return (flags & AT_EMPTY_PATH) != 0 && path != nullptr && path[0] == '\0'; }

// For fstatfs/fstatvfs: an fd in a mirror is on a read-only file system.
bool on_a_mount(int r, int fd) { return r == 0 && t_depth == 0 && is_mirror_fd(fd); }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int stat(const char* path, struct stat* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(fstatat)(d, p, st, 0); });
}
__attribute__((visibility("default"))) int stat64(const char* path, struct stat64* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(fstatat64)(d, p, st, 0); });
}
__attribute__((visibility("default"))) int lstat(const char* path, struct stat* st) noexcept {
  return stat_path(AT_FDCWD, path, st,
                   [&](int d, const char* p) { return REAL(fstatat)(d, p, st, AT_SYMLINK_NOFOLLOW); });
}
__attribute__((visibility("default"))) int lstat64(const char* path, struct stat64* st) noexcept {
  return stat_path(AT_FDCWD, path, st,
                   [&](int d, const char* p) { return REAL(fstatat64)(d, p, st, AT_SYMLINK_NOFOLLOW); });
}
__attribute__((visibility("default"))) int fstatat(int dirfd, const char* path, struct stat* st, int flags) noexcept {
  if (empty_path(path, flags)) {
    int rc = REAL(fstatat)(dirfd, path, st, flags);
    fix_if_partial(dirfd, rc, st);
    return rc;
  }
  return stat_path(dirfd, path, st, [&](int d, const char* p) { return REAL(fstatat)(d, p, st, flags); });
}
__attribute__((visibility("default"))) int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) noexcept {
  if (empty_path(path, flags)) {
    int rc = REAL(fstatat64)(dirfd, path, st, flags);
    fix_if_partial(dirfd, rc, st);
    return rc;
  }
  return stat_path(dirfd, path, st, [&](int d, const char* p) { return REAL(fstatat64)(d, p, st, flags); });
}
__attribute__((visibility("default"))) int fstat(int fd, struct stat* st) noexcept {
  int rc = REAL(fstat)(fd, st);
  fix_if_partial(fd, rc, st);
  return rc;
}
__attribute__((visibility("default"))) int fstat64(int fd, struct stat64* st) noexcept {
  int rc = REAL(fstat64)(fd, st);
  fix_if_partial(fd, rc, st);
  return rc;
}
__attribute__((visibility("default"))) int __xstat(int ver, const char* path, struct stat* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(__fxstatat)(ver, d, p, st, 0); });
}
__attribute__((visibility("default"))) int __xstat64(int ver, const char* path, struct stat64* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(__fxstatat64)(ver, d, p, st, 0); });
}
__attribute__((visibility("default"))) int __lxstat(int ver, const char* path, struct stat* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(__fxstatat)(ver, d, p, st, AT_SYMLINK_NOFOLLOW); });
}
__attribute__((visibility("default"))) int __lxstat64(int ver, const char* path, struct stat64* st) noexcept {
  return stat_path(AT_FDCWD, path, st, [&](int d, const char* p) { return REAL(__fxstatat64)(ver, d, p, st, AT_SYMLINK_NOFOLLOW); });
}
__attribute__((visibility("default"))) int __fxstat(int ver, int fd, struct stat* st) noexcept {
  int rc = REAL(__fxstat)(ver, fd, st);
  fix_if_partial(fd, rc, st);
  return rc;
}
__attribute__((visibility("default"))) int __fxstat64(int ver, int fd, struct stat64* st) noexcept {
  int rc = REAL(__fxstat64)(ver, fd, st);
  fix_if_partial(fd, rc, st);
  return rc;
}
__attribute__((visibility("default"))) int __fxstatat(int ver, int dirfd, const char* path, struct stat* st,
                                                      int flags) noexcept {
  return stat_path(dirfd, path, st, [&](int d, const char* p) { return REAL(__fxstatat)(ver, d, p, st, flags); });
}
__attribute__((visibility("default"))) int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* st,
                                                        int flags) noexcept {
  return stat_path(dirfd, path, st, [&](int d, const char* p) { return REAL(__fxstatat64)(ver, d, p, st, flags); });
}
__attribute__((visibility("default"))) int statx(int dirfd, const char* path, int flags, unsigned int mask,
                                                 struct statx* stx) noexcept {
  timespec mtime{};
  auto fix_statx = [&](int rc, bool filling) {
    if (rc == 0 && S_ISREG(stx->stx_mode)) {
      stx->stx_blocks = dense_blocks(stx->stx_size, stx->stx_blksize);
      if (filling) stx->stx_mtime = {mtime.tv_sec, static_cast<uint32_t>(mtime.tv_nsec), 0};
      stx->stx_ctime = stx->stx_mtime;
    }
    return rc;
  };
  if (empty_path(path, flags)) {
    int rc = REAL(statx)(dirfd, path, flags, mask, stx);
    if (rc == 0 && is_mirror_file_fd(dirfd, makedev(stx->stx_dev_major, stx->stx_dev_minor), stx->stx_ino)) {
      return fix_statx(rc, false);
    }
    return partial_mtime(dirfd, &mtime) ? fix_statx(rc, true) : rc;
  }
  Target t;
  if (route(dirfd, path, t) != Route::mapped) {
    return REAL(statx)(pass_dirfd(t, dirfd), pass_path(t, path), flags, mask, stx);
  }
  if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
  const int rc = REAL(statx)(t.at_fd, t.at_path, flags, mask, stx);
  return fix_statx(rc, rc == 0 && S_ISREG(stx->stx_mode) && filling_mtime(t, stx->stx_size, &mtime));
}
__attribute__((visibility("default"))) int access(const char* path, int mode) noexcept {
  return access_path(AT_FDCWD, path, mode, 0, false);
}
__attribute__((visibility("default"))) int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
  return access_path(dirfd, path, mode, flags, false);
}
__attribute__((visibility("default"))) int euidaccess(const char* path, int mode) noexcept {
  return access_path(AT_FDCWD, path, mode, 0, true);
}
__attribute__((visibility("default"))) int eaccess(const char* path, int mode) noexcept {
  return access_path(AT_FDCWD, path, mode, 0, true);
}
// Names looked up for something other than their bytes: the mirror's entry.
__attribute__((visibility("default"))) int name_to_handle_at(int dirfd, const char* path, struct file_handle* handle,
                                                             int* mount_id, int flags) noexcept {
  Target t;
  if ((flags & AT_EMPTY_PATH) != 0 && path != nullptr && path[0] == '\0') {
    return REAL(name_to_handle_at)(dirfd, path, handle, mount_id, flags);
  }
  if (route(dirfd, path, t) != Route::mapped) return REAL(name_to_handle_at)(dirfd, path, handle, mount_id, flags);
  if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
  return REAL(name_to_handle_at)(t.at_fd, t.at_path, handle, mount_id, flags);
}
// A handle opens the file itself, past every path hook: one in a mirror
// (name_to_handle_at of a path under a mount) is made safe to read first,
// as an fd received from another process is, and never opened to write.
__attribute__((visibility("default"))) int open_by_handle_at(int mount_fd, struct file_handle* handle, int flags) {
  const int fd = REAL(open_by_handle_at)(mount_fd, handle, flags);
  if (fd < 0 || t_depth != 0 || !active() || !is_mirror_fd(fd)) return fd;
  int rc = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0 ? -EROFS : adopt_any_fd(fd);
  if (rc != 0) {
    forget_fd(fd);
    REAL(close)(fd);
    return fail(rc);
  }
  return fd;
}
// A mount is a read-only file system, whatever fd the program asks about.
__attribute__((visibility("default"))) int fstatfs(int fd, struct statfs* buf) noexcept {
  const int r = REAL(fstatfs)(fd, buf);
  return read_only_if(r, on_a_mount(r, fd), buf->f_flags);
}
__attribute__((visibility("default"))) int fstatfs64(int fd, struct statfs64* buf) noexcept {
  const int r = REAL(fstatfs64)(fd, buf);
  return read_only_if(r, on_a_mount(r, fd), buf->f_flags);
}
__attribute__((visibility("default"))) int fstatvfs(int fd, struct statvfs* buf) noexcept {
  const int r = REAL(fstatvfs)(fd, buf);
  return read_only_if(r, on_a_mount(r, fd), buf->f_flag);
}
__attribute__((visibility("default"))) int fstatvfs64(int fd, struct statvfs64* buf) noexcept {
  const int r = REAL(fstatvfs64)(fd, buf);
  return read_only_if(r, on_a_mount(r, fd), buf->f_flag);
}
__attribute__((visibility("default"))) int inotify_add_watch(int fd, const char* path, uint32_t mask) noexcept {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) return REAL(inotify_add_watch)(fd, path, mask);
  if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
  return REAL(inotify_add_watch)(fd, t.mirror, mask);
}

}  // extern "C"
