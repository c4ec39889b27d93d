// Every libc header whose functions the shim interposes, in one place, so
// that the definitions in hooks_*.cpp match libc's own declarations.
#pragma once

#include <aio.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <ftw.h>
#include <glob.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

extern "C" {
#include <sys/pidfd.h>  // (glibc 2.36's lacks the C linkage block)
// Not declared by the headers (or only under conditions we do not want).
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
char* __realpath_chk(const char* path, char* resolved, size_t resolvedlen) noexcept;
char* __getcwd_chk(char* buf, size_t size, size_t buflen) noexcept;
char* __getwd_chk(char* buf, size_t buflen) noexcept;
ssize_t __readlink_chk(const char* path, char* buf, size_t size, size_t buflen) noexcept;
ssize_t __readlinkat_chk(int dirfd, const char* path, char* buf, size_t size, size_t buflen) noexcept;
ssize_t __read_chk(int fd, void* buf, size_t count, size_t buflen);
ssize_t __pread_chk(int fd, void* buf, size_t count, off_t offset, size_t buflen);
ssize_t __pread64_chk(int fd, void* buf, size_t count, off64_t offset, size_t buflen);
int __xstat(int ver, const char* path, struct stat* st) noexcept;
int __xstat64(int ver, const char* path, struct stat64* st) noexcept;
int __lxstat(int ver, const char* path, struct stat* st) noexcept;
int __lxstat64(int ver, const char* path, struct stat64* st) noexcept;
int __fxstat(int ver, int fd, struct stat* st) noexcept;
int __fxstat64(int ver, int fd, struct stat64* st) noexcept;
int __fxstatat(int ver, int dirfd, const char* path, struct stat* st, int flags) noexcept;
int __fxstatat64(int ver, int dirfd, const char* path, struct stat64* st, int flags) noexcept;
}
