// Opening files: open, openat, their fortified and 64-bit forms, creat, fopen, freopen.
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

// An open of a stand-in above the mounts (t.synthetic) that would change it:
// the error a read-only mount gives, 0 for a read-only open.
int refuse_synthetic_write(const Target& t, int flags) {
  if ((flags & O_TMPFILE) == O_TMPFILE) return -EROFS;
  const bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
  if ((flags & O_CREAT) == 0 && !writes) return 0;
  struct stat st {};
  Guard guard;
  if (REAL(fstatat)(AT_FDCWD, t.real_path, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT || (flags & O_CREAT) == 0) return -errno;
    char parent[sizeof t.mirror];
    std::snprintf(parent, sizeof parent, "%s", t.real_path);
    if (char* slash = std::strrchr(parent, '/')) *slash = '\0';
    return REAL(fstatat)(AT_FDCWD, parent, &st, 0) == 0 ? -EROFS : -ENOENT;
  }
  if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) return -EEXIST;
  if (S_ISDIR(st.st_mode)) return -EISDIR;
  return -EROFS;
}

__attribute__((noinline)) int open_maybe_mapped(int dirfd, const char* path, int flags, mode_t mode) {
  Target t;
  if (route(dirfd, path, t) != Route::mapped) {
    if (t.synthetic) {
      if (int rc = refuse_synthetic_write(t, flags); rc != 0) return fail(rc);
    }
    const int fd = REAL(openat)(pass_dirfd(t, dirfd), pass_path(t, path), flags, mode);
    // A directory above a mount: *at() calls relative to it, and its listing.
    if (fd >= 0 && (t.above >= 0 || t.synthetic)) note_above_fd(fd, t);
    return fd;
  }
  int fd = open_mapped(t, flags, mode, false);
  return fd >= 0 ? fd : fail(fd);
}

// Opens (dirfd, path): the mirror for mapped paths, else the real thing. A
// reopen through /proc/self/fd/N of a partial file is guarded like N.
inline int open_path(int dirfd, const char* path, int flags, mode_t mode) {
  // /proc/self/fd/N of a mirror file opened for writing: the mirror is
  // read-only to the program, however it names it.
  if (path != nullptr && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0) && t_depth == 0 &&
      names_an_open_fd(path) && active() && names_a_mirror_file(path)) {
    return fail(-EROFS);
  }
  const int fd = surely_unmapped(dirfd, path) ? REAL(openat)(dirfd, path, flags, mode)
                                              : open_maybe_mapped(dirfd, path, flags, mode);
  if (fd < 0 || path == nullptr || t_depth != 0) return fd;
  const bool names_fd = names_an_open_fd(path);
  // An O_PATH fd reads nothing; one on a mirror directory reached through
  // /proc/self/fd/N still anchors *at() calls.
  if ((flags & O_PATH) != 0) {
    if (names_fd && active()) (void)adopt_fd(fd);
    return fd;
  }
  if (g_partial_count.load(std::memory_order_relaxed) == 0 && !names_fd) return fd;
  if (int rc = note_reopen(fd, names_fd); rc != 0) {
    REAL(close)(fd);
    return fail(rc);
  }
  return fd;
}

mode_t mode_arg(int flags, va_list args) {
  // The mode exists only when the flags ask for one.
  return (flags & (O_CREAT | O_TMPFILE)) != 0 ? static_cast<mode_t>(va_arg(args, int)) : 0;
}

bool stdio_writes(const char* mode) { return mode != nullptr && std::strpbrk(mode, "wa+") != nullptr; }

// A stdio mode as open flags (as glibc reads it: the first letter, then
// '+', 'x', 'e' anywhere after).
int stdio_open_flags(const char* mode) {
  int flags = mode[0] == 'w' ? O_WRONLY | O_CREAT | O_TRUNC : mode[0] == 'a' ? O_WRONLY | O_CREAT | O_APPEND : O_RDONLY;
  if (std::strchr(mode, '+') != nullptr) flags = (flags & ~O_ACCMODE) | O_RDWR;
  if (std::strchr(mode, 'x') != nullptr) flags |= O_EXCL;
  if (std::strchr(mode, 'e') != nullptr) flags |= O_CLOEXEC;
  return flags;
}

// A stdio open to write a mapped path: the error the kernel gives on a
// read-only mount (EROFS, or ENOENT, EEXIST, EISDIR before it).
FILE* refuse_stdio_write(const Target& t, const char* mode) {
  const int fd = open_mapped(t, stdio_open_flags(mode), 0666, false);
  if (fd >= 0) {  // (open_mapped never opens a mapped path to write)
    forget_fd(fd);
    REAL(close)(fd);
    return errno = EROFS, nullptr;
  }
  return errno = -fd, nullptr;
}

