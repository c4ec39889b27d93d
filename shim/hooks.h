// The one table of every function libdscache.so interposes.
//
// Each row: X(kind, return type, name, (parameters), (arguments), exception spec)
// The table generates the pointers to the real functions (real.h), the
// exported definitions of the simple kinds (hooks_generated.cpp), and the
// list of symbols a test checks the library exports (symbols.cpp).
//
// Kinds:
//   custom       written by hand (open, stat, read, ... in hooks_*.cpp)
//   lookup1      path first: rewritten into the mirror after its directory is listed
//   mutate1      path first: EROFS under a mount (or at a directory above one
//                that only the cache has), else passed through (with the path
//                `..` took out of a mount, as for every kind below)
//   create1      path first, creates it: EEXIST if it exists, else EROFS (as the kernel orders them)
//   create_at    (dirfd, path, ...): the same
//   create_link  symlink (target, path): the same checks on path
//   create_linkat symlinkat (target, dirfd, path): the same
//   create_tmpl  mkstemp and kin: as create1, but the template is the caller's
//                to fill in, so it is never replaced by another path
//   mutate_at    (dirfd, path, ...): the same
//   mutate2      (path, path): EROFS if either is under a mount
//   mutate_at2   (dirfd, path, dirfd, path, ...): the same
//   mutate_fd    (fd, ...): EROFS if fd is on a mirror file or directory
//   write_fd     (fd, ...): needs a writable fd, which the shim never hands out
//                for a mirror file: checked only when the call fails, so that
//                writers of other files pay nothing (their EBADF/EINVAL → EROFS)
#pragma once

#define DSC_NOTHROW noexcept
#define DSC_MAYTHROW

