// Directories and names: opendir, chdir/fchdir, getcwd, realpath. The program
// always sees its own paths, never the mirror's.
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

// Rewrites a mirror path in `buf` (capacity `size`) into the program's path.
// false (ERANGE) if it does not fit.
bool to_user_in_place(char* buf, size_t size) {
  char user[dscache::kMaxPathLength];
  if (!mirror_to_user(buf, user, sizeof user)) return true;
  size_t n = std::strlen(user);
  if (n + 1 > size) return false;
  std::memcpy(buf, user, n + 1);
  return true;
}

// A malloc'd mirror path becomes a malloc'd program path.
char* to_user_malloced(char* path) {
  if (path == nullptr) return nullptr;
  char user[dscache::kMaxPathLength];
  if (!mirror_to_user(path, user, sizeof user)) return path;
  std::free(path);
  return strdup(user);
}

// readlink(at): a mapped path reads the mirror's link; a link that names an
// open fd (/proc/self/fd/N, /proc/self/cwd, /dev/fd/N) shows the program's
// path of a mirror file, not the mirror's.
ssize_t readlink_common(int dirfd, const char* path, char* buf, size_t size) {
  Target t;
  if (route(dirfd, path, t) == Route::mapped) {
    if (int rc = prepare_lookup(t); rc != 0) return fail(rc);
    return REAL(readlinkat)(t.at_fd, t.at_path, buf, size);
  }
  if (t.real_path != nullptr) return REAL(readlinkat)(AT_FDCWD, t.real_path, buf, size);
  if (path == nullptr || t_depth != 0 || !active() ||
      !(names_an_open_fd(path) || (dirfd != AT_FDCWD && path[0] != '/'))) {
    return REAL(readlinkat)(dirfd, path, buf, size);
  }
  char target[dscache::kMaxPathLength];
  ssize_t n = REAL(readlinkat)(dirfd, path, target, sizeof target - 1);
  if (n < 0) return n;
  target[n] = '\0';
  char user[dscache::kMaxPathLength];
  const char* shown = mirror_to_user(target, user, sizeof user) ? user : target;
  const size_t length = std::min(std::strlen(shown), size);  // readlink truncates silently
  std::memcpy(buf, shown, length);
  return static_cast<ssize_t>(length);
}

char* realpath_common(const char* path, char* resolved, size_t resolved_size) {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    char* r = REAL(realpath)(pass_path(t, path), resolved);
    if (r == nullptr || !t.synthetic) return r;
    // A stand-in above the mounts resolves to itself: shown as the program's path.
    if (r != resolved) return to_user_malloced(r);
    return to_user_in_place(r, resolved_size) ? r : (errno = ENAMETOOLONG, nullptr);
  }
  if (int rc = prepare_lookup(t); rc != 0) return errno = -rc, nullptr;
  char mirror_resolved[PATH_MAX];
  if (REAL(realpath)(t.mirror, mirror_resolved) == nullptr) return nullptr;
  char user[PATH_MAX];
  if (!mirror_to_user(mirror_resolved, user, sizeof user)) std::snprintf(user, sizeof user, "%s", mirror_resolved);
  if (resolved == nullptr) return strdup(user);
  if (std::strlen(user) + 1 > resolved_size) return errno = ENAMETOOLONG, nullptr;
  std::memcpy(resolved, user, std::strlen(user) + 1);
  return resolved;
}

// readdir of a directory above a mount: the disk's entries, then the names
// toward mounts that the disk lacks (errno as readdir leaves it at the end).
template <class Dirent>
Dirent* read_entry(DIR* dir, Dirent* (*real)(DIR*)) {
  if (g_above_listings.load(std::memory_order_relaxed) == 0 || dir == nullptr) return real(dir);
  const int fd = dirfd(dir);
  if (!has_above_listing(fd)) return real(dir);
  const int saved = errno;
  errno = 0;
  Dirent* e = real(dir);
  if (e != nullptr || errno != 0) {
    if (e != nullptr) errno = saved;
    return e;
  }
  errno = saved;
  static_assert(sizeof(struct dirent) == sizeof(struct dirent64) &&
                offsetof(struct dirent, d_name) == offsetof(struct dirent64, d_name));
  return reinterpret_cast<Dirent*>(above_next_entry(fd, telldir(dir)));
}

// (libc declares its DIR* arguments non-null; a program may pass null all the same.)
int fd_of(DIR* dir) { return dir != nullptr ? dirfd(dir) : -1; }

template <class Dirent>
int read_entry_r(DIR* dir, Dirent* entry, Dirent** result, Dirent* (*real)(DIR*)) {
  const int saved = errno;
  errno = 0;
  Dirent* e = read_entry(dir, real);
  const int err = errno;
  errno = saved;
  if (e == nullptr) {
    *result = nullptr;
    return err;
  }
  std::memcpy(entry, e, e->d_reclen < sizeof *entry ? e->d_reclen : sizeof *entry);
  *result = entry;
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) ssize_t readlink(const char* path, char* buf, size_t size) noexcept {
  return readlink_common(AT_FDCWD, path, buf, size);
}
__attribute__((visibility("default"))) ssize_t readlinkat(int dirfd, const char* path, char* buf,
                                                          size_t size) noexcept {
  return readlink_common(dirfd, path, buf, size);
}
// The fortified forms (_FORTIFY_SOURCE with a buffer of known size).
__attribute__((visibility("default"))) ssize_t __readlink_chk(const char* path, char* buf, size_t size,
                                                              size_t buflen) noexcept {
  if (size > buflen) __builtin_trap();  // glibc's __chk_fail: a buffer overflow caught
  return readlink_common(AT_FDCWD, path, buf, size);
}
__attribute__((visibility("default"))) ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t size,
                                                                size_t buflen) noexcept {
  if (size > buflen) __builtin_trap();
  return readlink_common(dirfd, path, buf, size);
}

