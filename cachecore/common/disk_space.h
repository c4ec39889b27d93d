// Naming the file system a cache lives on, for "no space" errors: a user who
// reads "no space left on /mnt/nvme (xfs /dev/nvme0n1p1): 0 of 1.8T free"
// knows what to clean up; one who reads "tmp/123: No space left on device"
// does not.
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>

namespace dscache {

// "<mount point> (<type> <source>)" of the file system holding `path` (from
// /proc/self/mountinfo, matched by device number), or `path` itself if it
// cannot be found.
std::string describe_file_system(const std::string& path);

// Whether `err` means the file system holding `path` is out of room: ENOSPC
// (space or inodes) or EDQUOT.
inline bool is_no_space(int err) { return err == ENOSPC || err == EDQUOT; }

// One line for ENOSPC or EDQUOT met on `path`'s file system, telling space
// from inodes by statvfs: "no space left on /mnt (tmpfs tmpfs): 0 of 64.0M
// free", "no free inodes on /mnt (tmpfs tmpfs): 0 of 200 inodes free", or
// "disk quota exceeded on ...".
std::string no_space_message(const std::string& path, int err);

// "no free inodes on <fs>: N of M inodes free" (the guard's refusal).
std::string no_inodes_message(const std::string& path);

// "1.5M": bytes in the README's units.
std::string human_bytes(uint64_t bytes);

}  // namespace dscache
