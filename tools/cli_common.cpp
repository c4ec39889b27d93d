#include "cli_common.h"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "commands.h"

namespace dscache::cli {

Config& global_config() {
  static Config config;
  return config;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

bool load_config(Config& config) {
  char error[1024];
  if (!parse_config(config, [](const char* name) -> const char* { return std::getenv(name); }, error, sizeof error)) {
    fail("%s", error);
    return false;
  }
  return true;
}

bool connect_daemon(const Config& config, ipc::DaemonClient& client) {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fail("cannot find the dscache binary (/proc/self/exe)");
    return false;
  }
  self[n] = '\0';
  char error[1024];
  if (client.connect(config, self, 20000, error, sizeof error) != 0) {
    fail("%s", error);
    return false;
  }
  return true;
}

bool resolve_mounted(const Config& config, const std::string& path, MountedPath& out) {
  std::string absolute = path;
  if (absolute.empty() || absolute[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return fail("cannot read the working directory") == 0;
    absolute = std::string(cwd) + "/" + absolute;
  }
  // Normalise: collapse "//", "." and ".." lexically.
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= absolute.size()) {
    size_t end = absolute.find('/', start);
    if (end == std::string::npos) end = absolute.size();
    std::string segment = absolute.substr(start, end - start);
    if (segment == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!segment.empty() && segment != ".") {
      parts.push_back(segment);
    }
    start = end + 1;
  }
  std::string normal;
  for (const auto& p : parts) normal += "/" + p;
  if (normal.empty()) normal = "/";
  const char* relative = nullptr;
  out.mount = find_mount(config, normal.c_str(), &relative);
  if (out.mount == nullptr) {
    fail("%s is not under any mount in DSCACHE_MOUNTS", normal.c_str());
    return false;
  }
  out.relative = relative;
  return true;
}

}  // namespace dscache::cli
