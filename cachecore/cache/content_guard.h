// ContentGuard: the kernel-level guard of large files' unfilled parts.
//
// A large object's mirror file is a sparse placeholder filled block by block;
// its holes read as zeros. The shim checks the block bitmap before it reads,
// but a static binary, raw system calls, io_uring or a child without the shim
// would read the zeros. The guard puts a fanotify pre-content mark (Linux
// 6.14+, FAN_PRE_ACCESS) on every large placeholder before it becomes
// reachable at its mirror path; the kernel then holds each read of it until
// the guard answers. The guard allows a range that is present at once, has a
// missing range filled at demand priority and allows it when its blocks are
// published, and denies with an errno (EIO for most causes) when the fill
// fails or outlasts its bound: a reader gets the object's bytes or an error,
// never the holes. A file that becomes complete is unmarked (a marked file
// costs every read a round trip through the daemon).
//
// The daemon's own reads and writes of marked files raise events too: they
// are allowed at once, by pid. The listener thread never waits on a fill:
// fills answer from their completion, and every answer has a deadline.
//
// While the daemon lives the guard's keeper (guard_keeper.h), a small process
// sharing the fanotify group, only waits. When the daemon dies or exits with
// files still partial, the keeper keeps the group (and its marks) alive and
// answers: ranges without holes are allowed, others fail with EIO. A new
// daemon marks the files again and then retires the old keeper.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/mirror.h"
#include "common/status.h"
#include "config/config.h"

namespace dscache {

class ContentGuard {
 public:
  using Done = std::function<void(Status)>;
  struct Hooks {
    // Whether [offset, offset+length) of the file is present now: no IPC, no blocking.
    std::function<bool(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length)> present;
    // Makes the range present at demand priority and calls `done` exactly
    // once, from any thread. Must return without waiting for the fill.
    // `sequential`: the read continues the file's previous one (readahead pays).
    std::function<void(uint64_t mount_id, const std::string& path, uint64_t offset, uint64_t length, bool sequential,
                       Done done)>
        fill;
  };
  struct Options {
    KernelGuard mode = KernelGuard::automatic;
    std::string off_reason = "DSCACHE_KERNEL_GUARD=off";  // reason() when mode is off
    // Spawn a keeper (guard_keeper.h), running `keeper_exe __guard-keeper`
    // (default: this program).
    bool keeper = false;
    std::string keeper_exe;
  };

  // Starts the guard for the cache at `layout`, probing a file in its tmp/
  // directory. Where it cannot run, the guard is off with a one-line reason
  // (reason()); with mode `on` that is an error instead.
  static Result<std::unique_ptr<ContentGuard>> start(const CacheLayout& layout, const Options& options, Hooks hooks);
  ~ContentGuard();
  ContentGuard(const ContentGuard&) = delete;
  ContentGuard& operator=(const ContentGuard&) = delete;

  bool on() const { return group_fd_ >= 0; }
  const std::string& reason() const { return reason_; }
  size_t guarded_files() const;

  // Marks the file open as `fd` (a placeholder not yet renamed into the
  // mirror, or one found at start) as the large file `path` of `mount_id`.
  [[nodiscard]] Status guard(int fd, uint64_t mount_id, const std::string& path);
  // The file open as `fd` is complete: unmark it.
  void release_complete(int fd);
  // The file at dir_fd/name is about to be replaced (evicted, refreshed): it
  // stays marked for whoever still holds it open, but is no longer filled:
  // its holes fail with EIO, its written parts read.
  void forget_replaced(int dir_fd, const char* name);

  // From now on the hooks are not called (the cache is going away): events
  // are answered from the file alone (written parts allowed, holes EIO).
  void refuse_fills();

  // Marks are in place: retire the previous daemon's keeper and start ours.
  // Call once, after every existing partial file is guarded.
  void take_over();
  // Stops the listener (it may call the hooks; call before they go away).
  // Answers still pending afterwards come from their fills; finish() denies
  // the rest.
  void stop_listening();
  // The daemon is going: deny what is still waiting, and let the keeper go
  // (no file guarded) or keep guarding (some still partial).
  void finish();

 private:
  struct FileId {
    dev_t dev;
    ino_t ino;
    bool operator==(const FileId& o) const { return dev == o.dev && ino == o.ino; }
  };
  struct FileIdHash {
    size_t operator()(const FileId& f) const { return std::hash<uint64_t>()(f.ino * 0x9E3779B97F4A7C15ull ^ f.dev); }
  };
  struct Guarded {
    uint64_t mount_id = 0;
    std::string path;
    uint64_t read_end = 0;  // where the last event's range ended
  };
  struct Pending {
    int fd = -1;
    int slot = -1;  // in the table shared with the keeper
    std::chrono::steady_clock::time_point deadline;
    std::string path;
  };

  ContentGuard() = default;
  Status open_group(const CacheLayout& layout);
  void listen();
  void on_event(int fd, int32_t pid, uint64_t offset, uint64_t count);
  void settle(uint64_t ticket, const Status& status);
  void respond(int fd, uint32_t response);
  void expire_overdue();
  void spawn_keeper();

  Hooks hooks_;
  Options options_;
  std::string reason_;
  std::string root_, run_dir_, log_path_;
  int group_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: stops the listener
  int table_fd_ = -1;
  std::atomic<int32_t>* table_ = nullptr;  // pending events' fds + 1, shared with the keeper
  int keeper_pipe_ = -1;                    // write end; its closing tells the keeper we are gone
  pid_t self_ = 0;
  std::thread listener_;

  std::mutex hooks_mutex_;  // held while the listener calls a hook
  bool fills_refused_ = false;

  mutable std::mutex mutex_;
  std::unordered_map<FileId, Guarded, FileIdHash> files_;
  std::map<uint64_t, Pending> pending_;
  std::vector<int> free_slots_;
  uint64_t next_ticket_ = 1;
  std::set<std::string> overdue_logged_;
};

}  // namespace dscache