__attribute__((visibility("default"))) struct dirent* readdir(DIR* dir) { return read_entry(dir, REAL(readdir)); }

__attribute__((visibility("default"))) struct dirent64* readdir64(DIR* dir) {
  return read_entry(dir, REAL(readdir64));
}

__attribute__((visibility("default"))) int readdir_r(DIR* dir, struct dirent* entry, struct dirent** result) {
  if (g_above_listings.load(std::memory_order_relaxed) == 0) return REAL(readdir_r)(dir, entry, result);
  return read_entry_r(dir, entry, result, REAL(readdir));
}

__attribute__((visibility("default"))) int readdir64_r(DIR* dir, struct dirent64* entry, struct dirent64** result) {
  if (g_above_listings.load(std::memory_order_relaxed) == 0) return REAL(readdir64_r)(dir, entry, result);
  return read_entry_r(dir, entry, result, REAL(readdir64));
}

__attribute__((visibility("default"))) void rewinddir(DIR* dir) {
  if (const int fd = fd_of(dir); has_above_listing(fd)) rewind_above_listing(fd, -1);
  REAL(rewinddir)(dir);
}

__attribute__((visibility("default"))) void seekdir(DIR* dir, long position) {
  if (const int fd = fd_of(dir); has_above_listing(fd)) rewind_above_listing(fd, position);
  REAL(seekdir)(dir, position);
}

__attribute__((visibility("default"))) int closedir(DIR* dir) {
  // libc closes the fd itself, past the close hook: what the shim knew of it goes now.
  if (const int fd = fd_of(dir); t_depth == 0 && is_mapped_dirfd(fd)) forget_fd(fd);
  return REAL(closedir)(dir);
}

__attribute__((visibility("default"))) DIR* opendir(const char* path) {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    DIR* dir = REAL(opendir)(pass_path(t, path));
    if (dir != nullptr && (t.above >= 0 || t.synthetic)) note_above_fd(dirfd(dir), t);
    return dir;
  }
  if (int rc = prepare_directory(t); rc != 0) return errno = -rc, nullptr;
  DIR* dir = open_mirror_dir(t);
  if (dir != nullptr) mark_mapped_dirfd(dirfd(dir));  // it may anchor *at() calls (fts, dir_fd=)
  return dir;
}

__attribute__((visibility("default"))) char* realpath(const char* path, char* resolved) noexcept {
  return realpath_common(path, resolved, PATH_MAX);
}

__attribute__((visibility("default"))) char* __realpath_chk(const char* path, char* resolved,
                                                           size_t resolvedlen) noexcept {
  return realpath_common(path, resolved, resolvedlen);
}

__attribute__((visibility("default"))) char* canonicalize_file_name(const char* path) noexcept {
  return realpath_common(path, nullptr, PATH_MAX);
}

__attribute__((visibility("default"))) int chdir(const char* path) noexcept {
  Target t;
  if (route(AT_FDCWD, path, t) != Route::mapped) {
    int rc = REAL(chdir)(pass_path(t, path));
    if (rc == 0 && active()) refresh_cwd();
    return rc;
  }
  if (int rc = prepare_directory(t); rc != 0) return fail(rc);
  int rc = REAL(chdir)(t.mirror);
  if (rc == 0) refresh_cwd();
  return rc;
}

__attribute__((visibility("default"))) int fchdir(int fd) noexcept {
  int rc = REAL(fchdir)(fd);
  if (rc == 0 && active()) refresh_cwd();
  return rc;
}

__attribute__((visibility("default"))) char* getcwd(char* buf, size_t size) noexcept {
  if (buf == nullptr || !active()) {
    char* r = REAL(getcwd)(buf, size);
    return r != nullptr && active() ? to_user_malloced(r) : r;
  }
  if (size == 0) return errno = EINVAL, nullptr;
  // The mirror's path may be longer than the user's: the size is the user
  // path's to meet (a 25-byte cwd fits a 48-byte buffer, as without the shim).
  char mirror[PATH_MAX];
  if (REAL(getcwd)(mirror, sizeof mirror) == nullptr) {
    if (errno != ERANGE) return nullptr;
    return REAL(getcwd)(buf, size);  // longer than PATH_MAX: as it is
  }
  if (!to_user_in_place(mirror, sizeof mirror)) return errno = ERANGE, nullptr;
  const size_t length = std::strlen(mirror);
  if (length + 1 > size) return errno = ERANGE, nullptr;
  std::memcpy(buf, mirror, length + 1);
  return buf;
}

__attribute__((visibility("default"))) char* getwd(char* buf) noexcept {
  // glibc's getwd: a PATH_MAX buffer, and the error's text in it on failure.
  if (getcwd(buf, PATH_MAX) != nullptr) return buf;
  const int err = errno;
  std::snprintf(buf, PATH_MAX, "%s", std::strerror(err));
  errno = err;
  return nullptr;
}

__attribute__((visibility("default"))) char* __getwd_chk(char* buf, size_t buflen) noexcept {
  // As glibc's: the cwd into the buffer's known size; one that does not fit
  // is a buffer overflow caught (__chk_fail).
  char* r = getcwd(buf, buflen);
  if (r == nullptr && errno == ERANGE) __builtin_trap();
  return r;
}

__attribute__((visibility("default"))) char* __getcwd_chk(char* buf, size_t size, size_t buflen) noexcept {
  if (size > buflen) size = buflen;
  return getcwd(buf, size);
}

__attribute__((visibility("default"))) char* get_current_dir_name(void) noexcept {
  char* r = REAL(get_current_dir_name)();
  return active() ? to_user_malloced(r) : r;
}

}  // extern "C"
