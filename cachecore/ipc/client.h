// DaemonClient: a blocking connection to the node daemon, libc only (the
// shim uses it; so do the tools and tests). Starts the daemon on demand:
// exactly one wins the lock file, the others wait and connect.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "ipc/protocol.h"

namespace dscache::ipc {

// <cache_dir>/run/daemon.sock etc. False if a path does not fit.
bool socket_path(const Config& config, char* out, size_t size);

// Whether the cache directory is one no other user can change (the rule in
// common/private_dir.h; owned by cache_owner(config)), creating it (0700) if
// `create` and it is missing. 0, or -errno with one line in `error`. Checked
// once per process: what passed stays safe.
int check_cache_dir(const Config& config, bool create, char* error, size_t error_size);

// A connection as plain data: no destructor, so the shim can keep one per
// thread without the C++ runtime. DaemonClient below wraps it for C++ callers.
struct Connection {
  int fd = -1;
  uint32_t next_id = 1;
  int peer_pid = 0;          // the daemon's (SO_PEERCRED)
  int64_t timeout_ms = 0;    // DSCACHE_DAEMON_TIMEOUT: a stopped or hung daemon fails a request after this
  // The daemon's heartbeat (IndexHeader::heartbeat_ns), where the caller maps
  // the index: a daemon whose event loop stopped is noticed, not only a stopped process.
  const int64_t* heartbeat = nullptr;
};

// Connects; if no daemon answers and `daemon_binary` is set, starts
// `daemon_binary daemon --detached` (with the caller's environment minus
// LD_PRELOAD) and waits up to `wait_ms` for it. 0, or -errno with a one-line
// reason in `error`.
int connect_daemon(Connection& conn, const Config& config, const char* daemon_binary, int wait_ms, char* error,
                   size_t error_size);
void disconnect(Connection& conn);
// One request, one reply. Returns the reply's errno (0: done), or a negative
// errno if the connection failed (then it is closed): -ETIMEDOUT when the
// daemon is stopped or hung for conn.timeout_ms (a slow but live daemon is
// waited for). `text` receives the reply's text (NUL-terminated, truncated to
// fit), or why the connection failed.
int call_daemon(Connection& conn, MessageType type, uint64_t mount_id, const char* path, uint64_t offset,
                uint64_t length, uint32_t flags, uint64_t* value, char* text, size_t text_size);

class DaemonClient {
 public:
  DaemonClient() = default;
  ~DaemonClient() { close(); }
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;

  int connect(const Config& config, const char* daemon_binary, int wait_ms, char* error, size_t error_size) {
    return connect_daemon(conn_, config, daemon_binary, wait_ms, error, error_size);
  }
  void close() { disconnect(conn_); }
  bool connected() const { return conn_.fd >= 0; }
  int call(MessageType type, uint64_t mount_id, const char* path, uint64_t offset, uint64_t length, uint32_t flags,
           uint64_t* value, char* text, size_t text_size) {
    return call_daemon(conn_, type, mount_id, path, offset, length, flags, value, text, text_size);
  }

 private:
  Connection conn_;
};

}  // namespace dscache::ipc
