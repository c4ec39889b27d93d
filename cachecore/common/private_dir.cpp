#include "common/private_dir.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace dscache {
namespace {

constexpr int kMaxLinks = 40;  // as the kernel's ELOOP limit

// The path walked so far, for messages.
struct Shown {
  char text[PATH_MAX] = "/";
  size_t length = 1;
  void push(const char* name, size_t n) {
    if (n == 2 && name[0] == '.' && name[1] == '.') {
      while (length > 1 && text[length - 1] != '/') --length;
      if (length > 1) --length;
      text[length] = '\0';
      return;
    }
    if (length > 1 && length + 1 < sizeof text) text[length++] = '/';
    size_t copy = n < sizeof text - length - 1 ? n : sizeof text - length - 1;
    std::memcpy(text + length, name, copy);
    length += copy;
    text[length] = '\0';
  }
};

__attribute__((format(printf, 4, 5))) int fail(char* error, size_t size, int err, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(error, size, format, args);
  va_end(args);
  return -err;
}

bool trusted_owner(uid_t uid, uid_t owner) { return uid == 0 || uid == ::geteuid() || uid == owner; }

bool writable_by_others(const struct stat& st) { return (st.st_mode & (S_IWGRP | S_IWOTH)) != 0; }

}  // namespace

int open_private_dir(const char* path, const PrivateDirOptions& options, char* error, size_t error_size) {
  if (path == nullptr || path[0] != '/') {
    std::snprintf(error, error_size, "the cache directory '%s' is not an absolute path", path != nullptr ? path : "");
    return -EINVAL;
  }
  // What is left to walk; a link's target is put in front of the rest.
  char rest[PATH_MAX * 2];
  if (std::snprintf(rest, sizeof rest, "%s", path) >= static_cast<int>(sizeof rest)) {
    return fail(error, error_size, ENAMETOOLONG, "%s: path too long", path);
  }
  Shown shown;
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail(error, error_size, errno, "/: %s", std::strerror(errno));
  int links = 0;
  size_t pos = 0;
  while (true) {
    while (rest[pos] == '/') ++pos;
    if (rest[pos] == '\0') break;
    size_t end = pos;
    while (rest[end] != '\0' && rest[end] != '/') ++end;
    char name[NAME_MAX + 1];
    if (end - pos > NAME_MAX) {
      ::close(dir);
      return fail(error, error_size, ENAMETOOLONG, "%s: a path component is too long", path);
    }
    std::memcpy(name, rest + pos, end - pos);
    name[end - pos] = '\0';
    size_t next = end;
    while (rest[next] == '/') ++next;
    const bool last = rest[next] == '\0';
    pos = end;
    if (std::strcmp(name, ".") == 0) continue;
    shown.push(name, std::strlen(name));

    struct stat st {};
    if (::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      int err = errno;
      if (err == ENOENT && options.create) {
        if (::mkdirat(dir, name, options.mode) != 0 && errno != EEXIST) err = errno;
        if (::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) err = 0;
      }
      if (err != 0) {
        ::close(dir);
        std::snprintf(error, error_size, "%s: %s", shown.text, std::strerror(err));
        return -err;
      }
    }
    if (S_ISLNK(st.st_mode)) {
      if (!trusted_owner(st.st_uid, options.owner)) {
        ::close(dir);
        return fail(error, error_size, EPERM,
                    "%s is a symbolic link that belongs to uid %u, not to this user (uid %u) or root: not following "
                    "it (another user may have planted it)",
                    shown.text, static_cast<unsigned>(st.st_uid), static_cast<unsigned>(::geteuid()));
      }
      if (++links > kMaxLinks) {
        ::close(dir);
        return fail(error, error_size, ELOOP, "%s: too many levels of symbolic links", path);
      }
      char target[PATH_MAX];
      ssize_t n = ::readlinkat(dir, name, target, sizeof target - 1);
      if (n <= 0) {
        int err = n < 0 ? errno : ENOENT;
        ::close(dir);
        std::snprintf(error, error_size, "%s: %s", shown.text, std::strerror(err));
        return -err;
      }
      target[n] = '\0';
      char joined[PATH_MAX * 2];
      if (std::snprintf(joined, sizeof joined, "%s%s", target, rest + end) >= static_cast<int>(sizeof joined)) {
        ::close(dir);
        return fail(error, error_size, ENAMETOOLONG, "%s: path too long after following links", path);
      }
      std::memcpy(rest, joined, std::strlen(joined) + 1);
      pos = 0;
      shown.push("..", 2);
      if (target[0] == '/') {
        ::close(dir);
        dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) return fail(error, error_size, errno, "/: %s", std::strerror(errno));
        shown = Shown{};
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      ::close(dir);
      return fail(error, error_size, ENOTDIR, "%s: not a directory", shown.text);
    }
    const int flags = (last ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int child = ::openat(dir, name, flags);
    struct stat opened {};
    if (child < 0 || ::fstat(child, &opened) != 0 || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) {
      int err = child < 0 ? errno : EAGAIN;
      if (child >= 0) ::close(child);
      ::close(dir);
      std::snprintf(error, error_size, "%s: %s", shown.text,
                    err == EAGAIN ? "replaced while it was checked" : std::strerror(err));
      return -err;
    }
    ::close(dir);
    dir = child;
    if (last) {
      if (opened.st_uid != options.owner) {
        ::close(dir);
        if (opened.st_uid == 0) {
          return fail(error, error_size, EPERM,
                      "%s belongs to root, not to this user (uid %u): if a system daemon serves it, set "
                      "DSCACHE_SYSTEM_DAEMON=1; else choose another DSCACHE_CACHE_DIR",
                      shown.text, static_cast<unsigned>(options.owner));
        }
        return fail(error, error_size, EPERM,
                    "%s belongs to uid %u, not to uid %u: not using it as the cache directory (another user could "
                    "change what it serves; remove it or choose another DSCACHE_CACHE_DIR)",
                    shown.text, static_cast<unsigned>(opened.st_uid), static_cast<unsigned>(options.owner));
      }
      if (writable_by_others(opened)) {
        ::close(dir);
        return fail(error, error_size, EPERM,
                    "%s is writable by other users (mode %03o): not using it as the cache directory (chmod go-w it, "
                    "or choose another DSCACHE_CACHE_DIR)",
                    shown.text, static_cast<unsigned>(opened.st_mode & 07777));
      }
      return dir;
    }
    if (!trusted_owner(opened.st_uid, options.owner)) {
      ::close(dir);
      return fail(error, error_size, EPERM,
                  "%s belongs to uid %u, not to this user (uid %u) or root: the cache directory below it is not "
                  "safe (that user could replace it)",
                  shown.text, static_cast<unsigned>(opened.st_uid), static_cast<unsigned>(::geteuid()));
    }
    if (writable_by_others(opened) && (opened.st_mode & S_ISVTX) == 0) {
      ::close(dir);
      return fail(error, error_size, EPERM,
                  "%s is writable by other users and not sticky (mode %03o): the cache directory below it is not "
                  "safe (they could replace it)",
                  shown.text, static_cast<unsigned>(opened.st_mode & 07777));
    }
  }
  // The path was "/" or ended in a link to it.
  ::close(dir);
  return fail(error, error_size, EINVAL, "%s: not usable as the cache directory", path);
}

int open_private_subdir(int dir_fd, const char* dir_path, const char* name, uid_t owner, unsigned mode, char* error,
                        size_t error_size) {
  if (::mkdirat(dir_fd, name, mode) != 0 && errno != EEXIST) {
    int err = errno;
    std::snprintf(error, error_size, "%s/%s: cannot create directory: %s", dir_path, name, std::strerror(err));
    return -err;
  }
  int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::snprintf(error, error_size, "%s/%s: %s", dir_path, name,
                  err == ELOOP || err == ENOTDIR ? "not a directory (a link or a file is in its place)"
                                                 : std::strerror(err));
    return -err;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_uid != owner) {
    ::close(fd);
    std::snprintf(error, error_size, "%s/%s belongs to uid %u, not to uid %u: not using it", dir_path, name,
                  static_cast<unsigned>(st.st_uid), static_cast<unsigned>(owner));
    return -EPERM;
  }
  return fd;
}

}  // namespace dscache
