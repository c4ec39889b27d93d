// Linux fanotify pre-content events (6.14+): the pieces of the kernel ABI
// that Debian 12's headers lack, reading events, answering them, and the
// one content check that needs no index (does a range hold a hole?).
//
// Shared by the daemon's ContentGuard and the guard keeper, which both talk
// to the same fanotify group.
#pragma once

#include <fcntl.h>
#include <sys/fanotify.h>

#include <functional>

#include <cstdint>

namespace dscache::fanotify {

// From include/uapi/linux/fanotify.h (Linux 6.14), checked against it: the
// pre-content event, its range record and the errno a denial may carry.
inline constexpr uint64_t kPreAccess = 0x00100000;  // FAN_PRE_ACCESS
inline constexpr unsigned kClassPreContent = 0x00000008;  // FAN_CLASS_PRE_CONTENT
inline constexpr uint8_t kInfoTypeRange = 6;  // FAN_EVENT_INFO_TYPE_RANGE
struct InfoRange {                            // struct fanotify_event_info_range
  fanotify_event_info_header hdr;
  uint32_t pad;
  uint64_t offset;
  uint64_t count;
};
static_assert(sizeof(InfoRange) == 24);
// FAN_DENY_ERRNO(err): FAN_DENY with the errno in the top byte. The kernel
// accepts only a few errnos (EIO, EPERM, EAGAIN, ENOSPC, EBUSY, ETXTBSY,
// EDQUOT; measured: ESTALE, ENOENT, EACCES, ETIMEDOUT are refused with
// EINVAL and leave the reader waiting), so deny() maps the rest to EIO.
uint32_t deny(int err);
inline constexpr uint32_t kAllow = FAN_ALLOW;

// One event as read: the kernel's fd on the file (opened without events, so
// reading it never calls back), the process, and the range it touches
// (rounded to pages, not clamped to the file's size).
struct Event {
  int fd = -1;
  int32_t pid = 0;
  uint64_t mask = 0;
  uint64_t offset = 0;
  uint64_t count = UINT64_MAX;  // no range record: the whole file
};

// Calls `each` for every event in buffer[0, length). The callee owns ev.fd.
template <class F>
void for_each_event(const char* buffer, long length, F&& each) {
  auto* meta = reinterpret_cast<const fanotify_event_metadata*>(buffer);
  while (FAN_EVENT_OK(meta, length)) {
    Event ev;
    ev.fd = meta->fd;
    ev.pid = meta->pid;
    ev.mask = meta->mask;
    const char* info = reinterpret_cast<const char*>(meta) + meta->metadata_len;
    const char* end = reinterpret_cast<const char*>(meta) + meta->event_len;
    while (info + sizeof(fanotify_event_info_header) <= end) {
      auto* header = reinterpret_cast<const fanotify_event_info_header*>(info);
      if (header->len == 0) break;
      if (header->info_type == kInfoTypeRange && header->len >= sizeof(InfoRange)) {
        auto* range = reinterpret_cast<const InfoRange*>(info);
        ev.offset = range->offset;
        ev.count = range->count;
      }
      info += header->len;
    }
    each(ev);
    meta = FAN_EVENT_NEXT(meta, length);
  }
}

// Writes the answer for the event whose fd number is `event_fd`; false (errno
// set) if the kernel refused it.
[[nodiscard]] bool answer(int group_fd, int event_fd, uint32_t response);

// Whether [offset, offset+count) of the open file `fd`, cut at its size, has
// a hole (a part never written): SEEK_HOLE, which costs no read. True also
// when the file cannot be examined, so that a caller never allows what it
// could not check.
bool range_has_hole(int fd, uint64_t offset, uint64_t count);

// How many inodes the group `group_fd` (an fd of this process) still marks,
// from /proc/self/fdinfo; -1 if that cannot be read. The kernel drops a mark
// itself once its inode is freed (a replaced file's last reader closed it).
int mark_count(int group_fd);

// Calls each with the file handle (for open_by_handle_at) of every inode the
// group still marks.
void for_each_mark(int group_fd, const std::function<void(file_handle* handle)>& each);

}  // namespace dscache::fanotify
