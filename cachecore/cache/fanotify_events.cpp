#include "cache/fanotify_events.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

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

namespace {

// The group's entry in /proc/self/fdinfo: one "fanotify ino:..." line per mark.
bool read_fdinfo(int group_fd, std::string* text) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", group_fd);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text->append(buf, static_cast<size_t>(n));
  ::close(fd);
  return true;
}

}  // namespace

int mark_count(int group_fd) {
  std::string text;
  if (!read_fdinfo(group_fd, &text)) return -1;
  int marks = 0;
  for (size_t at = text.find("fanotify ino:"); at != std::string::npos; at = text.find("fanotify ino:", at + 1)) {
    ++marks;
  }
  return marks;
}

void for_each_mark(int group_fd, const std::function<void(file_handle* handle)>& each) {
  std::string text;
  if (!read_fdinfo(group_fd, &text)) return;
  for (size_t at = text.find("fhandle-bytes:"); at != std::string::npos; at = text.find("fhandle-bytes:", at + 1)) {
    unsigned bytes = 0, type = 0;
    char hex[2 * MAX_HANDLE_SZ + 1] = {};
    if (std::sscanf(text.c_str() + at, "fhandle-bytes:%x fhandle-type:%x f_handle:%256[0-9a-f]", &bytes, &type, hex) != 3 ||
        bytes > MAX_HANDLE_SZ || std::strlen(hex) != 2 * bytes) {
      continue;
    }
    alignas(file_handle) unsigned char storage[sizeof(file_handle) + MAX_HANDLE_SZ];
    auto* handle = reinterpret_cast<file_handle*>(storage);
    handle->handle_bytes = bytes;
    handle->handle_type = static_cast<int>(type);
    unsigned char* raw = storage + offsetof(file_handle, f_handle);  // the flexible array's bytes
    for (unsigned i = 0; i < bytes; ++i) {
      unsigned v = 0;
      std::sscanf(hex + 2 * i, "%2x", &v);
      raw[i] = static_cast<unsigned char>(v);
    }
    each(handle);
  }
}

}  // namespace dscache::fanotify
