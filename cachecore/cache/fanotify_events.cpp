#include "cache/fanotify_events.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace dscache::fanotify {

uint32_t deny(int err) {
  switch (err) {
    case EIO:
    case EPERM:
    case EAGAIN:
    case ENOSPC:
    case EBUSY:
    case ETXTBSY:
    case EDQUOT: break;
    default: err = EIO;
  }
  return FAN_DENY | ((static_cast<uint32_t>(err) & 0xff) << 24);
}

bool answer(int group_fd, int event_fd, uint32_t response) {
  fanotify_response r{};
  r.fd = event_fd;
  r.response = response;
  while (true) {
    ssize_t n = ::write(group_fd, &r, sizeof r);
    if (n == static_cast<ssize_t>(sizeof r)) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n >= 0) errno = EIO;
    return false;
  }
}

bool range_has_hole(int fd, uint64_t offset, uint64_t count) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return true;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset >= size || count == 0) return false;
  const uint64_t end = count > size - offset ? size : offset + count;
  off_t hole = ::lseek(fd, static_cast<off_t>(offset), SEEK_HOLE);
  if (hole < 0) return true;
  return static_cast<uint64_t>(hole) < end;
}

}  // namespace dscache::fanotify
