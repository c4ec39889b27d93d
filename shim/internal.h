// State and helpers the parts of the shim's core share (core.cpp routes paths,
// daemon_link.cpp talks to the daemon, fd_tables.cpp keeps the shim's fds out of
// the program's way, partial_files.cpp guards large files still filling,
// exec_env.cpp builds a new program's environment). Hooks use core.h only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "core.h"
#include "index/index_key.h"
#include "index/index_reader.h"
#include "ipc/protocol.h"

namespace dscache::shim {

// ---- configuration and layout (written once, by initialize) -----------------

extern Config g_config;
struct MirrorRoot {
  char path[kMaxPathLength + 64];  // <cache dir>/mirror/<mount id>
  size_t length;
  std::atomic<int> fd{-1};         // O_PATH on it, opened on first use; -1: not yet
};
extern MirrorRoot g_roots[kMaxMounts];
extern char g_daemon_binary[kMaxPathLength + 64];

// Bumped in the child of every fork (pthread_atfork): connections, pins and
// the pin lock belong to the parent.
extern std::atomic<uint32_t> g_fork_generation;
// This process's id as the shim last saw it (at start and after each fork).
// A different getpid() means a vfork child or a clone that shares our memory:
// it must not change the parent's tables.
extern std::atomic<int> g_pid;
bool in_shared_memory_child();
// A fork child whose pthread_atfork handler did not run (_Fork, a raw
// clone() without CLONE_VM): what the handler does, done on first notice.
void after_missed_fork();

// ---- small helpers -------------------------------------------------------------

int64_t now_ns();

inline bool test_bit(const std::atomic<uint64_t>* bits, int fd) {
  return fd >= 0 && fd < kBitmapFds && (bits[fd / 64].load(std::memory_order_acquire) >> (fd % 64) & 1) != 0;
}
inline void set_bit(std::atomic<uint64_t>* bits, int fd, bool on) {
  if (fd < 0 || fd >= kBitmapFds) return;
  const uint64_t mask = uint64_t{1} << (fd % 64);
  if (on) {
    bits[fd / 64].fetch_or(mask, std::memory_order_release);
  } else {
    bits[fd / 64].fetch_and(~mask, std::memory_order_release);
  }
}

// ---- the daemon and the index (daemon_link.cpp) --------------------------------

// The shared index, mapped lazily (null while no daemon has made it).
IndexReader* index();
IndexKey key_of(int mount, const char* rel);
// This mount's counters in the index's stats block; null before a daemon ran.
MountStats* stats_of(IndexReader* idx, int mount);
// One request; reconnects once if the daemon went away. The reply's errno
// (0), or EIO when no daemon can be reached (logged once per process).
int ask_daemon(ipc::MessageType type, int mount, const char* path, uint64_t offset, uint64_t length, uint32_t flags);
// Pins (or unpins) a partial file with the daemon, over one process-wide
// connection. 0 or an errno.
int pin(int mount, const char* rel, bool on);
// The daemon now running (its pid, from the index), 0 if none: a pin made
// with another daemon is gone.
uint32_t current_daemon();
// Lists the directory `dir` (the first dir_length bytes) if the index does not
// have a fresh listing. 0 or -errno.
int ensure_listed(int mount, const char* dir, size_t dir_length);
// After fork, in the child.
void reset_connections_after_fork();
// The shim moved one of its fds from `from` to `to` (fd_tables.cpp).
void renumber_connection(int from, int to);
void init_daemon_link();

// ---- the shim's own fds (fd_tables.cpp) ----------------------------------------

extern std::atomic<uint64_t> g_own_bits[kBitmapFds / 64];

// Moves an fd the shim opened above the program's usual numbers and marks it
// the shim's.
int to_own_fd(int fd);
void close_own_fd(int fd);
// An fd for a mount's mirror root (opened once), -1 while it does not exist.
int root_fd(int mount);
// After a daemon replaced the cache: the roots are opened again.
void reset_root_fds();
// The device the mirror lives on (0 until a mirror root could be opened).
dev_t mirror_device();

// ---- the directories above the mounts (above.cpp) ------------------------------

// Builds the table of directories above the mounts (by initialize).
void init_above();
// For a path in no mount (route_slow, `user` set): which directory above the
// mounts it is (t.above), and whether it is at or below one missing on disk
// (t.synthetic, t.real_path).
void route_above(Target& t);
// Is `user` (normalised) at or below a directory above a mount that is
// missing on disk? (Then a `..` after it is resolved lexically.)
bool in_missing_above(const char* user);
// Is `user` one of the directories above a mount ("/" included)?
bool is_above_a_mount(const char* user);
// The stand-in of `user` when it is at or below a directory above a mount
// that is missing on disk (made first if need be), into `out`; `above`, if
// not null, gets the directory above a mount `user` is (-1 if none).
bool stand_in_of(const char* user, char* out, size_t size, int* above);
// Rewrites a path under <cache dir>/above into the program's path.
bool above_to_user(const char* path, char* out, size_t size);
// The fd closes, or another takes its number.
void forget_above_listing(int fd);
void copy_above_listing(int from, int to);

// ---- partial files (partial_files.cpp) -----------------------------------------

// Registers a large file opened while not complete (slot and snapshot from
// the index). 0 or -errno.
int register_partial(int fd, int mount, const char* rel, uint64_t slot, const SlotSnapshot& s);
// In the child of fork: the turns other threads held are nobody's now.
void reset_partials_after_fork();

}  // namespace dscache::shim