FILE* fopen_path(const char* path, const char* mode, FILE* (*real)(const char*, const char*)) {
  if (path != nullptr && stdio_writes(mode) && t_depth == 0 && names_an_open_fd(path) && active() &&
      names_a_mirror_file(path)) {
    return errno = EROFS, nullptr;
  }
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    if (real == nullptr) return errno = ENOSYS, nullptr;
    if (t.synthetic && stdio_writes(mode)) {
      if (int rc = refuse_synthetic_write(t, stdio_open_flags(mode)); rc != 0) return errno = -rc, nullptr;
    }
    FILE* f = real(pass_path(t, path), mode);
    if (f == nullptr || t_depth != 0) return f;
    const bool names_fd = names_an_open_fd(path);
    if (g_partial_count.load(std::memory_order_relaxed) == 0 && !names_fd) return f;
    // stdio reads past the hooks: a reopened partial file is completed now.
    int rc = note_reopen(fileno(f), names_fd);
    if (rc == 0) rc = complete_fd(fileno(f));
    if (rc != 0) {
      fclose(f);
      return errno = -rc, nullptr;
    }
    return f;
  }
  if (stdio_writes(mode)) return refuse_stdio_write(t, mode);
  // stdio reads through its own calls, which no hook sees: the file must be
  // complete, unless the daemon's kernel guard fills what they read (then a
  // file larger than the cache streams through it, as through read()).
  int flags = O_RDONLY | (std::strchr(mode, 'e') != nullptr ? O_CLOEXEC : 0);
  int fd = open_mapped(t, flags, 0, false);
  if (fd < 0) return errno = -fd, nullptr;
  // Asked after the open: a first open starts the daemon and maps the index.
  if (!kernel_guard_on()) {
    if (int rc = complete_fd(fd); rc != 0) {
      forget_fd(fd);
      REAL(close)(fd);
      return errno = -rc, nullptr;
    }
  }
  FILE* f = REAL(fdopen)(fd, mode);
  if (f == nullptr) {
    int err = errno;
    forget_fd(fd);
    REAL(close)(fd);
    errno = err;
  }
  return f;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int open(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_arg(flags, args);
  va_end(args);
  return open_path(AT_FDCWD, path, flags, mode);
}

__attribute__((visibility("default"))) int open64(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_arg(flags, args);
  va_end(args);
  return open_path(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

__attribute__((visibility("default"))) int __open_2(const char* path, int flags) {
  return open_path(AT_FDCWD, path, flags, 0);
}

__attribute__((visibility("default"))) int __open64_2(const char* path, int flags) {
  return open_path(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_arg(flags, args);
  va_end(args);
  return open_path(dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  mode_t mode = mode_arg(flags, args);
  va_end(args);
  return open_path(dirfd, path, flags | O_LARGEFILE, mode);
}

__attribute__((visibility("default"))) int __openat_2(int dirfd, const char* path, int flags) {
  return open_path(dirfd, path, flags, 0);
}

__attribute__((visibility("default"))) int __openat64_2(int dirfd, const char* path, int flags) {
  return open_path(dirfd, path, flags | O_LARGEFILE, 0);
}

__attribute__((visibility("default"))) int creat(const char* path, mode_t mode) {
  return open_path(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

__attribute__((visibility("default"))) int creat64(const char* path, mode_t mode) {
  return open_path(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode);
}

__attribute__((visibility("default"))) FILE* fopen(const char* path, const char* mode) {
  return fopen_path(path, mode, REAL(fopen));
}

__attribute__((visibility("default"))) FILE* fopen64(const char* path, const char* mode) {
  return fopen_path(path, mode, REAL(fopen64));
}

__attribute__((visibility("default"))) FILE* freopen(const char* path, const char* mode, FILE* stream) {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    if (t.synthetic && stdio_writes(mode)) {
      if (int rc = refuse_synthetic_write(t, stdio_open_flags(mode)); rc != 0) return errno = -rc, nullptr;
    }
    return REAL(freopen)(pass_path(t, path), mode, stream);
  }
  if (stdio_writes(mode)) return refuse_stdio_write(t, mode);
  // Held open across the reopen: the stream must end up on this very file.
  int fd = open_mapped(t, O_RDONLY | O_CLOEXEC, 0, true);
  if (fd < 0) return errno = -fd, nullptr;
  FILE* f = REAL(freopen)(t.mirror, mode, stream);
  struct stat mine {}, theirs {};
  if (f != nullptr && (REAL(fstat)(fd, &mine) != 0 || REAL(fstat)(fileno(f), &theirs) != 0 ||
                       mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev)) {
    // Replaced in between: put the stream on the descriptor we checked.
    REAL(dup2)(fd, fileno(f));
  }
  REAL(close)(fd);
  return f;
}

__attribute__((visibility("default"))) FILE* freopen64(const char* path, const char* mode, FILE* stream) {
  return freopen(path, mode, stream);
}

}  // extern "C"
