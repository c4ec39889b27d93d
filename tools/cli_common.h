// What the subcommands share: the configuration and a daemon connection.
#pragma once

#include <string>

#include "config/config.h"
#include "index/index_reader.h"
#include "ipc/client.h"

namespace dscache::cli {

// Parses the DSCACHE_* environment; prints the error and returns false if malformed.
bool load_config(Config& config);

// Connects to the cache directory's daemon, starting it if needed.
bool connect_daemon(const Config& config, ipc::DaemonClient& client);

// A user path under a mount: the mount and the path relative to it.
struct MountedPath {
  const MountConfig* mount = nullptr;
  std::string relative;
};
// Absolute-ises and normalises `path`; false (with a message) if not under a mount.
bool resolve_mounted(const Config& config, const std::string& path, MountedPath& out);

// "1.5 GiB": bytes in binary units, one decimal.
std::string human_bytes(double bytes);

// The bytes of a file the cache holds, from the shared index (0 if it knows
// nothing of it); *complete: every byte is there.
uint64_t cached_bytes(const IndexReader& index, const MountConfig& mount, const std::string& rel, uint64_t size,
                      bool* complete);

// The daemon answers `type` for `rel` under `mount` (background priority);
// connects first if needed. 0 (`reason`: the reply's text), or an errno (`reason`: why).
int request(const Config& config, ipc::DaemonClient& client, ipc::MessageType type, const MountConfig& mount,
            const std::string& rel, uint32_t flags, std::string& reason, uint64_t* value = nullptr);

// A path under a mount, its directory listed (and, for a directory, itself)
// through the daemon: metadata only, for ls and du.
struct ListedPath {
  const MountConfig* mount = nullptr;
  std::string rel;
  std::string mirror;  // its place in the mirror
  bool directory = false;
};
// False (with a message) if it is not under a mount or does not exist.
bool resolve_listed(const Config& config, const std::string& path, ipc::DaemonClient& client, ListedPath& out);

// A usage error: the argument, then the usage text, on stderr; returns 2.
int usage_error(const char* usage, const char* arg);

// The shared Config is large (it holds every mount): one per process.
Config& global_config();

}  // namespace dscache::cli
