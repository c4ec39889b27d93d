// The guard keeper: a small process that keeps the daemon's fanotify group,
// and with it the pre-content marks on partial large files, alive when the
// daemon is gone.
//
// The kernel drops a group's marks when its last fd closes and then lets
// every read through to the holes (zeros). So the daemon hands its group to
// a keeper it spawns (`dscache __guard-keeper`). While the daemon lives, the
// keeper only waits on a pipe. When the pipe closes without a word (the
// daemon died, or exited with files still partial), the keeper answers
// events: first those the daemon had read and not answered (their fds are in
// a table the two share), denied with EIO, then every new one: a range
// without holes is allowed, any other fails with EIO. It exits when the
// daemon exits with nothing left to guard, when a new daemon has marked the
// files again and retires it, or when the cache directory is deleted.
#pragma once

#include <cstddef>

#include "cache/mirror.h"

namespace dscache {

inline constexpr const char* kGuardKeeperCommand = "__guard-keeper";
// Events the daemon holds unanswered at once, at most (the shared table).
inline constexpr size_t kGuardPendingSlots = 4096;

// `dscache __guard-keeper GROUP_FD PIPE_FD TABLE_FD CACHE_DIR` (argv[0] is
// the command). Returns the exit status.
int run_guard_keeper(int argc, char** argv);

// Stops the keeper a previous daemon of this cache left (if any), waiting a
// bounded time for it to go. Call after the new marks are in place.
void retire_previous_keeper(const CacheLayout& layout);

// Where a keeper writes its pid and holds its lock.
std::string guard_keeper_pid_path(const CacheLayout& layout);

}  // namespace dscache
