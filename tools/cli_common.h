// What the subcommands share: the configuration and a daemon connection.
#pragma once

#include <string>

#include "config/config.h"
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

// The shared Config is large (it holds every mount): one per process.
Config& global_config();

}  // namespace dscache::cli