// clang-format off
#define DSCACHE_HOOKS(X) \
  /* opening files */ \
  X(custom, int, open, (const char* path, int flags, ...), (path, flags), DSC_MAYTHROW) \
  X(custom, int, open64, (const char* path, int flags, ...), (path, flags), DSC_MAYTHROW) \
  X(custom, int, __open_2, (const char* path, int flags), (path, flags), DSC_MAYTHROW) \
  X(custom, int, __open64_2, (const char* path, int flags), (path, flags), DSC_MAYTHROW) \
  X(custom, int, openat, (int dirfd, const char* path, int flags, ...), (dirfd, path, flags), DSC_MAYTHROW) \
  X(custom, int, openat64, (int dirfd, const char* path, int flags, ...), (dirfd, path, flags), DSC_MAYTHROW) \
  X(custom, int, __openat_2, (int dirfd, const char* path, int flags), (dirfd, path, flags), DSC_MAYTHROW) \
  X(custom, int, __openat64_2, (int dirfd, const char* path, int flags), (dirfd, path, flags), DSC_MAYTHROW) \
  X(custom, int, creat, (const char* path, mode_t mode), (path, mode), DSC_MAYTHROW) \
  X(custom, int, creat64, (const char* path, mode_t mode), (path, mode), DSC_MAYTHROW) \
  X(custom, FILE*, fopen, (const char* path, const char* mode), (path, mode), DSC_MAYTHROW) \
  X(custom, FILE*, fopen64, (const char* path, const char* mode), (path, mode), DSC_MAYTHROW) \
  X(custom, FILE*, freopen, (const char* path, const char* mode, FILE* stream), (path, mode, stream), DSC_MAYTHROW) \
  X(custom, FILE*, freopen64, (const char* path, const char* mode, FILE* stream), (path, mode, stream), DSC_MAYTHROW) \
  /* file status */ \
  X(custom, int, stat, (const char* path, struct stat* st), (path, st), DSC_NOTHROW) \
  X(custom, int, stat64, (const char* path, struct stat64* st), (path, st), DSC_NOTHROW) \
  X(custom, int, lstat, (const char* path, struct stat* st), (path, st), DSC_NOTHROW) \
  X(custom, int, lstat64, (const char* path, struct stat64* st), (path, st), DSC_NOTHROW) \
  X(custom, int, fstatat, (int dirfd, const char* path, struct stat* st, int flags), (dirfd, path, st, flags), DSC_NOTHROW) \
  X(custom, int, fstatat64, (int dirfd, const char* path, struct stat64* st, int flags), (dirfd, path, st, flags), DSC_NOTHROW) \
  X(custom, int, fstat, (int fd, struct stat* st), (fd, st), DSC_NOTHROW) \
  X(custom, int, fstat64, (int fd, struct stat64* st), (fd, st), DSC_NOTHROW) \
  X(custom, int, __xstat, (int ver, const char* path, struct stat* st), (ver, path, st), DSC_NOTHROW) \
  X(custom, int, __xstat64, (int ver, const char* path, struct stat64* st), (ver, path, st), DSC_NOTHROW) \
  X(custom, int, __lxstat, (int ver, const char* path, struct stat* st), (ver, path, st), DSC_NOTHROW) \
  X(custom, int, __lxstat64, (int ver, const char* path, struct stat64* st), (ver, path, st), DSC_NOTHROW) \
  X(custom, int, __fxstat, (int ver, int fd, struct stat* st), (ver, fd, st), DSC_NOTHROW) \
  X(custom, int, __fxstat64, (int ver, int fd, struct stat64* st), (ver, fd, st), DSC_NOTHROW) \
  X(custom, int, __fxstatat, (int ver, int dirfd, const char* path, struct stat* st, int flags), (ver, dirfd, path, st, flags), DSC_NOTHROW) \
  X(custom, int, __fxstatat64, (int ver, int dirfd, const char* path, struct stat64* st, int flags), (ver, dirfd, path, st, flags), DSC_NOTHROW) \
  X(custom, int, statx, (int dirfd, const char* path, int flags, unsigned int mask, struct statx* stx), (dirfd, path, flags, mask, stx), DSC_NOTHROW) \
  X(custom, int, access, (const char* path, int mode), (path, mode), DSC_NOTHROW) \
  X(custom, int, faccessat, (int dirfd, const char* path, int mode, int flags), (dirfd, path, mode, flags), DSC_NOTHROW) \
  X(custom, int, euidaccess, (const char* path, int mode), (path, mode), DSC_NOTHROW) \
  X(custom, int, eaccess, (const char* path, int mode), (path, mode), DSC_NOTHROW) \
  X(custom, int, name_to_handle_at, (int dirfd, const char* path, struct file_handle* handle, int* mount_id, int flags), (dirfd, path, handle, mount_id, flags), DSC_NOTHROW) \
  X(custom, int, inotify_add_watch, (int fd, const char* path, uint32_t mask), (fd, path, mask), DSC_NOTHROW) \
  X(custom, int, open_by_handle_at, (int mount_fd, struct file_handle* handle, int flags), (mount_fd, handle, flags), DSC_MAYTHROW) \
  X(custom, int, fstatfs, (int fd, struct statfs* buf), (fd, buf), DSC_NOTHROW) \
  X(custom, int, fstatfs64, (int fd, struct statfs64* buf), (fd, buf), DSC_NOTHROW) \
  X(custom, int, fstatvfs, (int fd, struct statvfs* buf), (fd, buf), DSC_NOTHROW) \
  X(custom, int, fstatvfs64, (int fd, struct statvfs64* buf), (fd, buf), DSC_NOTHROW) \
  X(custom, ssize_t, readlink, (const char* path, char* buf, size_t size), (path, buf, size), DSC_NOTHROW) \
  X(custom, ssize_t, readlinkat, (int dirfd, const char* path, char* buf, size_t size), (dirfd, path, buf, size), DSC_NOTHROW) \
  X(custom, ssize_t, __readlink_chk, (const char* path, char* buf, size_t size, size_t buflen), (path, buf, size, buflen), DSC_NOTHROW) \
  X(custom, ssize_t, __readlinkat_chk, (int dirfd, const char* path, char* buf, size_t size, size_t buflen), (dirfd, path, buf, size, buflen), DSC_NOTHROW) \
  X(lookup1, int, statfs, (const char* path, struct statfs* buf), (path, buf), DSC_NOTHROW) \
  X(lookup1, int, statfs64, (const char* path, struct statfs64* buf), (path, buf), DSC_NOTHROW) \
  X(lookup1, int, statvfs, (const char* path, struct statvfs* buf), (path, buf), DSC_NOTHROW) \
  X(lookup1, int, statvfs64, (const char* path, struct statvfs64* buf), (path, buf), DSC_NOTHROW) \
  X(lookup1, long, pathconf, (const char* path, int name), (path, name), DSC_NOTHROW) \
  X(lookup1, ssize_t, getxattr, (const char* path, const char* name, void* value, size_t size), (path, name, value, size), DSC_NOTHROW) \
  X(lookup1, ssize_t, lgetxattr, (const char* path, const char* name, void* value, size_t size), (path, name, value, size), DSC_NOTHROW) \
  X(lookup1, ssize_t, listxattr, (const char* path, char* list, size_t size), (path, list, size), DSC_NOTHROW) \
  X(lookup1, ssize_t, llistxattr, (const char* path, char* list, size_t size), (path, list, size), DSC_NOTHROW) \
  /* names and directories */ \
  X(custom, DIR*, opendir, (const char* path), (path), DSC_MAYTHROW) \
  X(custom, struct dirent*, readdir, (DIR* dir), (dir), DSC_MAYTHROW) \
  X(custom, struct dirent64*, readdir64, (DIR* dir), (dir), DSC_MAYTHROW) \
  X(custom, int, readdir_r, (DIR* dir, struct dirent* entry, struct dirent** result), (dir, entry, result), DSC_MAYTHROW) \
  X(custom, int, readdir64_r, (DIR* dir, struct dirent64* entry, struct dirent64** result), (dir, entry, result), DSC_MAYTHROW) \
  X(custom, void, rewinddir, (DIR* dir), (dir), DSC_MAYTHROW) \
  X(custom, void, seekdir, (DIR* dir, long position), (dir, position), DSC_MAYTHROW) \
  X(custom, int, closedir, (DIR* dir), (dir), DSC_MAYTHROW) \
  X(custom, int, scandir, (const char* dir, struct dirent*** namelist, int (*filter)(const struct dirent*), int (*compar)(const struct dirent**, const struct dirent**)), (dir, namelist, filter, compar), DSC_MAYTHROW) \
  X(custom, int, scandir64, (const char* dir, struct dirent64*** namelist, int (*filter)(const struct dirent64*), int (*compar)(const struct dirent64**, const struct dirent64**)), (dir, namelist, filter, compar), DSC_MAYTHROW) \
  X(custom, int, scandirat, (int dirfd, const char* dir, struct dirent*** namelist, int (*filter)(const struct dirent*), int (*compar)(const struct dirent**, const struct dirent**)), (dirfd, dir, namelist, filter, compar), DSC_MAYTHROW) \
  X(custom, int, scandirat64, (int dirfd, const char* dir, struct dirent64*** namelist, int (*filter)(const struct dirent64*), int (*compar)(const struct dirent64**, const struct dirent64**)), (dirfd, dir, namelist, filter, compar), DSC_MAYTHROW) \
  X(custom, int, glob, (const char* pattern, int flags, int (*errfunc)(const char*, int), glob_t* pglob), (pattern, flags, errfunc, pglob), DSC_NOTHROW) \
  X(custom, int, glob64, (const char* pattern, int flags, int (*errfunc)(const char*, int), glob64_t* pglob), (pattern, flags, errfunc, pglob), DSC_NOTHROW) \
  X(custom, int, nftw, (const char* dir, __nftw_func_t fn, int nopenfd, int flags), (dir, fn, nopenfd, flags), DSC_MAYTHROW) \
  X(custom, int, nftw64, (const char* dir, __nftw64_func_t fn, int nopenfd, int flags), (dir, fn, nopenfd, flags), DSC_MAYTHROW) \
  X(custom, int, ftw, (const char* dir, __ftw_func_t fn, int nopenfd), (dir, fn, nopenfd), DSC_MAYTHROW) \
  X(custom, int, ftw64, (const char* dir, __ftw64_func_t fn, int nopenfd), (dir, fn, nopenfd), DSC_MAYTHROW) \
  X(custom, char*, realpath, (const char* path, char* resolved), (path, resolved), DSC_NOTHROW) \
  X(custom, char*, __realpath_chk, (const char* path, char* resolved, size_t resolvedlen), (path, resolved, resolvedlen), DSC_NOTHROW) \
  X(custom, char*, canonicalize_file_name, (const char* path), (path), DSC_NOTHROW) \
  X(custom, int, chdir, (const char* path), (path), DSC_NOTHROW) \
  X(custom, int, fchdir, (int fd), (fd), DSC_NOTHROW) \
  X(custom, char*, getcwd, (char* buf, size_t size), (buf, size), DSC_NOTHROW) \
  X(custom, char*, __getcwd_chk, (char* buf, size_t size, size_t buflen), (buf, size, buflen), DSC_NOTHROW) \
  X(custom, char*, get_current_dir_name, (void), (), DSC_NOTHROW) \
  X(custom, char*, getwd, (char* buf), (buf), DSC_NOTHROW) \
  X(custom, char*, __getwd_chk, (char* buf, size_t buflen), (buf, buflen), DSC_NOTHROW) \
  /* reading partial files (large objects filled by block) */ \
  X(custom, ssize_t, read, (int fd, void* buf, size_t count), (fd, buf, count), DSC_MAYTHROW) \
  X(custom, ssize_t, __read_chk, (int fd, void* buf, size_t count, size_t buflen), (fd, buf, count, buflen), DSC_MAYTHROW) \
  X(custom, ssize_t, pread, (int fd, void* buf, size_t count, off_t offset), (fd, buf, count, offset), DSC_MAYTHROW) \
  X(custom, ssize_t, pread64, (int fd, void* buf, size_t count, off64_t offset), (fd, buf, count, offset), DSC_MAYTHROW) \
  X(custom, ssize_t, __pread_chk, (int fd, void* buf, size_t count, off_t offset, size_t buflen), (fd, buf, count, offset, buflen), DSC_MAYTHROW) \
  X(custom, ssize_t, __pread64_chk, (int fd, void* buf, size_t count, off64_t offset, size_t buflen), (fd, buf, count, offset, buflen), DSC_MAYTHROW) \
  X(custom, ssize_t, readv, (int fd, const struct iovec* iov, int iovcnt), (fd, iov, iovcnt), DSC_MAYTHROW) \
  X(custom, ssize_t, preadv, (int fd, const struct iovec* iov, int iovcnt, off_t offset), (fd, iov, iovcnt, offset), DSC_MAYTHROW) \
  X(custom, ssize_t, preadv64, (int fd, const struct iovec* iov, int iovcnt, off64_t offset), (fd, iov, iovcnt, offset), DSC_MAYTHROW) \
  X(custom, ssize_t, preadv2, (int fd, const struct iovec* iov, int iovcnt, off_t offset, int flags), (fd, iov, iovcnt, offset, flags), DSC_MAYTHROW) \
  X(custom, ssize_t, preadv64v2, (int fd, const struct iovec* iov, int iovcnt, off64_t offset, int flags), (fd, iov, iovcnt, offset, flags), DSC_MAYTHROW) \
  X(custom, off_t, lseek, (int fd, off_t offset, int whence), (fd, offset, whence), DSC_NOTHROW) \
  X(custom, off64_t, lseek64, (int fd, off64_t offset, int whence), (fd, offset, whence), DSC_NOTHROW) \
  /* what needs a partial file complete first */ \
  X(custom, void*, mmap, (void* addr, size_t length, int prot, int flags, int fd, off_t offset), (addr, length, prot, flags, fd, offset), DSC_NOTHROW) \
  X(custom, void*, mmap64, (void* addr, size_t length, int prot, int flags, int fd, off64_t offset), (addr, length, prot, flags, fd, offset), DSC_NOTHROW) \
  X(custom, ssize_t, sendfile, (int out_fd, int in_fd, off_t* offset, size_t count), (out_fd, in_fd, offset, count), DSC_NOTHROW) \
  X(custom, ssize_t, sendfile64, (int out_fd, int in_fd, off64_t* offset, size_t count), (out_fd, in_fd, offset, count), DSC_NOTHROW) \
  X(custom, ssize_t, copy_file_range, (int in_fd, off64_t* in_off, int out_fd, off64_t* out_off, size_t len, unsigned int flags), (in_fd, in_off, out_fd, out_off, len, flags), DSC_MAYTHROW) \
  X(custom, ssize_t, splice, (int in_fd, off64_t* in_off, int out_fd, off64_t* out_off, size_t len, unsigned int flags), (in_fd, in_off, out_fd, out_off, len, flags), DSC_MAYTHROW) \
  X(custom, FILE*, fdopen, (int fd, const char* mode), (fd, mode), DSC_NOTHROW) \
  X(custom, int, dup, (int fd), (fd), DSC_NOTHROW) \
  X(custom, int, dup2, (int fd, int fd2), (fd, fd2), DSC_NOTHROW) \
  X(custom, int, dup3, (int fd, int fd2, int flags), (fd, fd2, flags), DSC_NOTHROW) \
  X(custom, int, fcntl, (int fd, int cmd, ...), (fd, cmd), DSC_MAYTHROW) \
  X(custom, int, fcntl64, (int fd, int cmd, ...), (fd, cmd), DSC_MAYTHROW) \
  X(custom, ssize_t, recvmsg, (int fd, struct msghdr* message, int flags), (fd, message, flags), DSC_MAYTHROW) \
  X(custom, int, pidfd_getfd, (int pidfd, int targetfd, unsigned int flags), (pidfd, targetfd, flags), DSC_NOTHROW) \
  X(custom, int, ioctl, (int fd, unsigned long request, ...), (fd, request), DSC_NOTHROW) \
  X(custom, int, aio_read, (struct aiocb* cb), (cb), DSC_NOTHROW) \
  X(custom, int, aio_read64, (struct aiocb64* cb), (cb), DSC_NOTHROW) \
  X(custom, int, lio_listio, (int mode, struct aiocb* const list[], int count, struct sigevent* sev), (mode, list, count, sev), DSC_NOTHROW) \
  X(custom, int, lio_listio64, (int mode, struct aiocb64* const list[], int count, struct sigevent* sev), (mode, list, count, sev), DSC_NOTHROW) \
  X(custom, int, posix_fadvise, (int fd, off_t offset, off_t len, int advice), (fd, offset, len, advice), DSC_NOTHROW) \
  X(custom, int, posix_fadvise64, (int fd, off64_t offset, off64_t len, int advice), (fd, offset, len, advice), DSC_NOTHROW) \
  X(custom, int, close, (int fd), (fd), DSC_MAYTHROW) \
  X(custom, int, close_range, (unsigned int first, unsigned int last, int flags), (first, last, flags), DSC_NOTHROW) \
  X(custom, void, closefrom, (int lowfd), (lowfd), DSC_NOTHROW) \
  X(custom, int, execve, (const char* path, char* const argv[], char* const envp[]), (path, argv, envp), DSC_NOTHROW) \
  X(custom, int, execv, (const char* path, char* const argv[]), (path, argv), DSC_NOTHROW) \
  X(custom, int, execvp, (const char* file, char* const argv[]), (file, argv), DSC_NOTHROW) \
  X(custom, int, execvpe, (const char* file, char* const argv[], char* const envp[]), (file, argv, envp), DSC_NOTHROW) \
  X(custom, int, execl, (const char* path, const char* arg, ...), (path, arg), DSC_NOTHROW) \
  X(custom, int, execlp, (const char* file, const char* arg, ...), (file, arg), DSC_NOTHROW) \
  X(custom, int, execle, (const char* path, const char* arg, ...), (path, arg), DSC_NOTHROW) \
  X(custom, int, execveat, (int dirfd, const char* path, char* const argv[], char* const envp[], int flags), (dirfd, path, argv, envp, flags), DSC_NOTHROW) \
  X(custom, int, fexecve, (int fd, char* const argv[], char* const envp[]), (fd, argv, envp), DSC_NOTHROW) \
  X(custom, int, posix_spawn, (pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions, const posix_spawnattr_t* attr, char* const argv[], char* const envp[]), (pid, path, actions, attr, argv, envp), DSC_MAYTHROW) \
  X(custom, int, system, (const char* command), (command), DSC_MAYTHROW) \
  X(custom, FILE*, popen, (const char* command, const char* type), (command, type), DSC_MAYTHROW) \
  X(custom, int, posix_spawnp, (pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions, const posix_spawnattr_t* attr, char* const argv[], char* const envp[]), (pid, file, actions, attr, argv, envp), DSC_MAYTHROW) \
  X(custom, int, posix_spawn_file_actions_init, (posix_spawn_file_actions_t* actions), (actions), DSC_NOTHROW) \
  X(custom, int, posix_spawn_file_actions_destroy, (posix_spawn_file_actions_t* actions), (actions), DSC_NOTHROW) \
  X(custom, int, posix_spawn_file_actions_addopen, (posix_spawn_file_actions_t* actions, int fd, const char* path, int flags, mode_t mode), (actions, fd, path, flags, mode), DSC_NOTHROW) \
  X(custom, int, posix_spawn_file_actions_addchdir_np, (posix_spawn_file_actions_t* actions, const char* path), (actions, path), DSC_NOTHROW) \
  X(custom, int, posix_spawn_file_actions_addfchdir_np, (posix_spawn_file_actions_t* actions, int fd), (actions, fd), DSC_NOTHROW) \
  X(custom, int, posix_spawn_file_actions_adddup2, (posix_spawn_file_actions_t* actions, int fd, int new_fd), (actions, fd, new_fd), DSC_NOTHROW) \
  /* writes under a mount: EROFS */ \
  X(create1, int, mkdir, (const char* path, mode_t mode), (path, mode), DSC_NOTHROW) \
  X(create_at, int, mkdirat, (int dirfd, const char* path, mode_t mode), (dirfd, path, mode), DSC_NOTHROW) \
  X(mutate1, int, unlink, (const char* path), (path), DSC_NOTHROW) \
  X(mutate_at, int, unlinkat, (int dirfd, const char* path, int flags), (dirfd, path, flags), DSC_NOTHROW) \
  X(mutate1, int, rmdir, (const char* path), (path), DSC_NOTHROW) \
  X(mutate1, int, remove, (const char* path), (path), DSC_NOTHROW) \
  X(mutate2, int, rename, (const char* from, const char* to), (from, to), DSC_NOTHROW) \
  X(mutate_at2, int, renameat, (int fromfd, const char* from, int tofd, const char* to), (fromfd, from, tofd, to), DSC_NOTHROW) \
  X(mutate_at2, int, renameat2, (int fromfd, const char* from, int tofd, const char* to, unsigned int flags), (fromfd, from, tofd, to, flags), DSC_NOTHROW) \
  X(mutate2, int, link, (const char* from, const char* to), (from, to), DSC_NOTHROW) \
  X(mutate_at2, int, linkat, (int fromfd, const char* from, int tofd, const char* to, int flags), (fromfd, from, tofd, to, flags), DSC_NOTHROW) \
  X(create_link, int, symlink, (const char* target, const char* path), (target, path), DSC_NOTHROW) \
  X(create_linkat, int, symlinkat, (const char* target, int dirfd, const char* path), (target, dirfd, path), DSC_NOTHROW) \
  X(mutate1, int, truncate, (const char* path, off_t length), (path, length), DSC_NOTHROW) \
  X(mutate1, int, truncate64, (const char* path, off64_t length), (path, length), DSC_NOTHROW) \
  X(mutate1, int, chmod, (const char* path, mode_t mode), (path, mode), DSC_NOTHROW) \
  X(mutate1, int, lchmod, (const char* path, mode_t mode), (path, mode), DSC_NOTHROW) \
  X(mutate_at, int, fchmodat, (int dirfd, const char* path, mode_t mode, int flags), (dirfd, path, mode, flags), DSC_NOTHROW) \
  X(mutate1, int, chown, (const char* path, uid_t owner, gid_t group), (path, owner, group), DSC_NOTHROW) \
  X(mutate1, int, lchown, (const char* path, uid_t owner, gid_t group), (path, owner, group), DSC_NOTHROW) \
  X(mutate_at, int, fchownat, (int dirfd, const char* path, uid_t owner, gid_t group, int flags), (dirfd, path, owner, group, flags), DSC_NOTHROW) \
  X(mutate1, int, utime, (const char* path, const struct utimbuf* times), (path, times), DSC_NOTHROW) \
  X(mutate1, int, utimes, (const char* path, const struct timeval times[2]), (path, times), DSC_NOTHROW) \
  X(mutate1, int, lutimes, (const char* path, const struct timeval times[2]), (path, times), DSC_NOTHROW) \
  X(mutate_at, int, utimensat, (int dirfd, const char* path, const struct timespec times[2], int flags), (dirfd, path, times, flags), DSC_NOTHROW) \
  X(mutate_at, int, futimesat, (int dirfd, const char* path, const struct timeval times[2]), (dirfd, path, times), DSC_NOTHROW) \
  X(mutate1, int, setxattr, (const char* path, const char* name, const void* value, size_t size, int flags), (path, name, value, size, flags), DSC_NOTHROW) \
  X(mutate1, int, lsetxattr, (const char* path, const char* name, const void* value, size_t size, int flags), (path, name, value, size, flags), DSC_NOTHROW) \
  X(mutate1, int, removexattr, (const char* path, const char* name), (path, name), DSC_NOTHROW) \
  X(mutate1, int, lremovexattr, (const char* path, const char* name), (path, name), DSC_NOTHROW) \
  X(create1, int, mknod, (const char* path, mode_t mode, dev_t dev), (path, mode, dev), DSC_NOTHROW) \
  X(create_at, int, mknodat, (int dirfd, const char* path, mode_t mode, dev_t dev), (dirfd, path, mode, dev), DSC_NOTHROW) \
  X(mutate_fd, int, fchmod, (int fd, mode_t mode), (fd, mode), DSC_NOTHROW) \
  X(mutate_fd, int, fchown, (int fd, uid_t owner, gid_t group), (fd, owner, group), DSC_NOTHROW) \
  X(mutate_fd, int, futimens, (int fd, const struct timespec times[2]), (fd, times), DSC_NOTHROW) \
  X(mutate_fd, int, futimes, (int fd, const struct timeval times[2]), (fd, times), DSC_NOTHROW) \
  X(mutate_fd, int, fsetxattr, (int fd, const char* name, const void* value, size_t size, int flags), (fd, name, value, size, flags), DSC_NOTHROW) \
  X(mutate_fd, int, fremovexattr, (int fd, const char* name), (fd, name), DSC_NOTHROW) \
  X(write_fd, int, ftruncate, (int fd, off_t length), (fd, length), DSC_NOTHROW) \
  X(write_fd, int, ftruncate64, (int fd, off64_t length), (fd, length), DSC_NOTHROW) \
  X(write_fd, int, fallocate, (int fd, int mode, off_t offset, off_t length), (fd, mode, offset, length), DSC_MAYTHROW) \
  X(write_fd, int, fallocate64, (int fd, int mode, off64_t offset, off64_t length), (fd, mode, offset, length), DSC_MAYTHROW) \
  X(create1, int, mkfifo, (const char* path, mode_t mode), (path, mode), DSC_NOTHROW) \
  /* temporary names (glibc makes them through calls no hook sees) */ \
  X(create_tmpl, int, mkstemp, (char* tmpl), (tmpl), DSC_MAYTHROW) \
  X(create_tmpl, int, mkstemp64, (char* tmpl), (tmpl), DSC_MAYTHROW) \
  X(create_tmpl, int, mkostemp, (char* tmpl, int flags), (tmpl, flags), DSC_MAYTHROW) \
  X(create_tmpl, int, mkostemp64, (char* tmpl, int flags), (tmpl, flags), DSC_MAYTHROW) \
  X(create_tmpl, int, mkstemps, (char* tmpl, int suffixlen), (tmpl, suffixlen), DSC_MAYTHROW) \
  X(create_tmpl, int, mkstemps64, (char* tmpl, int suffixlen), (tmpl, suffixlen), DSC_MAYTHROW) \
  X(create_tmpl, int, mkostemps, (char* tmpl, int suffixlen, int flags), (tmpl, suffixlen, flags), DSC_MAYTHROW) \
  X(create_tmpl, int, mkostemps64, (char* tmpl, int suffixlen, int flags), (tmpl, suffixlen, flags), DSC_MAYTHROW) \
  X(custom, char*, mkdtemp, (char* tmpl), (tmpl), DSC_NOTHROW) \
  X(custom, int, bind, (int fd, const struct sockaddr* addr, socklen_t length), (fd, addr, length), DSC_NOTHROW) \
  X(create_at, int, mkfifoat, (int dirfd, const char* path, mode_t mode), (dirfd, path, mode), DSC_NOTHROW)
// clang-format on
