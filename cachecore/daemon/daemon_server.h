// DaemonServer: the node daemon's process: one per cache directory (flock on
// daemon.lock), a Unix socket in a 0700 directory, an epoll loop that turns
// requests into CacheManager calls and their completions into replies, idle
// exit, and a clean shutdown on SIGTERM/SIGINT.
#pragma once

#include "common/env.h"
#include "config/config.h"

namespace dscache {

struct DaemonOptions {
  bool detached = false;  // started on demand by a client: quiet when another daemon won the lock
};

// Runs until idle timeout or a signal. Returns the process exit code.
int run_daemon(const Config& config, const Env& env, const DaemonOptions& options);

// Asks the daemon of `config`'s cache directory to stop and waits for it.
// 0: stopped (or none was running); 1: could not.
int stop_daemon(const Config& config, int wait_ms);

// The pid of the daemon holding the cache directory's lock, 0 if none, -1 if
// one holds it but its pid is unknown, or the directory is not to be trusted
// (ipc::check_cache_dir says why).
int daemon_pid(const Config& config);

}  // namespace dscache
