// File descriptors. Complete files are plain fds the shim never touches
// again; only partial large files (a bit in a bitmap says which) are checked:
// every read makes its range present first, and whatever would read behind
// the shim's back (mmap, sendfile, stdio, exec) completes the file first;
// a duplicate (dup, /proc/self/fd reopen) is guarded like the original.
#include <cstdarg>
#include <cstring>

#include "core.h"
#include "real.h"

using namespace dscache::shim;

namespace {

uint64_t iov_length(const struct iovec* iov, int count) {
  uint64_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  return total;
}

// A read call's arguments, for read_range / read_at_offset's do_read.
struct PositionedRead {
  void* buf;
  size_t count;
  const struct iovec* iov;
  int iovcnt;
  int flags;
};

int before_dup(int fd) {
  int rc = prepare_dup(fd);
  return rc == 0 ? 0 : fail(rc);
}

int complete_first(int fd) {
  if (!is_partial(fd)) return 0;
  int rc = complete_fd(fd);
  return rc == 0 ? 0 : fail(rc);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) ssize_t read(int fd, void* buf, size_t count) {
  if (!is_partial(fd)) return REAL(read)(fd, buf, count);
  PositionedRead args{buf, count, nullptr, 0, 0};
  return read_at_offset(fd, count, [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(pread)(f, x->buf, x->count, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t __read_chk(int fd, void* buf, size_t count, size_t buflen) {
  if (count > buflen) __builtin_trap();  // what the fortified original does: a buffer overflow
  return read(fd, buf, count);
}
__attribute__((visibility("default"))) ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  if (!is_partial(fd)) return REAL(pread)(fd, buf, count, offset);
  PositionedRead args{buf, count, nullptr, 0, 0};
  return read_range(fd, static_cast<uint64_t>(offset), count, [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(pread)(f, x->buf, x->count, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t pread64(int fd, void* buf, size_t count, off64_t offset) {
  if (!is_partial(fd)) return REAL(pread64)(fd, buf, count, offset);
  PositionedRead args{buf, count, nullptr, 0, 0};
  return read_range(fd, static_cast<uint64_t>(offset), count, [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(pread64)(f, x->buf, x->count, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t __pread_chk(int fd, void* buf, size_t count, off_t offset,
                                                           size_t buflen) {
  if (count > buflen) __builtin_trap();
  return pread(fd, buf, count, offset);
}
__attribute__((visibility("default"))) ssize_t __pread64_chk(int fd, void* buf, size_t count, off64_t offset,
                                                             size_t buflen) {
  if (count > buflen) __builtin_trap();
  return pread64(fd, buf, count, offset);
}
__attribute__((visibility("default"))) ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
  if (!is_partial(fd)) return REAL(readv)(fd, iov, iovcnt);
  PositionedRead args{nullptr, 0, iov, iovcnt, 0};
  return read_at_offset(fd, iov_length(iov, iovcnt), [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(preadv)(f, x->iov, x->iovcnt, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t preadv(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  if (!is_partial(fd)) return REAL(preadv)(fd, iov, iovcnt, offset);
  PositionedRead args{nullptr, 0, iov, iovcnt, 0};
  return read_range(fd, static_cast<uint64_t>(offset), iov_length(iov, iovcnt), [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(preadv)(f, x->iov, x->iovcnt, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t preadv64(int fd, const struct iovec* iov, int iovcnt, off64_t offset) {
  if (!is_partial(fd)) return REAL(preadv64)(fd, iov, iovcnt, offset);
  PositionedRead args{nullptr, 0, iov, iovcnt, 0};
  return read_range(fd, static_cast<uint64_t>(offset), iov_length(iov, iovcnt), [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(preadv64)(f, x->iov, x->iovcnt, at);
  }, &args);
}
__attribute__((visibility("default"))) ssize_t preadv2(int fd, const struct iovec* iov, int iovcnt, off_t offset,
                                                       int flags) {
  if (!is_partial(fd)) return REAL(preadv2)(fd, iov, iovcnt, offset, flags);
  PositionedRead args{nullptr, 0, iov, iovcnt, flags};
  auto call = [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(preadv2)(f, x->iov, x->iovcnt, at, x->flags);
  };
  // Offset -1: at (and moving) the fd's offset, as readv.
  if (offset == -1) return read_at_offset(fd, iov_length(iov, iovcnt), call, &args);
  return read_range(fd, static_cast<uint64_t>(offset), iov_length(iov, iovcnt), call, &args);
}
__attribute__((visibility("default"))) ssize_t preadv64v2(int fd, const struct iovec* iov, int iovcnt,
                                                          off64_t offset, int flags) {
  if (!is_partial(fd)) return REAL(preadv64v2)(fd, iov, iovcnt, offset, flags);
  PositionedRead args{nullptr, 0, iov, iovcnt, flags};
  auto call = [](int f, void* a, off_t at) {
    auto* x = static_cast<PositionedRead*>(a);
    return REAL(preadv64v2)(f, x->iov, x->iovcnt, at, x->flags);
  };
  if (offset == -1) return read_at_offset(fd, iov_length(iov, iovcnt), call, &args);
  return read_range(fd, static_cast<uint64_t>(offset), iov_length(iov, iovcnt), call, &args);
}

// A partial file looks dense: no holes, its data runs to its size.
__attribute__((visibility("default"))) off_t lseek(int fd, off_t offset, int whence) noexcept {
  if ((whence == SEEK_DATA || whence == SEEK_HOLE) && is_partial(fd)) {
    struct stat st {};
    if (REAL(fstat)(fd, &st) != 0) return -1;
    if (offset < 0 || offset >= st.st_size) return errno = ENXIO, -1;
    off_t at = whence == SEEK_DATA ? offset : st.st_size;
    return REAL(lseek)(fd, at, SEEK_SET);
  }
  return REAL(lseek)(fd, offset, whence);
}
__attribute__((visibility("default"))) off64_t lseek64(int fd, off64_t offset, int whence) noexcept {
  return lseek(fd, offset, whence);
}

__attribute__((visibility("default"))) void* mmap(void* addr, size_t length, int prot, int flags, int fd,
                                                  off_t offset) noexcept {
  if (fd >= 0 && complete_first(fd) != 0) return MAP_FAILED;
  return REAL(mmap)(addr, length, prot, flags, fd, offset);
}
__attribute__((visibility("default"))) void* mmap64(void* addr, size_t length, int prot, int flags, int fd,
                                                    off64_t offset) noexcept {
  if (fd >= 0 && complete_first(fd) != 0) return MAP_FAILED;
  return REAL(mmap64)(addr, length, prot, flags, fd, offset);
}
__attribute__((visibility("default"))) ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) noexcept {
  if (complete_first(in_fd) != 0) return -1;
  return REAL(sendfile)(out_fd, in_fd, offset, count);
}
__attribute__((visibility("default"))) ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset,
                                                          size_t count) noexcept {
  if (complete_first(in_fd) != 0) return -1;
  return REAL(sendfile64)(out_fd, in_fd, offset, count);
}
__attribute__((visibility("default"))) ssize_t copy_file_range(int in_fd, off64_t* in_off, int out_fd,
                                                               off64_t* out_off, size_t len, unsigned int flags) {
  if (complete_first(in_fd) != 0) return -1;
  return REAL(copy_file_range)(in_fd, in_off, out_fd, out_off, len, flags);
}
__attribute__((visibility("default"))) ssize_t splice(int in_fd, off64_t* in_off, int out_fd, off64_t* out_off,
                                                      size_t len, unsigned int flags) {
  if (complete_first(in_fd) != 0) return -1;
  return REAL(splice)(in_fd, in_off, out_fd, out_off, len, flags);
}
__attribute__((visibility("default"))) FILE* fdopen(int fd, const char* mode) noexcept {
  if (complete_first(fd) != 0) return nullptr;
  return REAL(fdopen)(fd, mode);
}
// A duplicate of a partial fd is guarded like it (note_dup).
__attribute__((visibility("default"))) int dup(int fd) noexcept {
  if (before_dup(fd) != 0) return -1;
  int r = REAL(dup)(fd);
  if (r >= 0 && active()) note_dup(fd, r);
  return r;
}
__attribute__((visibility("default"))) int dup2(int fd, int fd2) noexcept {
  if (before_dup(fd) != 0) return -1;
  if (fd != fd2 && active()) {
    forget_fd(fd2);  // dup2 closes fd2
    if (is_own_fd(fd2)) move_own_fd(fd2);
  }
  int r = REAL(dup2)(fd, fd2);
  if (r >= 0 && active()) note_dup(fd, r);
  return r;
}
__attribute__((visibility("default"))) int dup3(int fd, int fd2, int flags) noexcept {
  if (before_dup(fd) != 0) return -1;
  if (fd != fd2 && active()) {
    forget_fd(fd2);
    if (is_own_fd(fd2)) move_own_fd(fd2);
  }
  int r = REAL(dup3)(fd, fd2, flags);
  if (r >= 0 && active()) note_dup(fd, r);
  return r;
}

namespace {

// fcntl commands that cannot reach a file's bytes unguarded. Any other on a
// partial file (one this list does not know) completes it first.
bool fcntl_keeps_bytes_hidden(int cmd) {
  switch (cmd) {
    case F_DUPFD: case F_DUPFD_CLOEXEC:  // the duplicate is guarded too (note_dup)
    case F_GETFD: case F_SETFD: case F_GETFL: case F_SETFL:
    case F_GETLK: case F_SETLK: case F_SETLKW: case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
    case F_GETOWN: case F_SETOWN: case F_GETOWN_EX: case F_SETOWN_EX: case F_GETSIG: case F_SETSIG:
    case F_GETLEASE: case F_SETLEASE: case F_NOTIFY: case F_GET_SEALS: case F_ADD_SEALS:
    case F_GET_RW_HINT: case F_SET_RW_HINT: case F_GET_FILE_RW_HINT: case F_SET_FILE_RW_HINT:
      return true;
    default:
      return false;
  }
}

int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void* arg) {
  if (!is_partial(fd)) {
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && active()) note_dup(fd, r);
    return r;
  }
  if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && before_dup(fd) != 0) return -1;
  if (!fcntl_keeps_bytes_hidden(cmd) && complete_first(fd) != 0) return -1;
  int r = real(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) note_dup(fd, r);
  return r;
}

// ioctls whose *source* is another fd: a clone shares the source's blocks,
// holes included.
struct CloneRange {  // struct file_clone_range (linux/fs.h)
  int64_t src_fd;
  uint64_t src_offset, src_length, dest_offset;
};
constexpr unsigned long kFiClone = _IOW(0x94, 9, int);
constexpr unsigned long kFiCloneRange = _IOW(0x94, 13, CloneRange);

// ioctls that cannot reach a file's bytes: the terminal ones (ENOTTY on a
// file; isatty() asks TCGETS of every file Python opens), FIONREAD and the
// fd flags. Any other on a partial file completes it first.
bool ioctl_keeps_bytes_hidden(unsigned long request) {
  if (((request >> 8) & 0xFF) == 'T') return true;
  return request == FIONREAD || request == FIONBIO || request == FIOASYNC || request == FIOCLEX ||
         request == FIONCLEX;
}

int before_ioctl(int fd, unsigned long request, void* arg) {
  if (request == kFiClone) return complete_first(static_cast<int>(reinterpret_cast<intptr_t>(arg)));
  if (request == kFiCloneRange && arg != nullptr) {
    return complete_first(static_cast<int>(static_cast<const CloneRange*>(arg)->src_fd));
  }
  if (!is_partial(fd) || ioctl_keeps_bytes_hidden(request)) return 0;
  return complete_first(fd);
}

// POSIX aio reads run on glibc's threads through calls no hook sees: the
// range is made present before the request is queued.
int before_aio_read(int fd, int64_t offset, size_t length) {
  if (!is_partial(fd)) return 0;
  int rc = ensure_readable_held(fd, static_cast<uint64_t>(offset), length);
  return rc == 0 ? 0 : fail(rc);
}
}  // namespace

__attribute__((visibility("default"))) int fcntl(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);  // every fcntl argument fits a pointer's register
  va_end(args);
  return fcntl_common(REAL(fcntl), fd, cmd, arg);
}
__attribute__((visibility("default"))) int fcntl64(int fd, int cmd, ...) {
  va_list args;
  va_start(args, cmd);
  void* arg = va_arg(args, void*);
  va_end(args);
  return fcntl_common(REAL(fcntl64), fd, cmd, arg);
}
__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...) noexcept {
  va_list args;
  va_start(args, request);
  void* arg = va_arg(args, void*);  // every ioctl argument fits a pointer's register
  va_end(args);
  if (before_ioctl(fd, request, arg) != 0) return -1;
  return REAL(ioctl)(fd, request, arg);
}
// fds from another process: a mirror file still filling is guarded here too.
__attribute__((visibility("default"))) ssize_t recvmsg(int fd, struct msghdr* message, int flags) {
  const ssize_t n = REAL(recvmsg)(fd, message, flags);
  if (n < 0 || message == nullptr || message->msg_controllen == 0 || t_depth != 0 || !active()) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(message); c != nullptr; c = CMSG_NXTHDR(message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
      // A file that cannot be guarded must not be read: the fd stays, but
      // complete_file failed and says so (one line); reads then fail EIO.
      (void)adopt_fd(received);
    }
  }
  return n;
}
__attribute__((visibility("default"))) int pidfd_getfd(int pidfd, int targetfd, unsigned int flags) noexcept {
  const int fd = REAL(pidfd_getfd)(pidfd, targetfd, flags);
  if (fd >= 0 && t_depth == 0 && active()) {
    if (int rc = adopt_fd(fd); rc != 0) {
      REAL(close)(fd);
      return fail(rc);
    }
  }
  return fd;
}
__attribute__((visibility("default"))) int aio_read(struct aiocb* cb) noexcept {
  if (before_aio_read(cb->aio_fildes, cb->aio_offset, cb->aio_nbytes) != 0) return -1;
  return REAL(aio_read)(cb);
}
__attribute__((visibility("default"))) int aio_read64(struct aiocb64* cb) noexcept {
  if (before_aio_read(cb->aio_fildes, cb->aio_offset, cb->aio_nbytes) != 0) return -1;
  return REAL(aio_read64)(cb);
}
__attribute__((visibility("default"))) int lio_listio(int mode, struct aiocb* const list[], int count,
                                                      struct sigevent* sev) noexcept {
  for (int i = 0; i < count; ++i) {
    const auto* cb = list[i];
    if (cb != nullptr && cb->aio_lio_opcode == LIO_READ && before_aio_read(cb->aio_fildes, cb->aio_offset, cb->aio_nbytes) != 0) return -1;
  }
  return REAL(lio_listio)(mode, list, count, sev);
}
__attribute__((visibility("default"))) int lio_listio64(int mode, struct aiocb64* const list[], int count,
                                                        struct sigevent* sev) noexcept {
  for (int i = 0; i < count; ++i) {
    const auto* cb = list[i];
    if (cb != nullptr && cb->aio_lio_opcode == LIO_READ && before_aio_read(cb->aio_fildes, cb->aio_offset, cb->aio_nbytes) != 0) return -1;
  }
  return REAL(lio_listio64)(mode, list, count, sev);
}
__attribute__((visibility("default"))) int posix_fadvise(int fd, off_t offset, off_t len, int advice) noexcept {
  if (advice == POSIX_FADV_WILLNEED && is_partial(fd)) {
    // WILLNEED on a partial file: fetch the range now (len 0: to the end).
    struct stat st {};
    if (REAL(fstat)(fd, &st) == 0) {
      uint64_t length = len > 0 ? static_cast<uint64_t>(len) : static_cast<uint64_t>(st.st_size - offset);
      if (ensure_readable(fd, static_cast<uint64_t>(offset), length) != 0) return EIO;
    }
  }
  return REAL(posix_fadvise)(fd, offset, len, advice);
}
__attribute__((visibility("default"))) int posix_fadvise64(int fd, off64_t offset, off64_t len, int advice) noexcept {
  return posix_fadvise(fd, offset, len, advice);
}
__attribute__((visibility("default"))) int close(int fd) {
  if (t_depth == 0 && active()) {
    // The shim's own fds are not the program's to close (a loop closing
    // every fd, say): to the program they are not open.
    if (is_own_fd(fd)) return errno = EBADF, -1;
    // Unpinning may talk to the daemon: errno stays what the program had (a
    // close after a failed call must not clear the failure's errno).
    const int saved = errno;
    forget_fd(fd);
    errno = saved;
  }
  return REAL(close)(fd);
}
__attribute__((visibility("default"))) int close_range(unsigned int first, unsigned int last, int flags) noexcept {
  if (t_depth != 0 || !active()) return REAL(close_range)(first, last, flags);
  // (CLOSE_RANGE_CLOEXEC closes nothing now; exec completes partial files anyway.)
  if ((flags & CLOSE_RANGE_CLOEXEC) == 0) {
    const int saved = errno;
    forget_fd_range(first, last);
    errno = saved;
  }
  // The range in pieces around the shim's own fds.
  int own[kMaxOwnFds];
  const int count = own_fds(own, kMaxOwnFds);
  unsigned int from = first;
  for (int i = 0; i < count; ++i) {
    const auto fd = static_cast<unsigned int>(own[i]);
    if (fd < from || fd > last) continue;
    if (fd > from && REAL(close_range)(from, fd - 1, flags) != 0) return -1;
    from = fd + 1;
    if (from == 0) return 0;  // (wrapped: the fd was ~0u)
  }
  if (from > last) return 0;
  return REAL(close_range)(from, last, flags);
}
__attribute__((visibility("default"))) void closefrom(int lowfd) noexcept {
  if (lowfd < 0) lowfd = 0;
  close_range(static_cast<unsigned int>(lowfd), ~0u, 0);
}

}  // extern "C"
