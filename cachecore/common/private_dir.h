// A directory that no other user can change: how the cache directory is
// found, created and trusted (libc only; the shim uses it too).
//
// The rule (OpenSSH's StrictModes and systemd's CHASE_SAFE are the models):
// the path is walked from "/" one component at a time, with openat() and
// O_NOFOLLOW, so what is checked is what is used:
//   * every directory on the way belongs to root, to this user or to `owner`,
//     and is not writable by group or others unless it is sticky (/tmp,
//     /dev/shm: others can add names there but not replace ours);
//   * a symbolic link on the way is followed only if it belongs to root, to
//     this user or to `owner` (its directory passed the check above, so no
//     one else can swap it); one planted by another user is refused;
//   * the directory itself belongs to `owner` and is writable by no one else.
// Once it passed, no other user can change the path or what is in it, so
// the cache's files may be used by path afterwards. Root is not restrained by
// any of this (docs/architecture.md, "Who can change the cache").
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace dscache {

struct PrivateDirOptions {
  uid_t owner = 0;          // who must own the directory itself
  bool create = false;      // create what is missing (each new directory with `mode`)
  unsigned mode = 0700;
};

// Opens `path` (absolute) as a directory (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
// if it passes the rule above. Returns the fd, or -errno with one line naming
// the path, its owner and the cause in `error`.
int open_private_dir(const char* path, const PrivateDirOptions& options, char* error, size_t error_size);

// `name` inside the verified directory `dir_fd`: created with `mode` if
// missing, and it must be a real directory (not a link) owned by `owner`.
// Returns an O_RDONLY | O_DIRECTORY fd, or -errno with one line in `error`.
int open_private_subdir(int dir_fd, const char* dir_path, const char* name, uid_t owner, unsigned mode, char* error,
                        size_t error_size);

}  // namespace dscache
